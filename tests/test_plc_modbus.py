"""The Modbus handshake end to end: a stock pymodbus client against the real server and a real
appliance (demo video in triggered mode, real models)."""

from __future__ import annotations

import dataclasses
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.pdu.bit_message import WriteSingleCoilRequest

from appliance.config import PlcConfig
from appliance.pipeline.inspection import passes
from appliance.plc.outputs import Output, outputs_status, start_outputs, stop_outputs
from appliance.plc.registers import (
    COIL_RESULTS_ACK,
    COIL_TRIGGER,
    COILS,
    DI_BUSY,
    DI_ERROR,
    DI_PASS,
    DI_READY,
    DI_RESULT_VALID,
    DISCRETE_INPUTS,
    ERROR_NO_FRAME,
    ERROR_UNMAPPED_SLOT,
    HOLDING_REGISTERS,
    HR_MODEL_SLOT,
    INPUT_REGISTERS,
    IR_COUNT,
    IR_ERROR_CODE,
    IR_LABEL_ID,
    IR_LATENCY_HIGH,
    IR_LATENCY_LOW,
    IR_MODEL_SLOT,
    IR_SCORE,
    IR_SEQUENCE,
    NO_LABEL,
)
from appliance.services import Services
from appliance_tools.demo.video import write_demo_video
from appliance_tools.plc_bench import bench_modbus_trigger
from tests.conftest import config_for, free_port

UNIT = 1  # what a PLC typically sends; the server answers every unit id by default
SLOTS = ("face", "stripes")
WAIT_S = 10.0
ILLEGAL_ADDRESS, ILLEGAL_VALUE = 2, 3  # Modbus exception codes


@dataclass
class Plc:
    """A PLC's view: a stock pymodbus client, plus the appliance behind it for checks."""

    client: ModbusTcpClient
    services: Services
    outputs: list[Output]

    def inputs(self) -> list[bool]:
        reply = self.client.read_discrete_inputs(0, count=DISCRETE_INPUTS, device_id=UNIT)
        assert not reply.isError(), reply
        return list(reply.bits[:DISCRETE_INPUTS])

    def registers(self) -> list[int]:
        reply = self.client.read_input_registers(0, count=INPUT_REGISTERS, device_id=UNIT)
        assert not reply.isError(), reply
        return list(reply.registers)

    def write_coil(self, address: int) -> None:
        assert not self.client.write_coil(address, True, device_id=UNIT).isError()

    def wait_for(self, condition: Callable[[list[bool]], bool]) -> list[bool]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            bits = self.inputs()
            if condition(bits):
                return bits
            time.sleep(0.005)
        raise AssertionError(f"discrete inputs stayed {self.inputs()}")


def running_plc(data_dir: Path, source: str) -> Iterator[Plc]:
    services = Services.build(config_for(data_dir, source))
    services.start()
    plc = PlcConfig(modbus_enabled=True, modbus_host="127.0.0.1", modbus_port=free_port(), model_slots=SLOTS)
    outputs = start_outputs(services, plc)
    client = ModbusTcpClient("127.0.0.1", port=plc.modbus_port, timeout=5)
    assert client.connect()
    try:
        yield Plc(client, services, outputs)
    finally:
        client.close()
        stop_outputs(outputs)
        services.stop()


def triggered_video(tmp_path: Path) -> str:
    """Config text: the demo video as a source that runs a frame only when triggered."""
    video = write_demo_video(tmp_path / "demo.mp4", frames=30)
    return f'[source]\nkind = "video"\npath = "{video}"\nmode = "triggered"\n'


@pytest.fixture
def plc(data_dir: Path, tmp_path: Path) -> Iterator[Plc]:
    yield from running_plc(data_dir, triggered_video(tmp_path))


def stored_row(services: Services, seq: int) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        row = services.reader.latest()
        if row is not None and row["seq"] == seq:
            return row
        time.sleep(0.01)
    raise AssertionError(f"result {seq} was not stored")


def test_full_handshake(plc: Plc) -> None:
    bits = plc.wait_for(lambda b: b[DI_READY])
    assert not bits[DI_BUSY] and not bits[DI_RESULT_VALID] and not bits[DI_ERROR]
    assert plc.registers()[IR_MODEL_SLOT] == 1  # face is slot 1

    plc.write_coil(COIL_TRIGGER)
    first = plc.inputs()  # busy is set before the write is answered, or the result is already there
    assert first[DI_BUSY] or first[DI_RESULT_VALID]
    assert not first[DI_READY] or first[DI_RESULT_VALID]
    bits = plc.wait_for(lambda b: b[DI_RESULT_VALID])
    assert not bits[DI_BUSY] and bits[DI_READY] and not bits[DI_ERROR]
    registers = plc.registers()

    result = plc.services.bus.latest
    assert result is not None
    row = stored_row(plc.services, result.seq)
    latency_us = registers[IR_LATENCY_HIGH] << 16 | registers[IR_LATENCY_LOW]
    assert registers[IR_SEQUENCE] == row["seq"] & 0xFFFF
    assert registers[IR_LABEL_ID] == (NO_LABEL if row["label_id"] is None else row["label_id"])
    assert registers[IR_SCORE] == round((row["score"] or 0.0) * 1000)
    assert registers[IR_COUNT] == row["count"]
    assert latency_us == round(row["total_ms"] * 1000) and latency_us > 0
    assert registers[IR_ERROR_CODE] == 0
    assert bits[DI_PASS] == passes(result, plc.services.inspector.rule)
    assert plc.client.read_coils(COIL_TRIGGER, count=1, device_id=UNIT).bits[0] is False  # cleared

    plc.write_coil(COIL_RESULTS_ACK)
    bits = plc.wait_for(lambda b: not b[DI_RESULT_VALID])
    assert not bits[DI_PASS] and bits[DI_READY]
    plc.write_coil(COIL_TRIGGER)  # the next cycle gives the next sequence number
    plc.wait_for(lambda b: b[DI_RESULT_VALID])
    assert plc.registers()[IR_SEQUENCE] == (row["seq"] + 1) & 0xFFFF
    status = outputs_status(plc.outputs)
    assert status["modbus"]["sent"] == 2 and status["modbus"]["connected"] is True
    assert status["mqtt"] == {"enabled": False}


def test_job_change_switches_the_model(plc: Plc) -> None:
    assert not plc.client.write_register(HR_MODEL_SLOT, 2, device_id=UNIT).isError()
    plc.wait_for(lambda b: b[DI_READY] and not b[DI_BUSY])
    registers = plc.registers()
    assert registers[IR_MODEL_SLOT] == 2 and registers[IR_ERROR_CODE] == 0
    current = plc.services.manager.current()
    assert current is not None and current.manifest.name == "stripes"
    plc.write_coil(COIL_TRIGGER)
    plc.wait_for(lambda b: b[DI_RESULT_VALID])
    result = plc.services.bus.latest
    assert result is not None and result.model == "stripes"
    assert plc.registers()[IR_LABEL_ID] == result.label_id
    holding = plc.client.read_holding_registers(HR_MODEL_SLOT, count=1, device_id=UNIT)
    assert holding.registers == [2]


def test_unmapped_slot_is_an_error_and_keeps_the_model(plc: Plc) -> None:
    assert not plc.client.write_register(HR_MODEL_SLOT, 9, device_id=UNIT).isError()
    bits = plc.wait_for(lambda b: b[DI_ERROR])
    assert bits[DI_READY] and not bits[DI_BUSY]
    assert plc.registers()[IR_ERROR_CODE] == ERROR_UNMAPPED_SLOT
    current = plc.services.manager.current()
    assert current is not None and current.manifest.name == "face"
    plc.write_coil(COIL_RESULTS_ACK)  # the ack clears the error bit; the code stays readable
    plc.wait_for(lambda b: not b[DI_ERROR])
    assert plc.registers()[IR_ERROR_CODE] == ERROR_UNMAPPED_SLOT


def test_trigger_without_a_source_reports_error_2(data_dir: Path) -> None:
    for plc in running_plc(data_dir, '[source]\nkind = "none"\nmode = "triggered"\n'):
        plc.write_coil(COIL_TRIGGER)
        bits = plc.wait_for(lambda b: b[DI_ERROR])
        assert not bits[DI_RESULT_VALID] and not bits[DI_BUSY]
        assert plc.registers()[IR_ERROR_CODE] == ERROR_NO_FRAME
        assert outputs_status(plc.outputs)["modbus"]["errors"] == 1


def test_a_taken_port_leaves_the_output_unavailable(data_dir: Path) -> None:
    services = Services.build(config_for(data_dir))
    plc = PlcConfig(modbus_enabled=True, modbus_host="127.0.0.1", modbus_port=free_port())
    first = start_outputs(services, plc)
    second = start_outputs(services, dataclasses.replace(plc))
    try:
        assert outputs_status(first)["modbus"]["listening"] is True
        status = outputs_status(second)["modbus"]
        assert status["connected"] is False and "cannot listen" in status["last_error"]
    finally:
        stop_outputs(second)
        stop_outputs(first)
        services.stop()


def test_bench_measures_the_round_trip(data_dir: Path, tmp_path: Path) -> None:
    video = write_demo_video(tmp_path / "bench.mp4", frames=30)
    trip = bench_modbus_trigger(data_dir, video, triggers=20)
    assert trip.count == 20 and trip.errors == 0
    assert 0 < trip.p50_ms <= trip.p99_ms < 1000


class RawCoilWrite(WriteSingleCoilRequest):
    """FC05 with any 16-bit value (a stock client only sends 0x0000 or 0xFF00)."""

    raw = 0xFF00

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.raw)


def raw_coil_write(client: ModbusTcpClient, address: int, value: int) -> Any:
    request = RawCoilWrite(address=address, bits=[True], dev_id=UNIT)
    request.raw = value
    return client.execute(False, request)


def test_accesses_outside_the_map_answer_exception_2(plc: Plc) -> None:
    plc.wait_for(lambda b: b[DI_READY])
    for address in (COILS, 5, 15, 16, 1000):
        reply = plc.client.write_coil(address, True, device_id=UNIT)
        assert reply.isError() and reply.exception_code == ILLEGAL_ADDRESS, (address, reply)
    coils = plc.client.write_coils(COILS - 1, [True, True], device_id=UNIT)  # the last coil and one outside
    assert coils.isError() and coils.exception_code == ILLEGAL_ADDRESS
    for read in (
        plc.client.read_coils(0, count=COILS + 1, device_id=UNIT),
        plc.client.read_discrete_inputs(0, count=DISCRETE_INPUTS + 1, device_id=UNIT),
        plc.client.read_input_registers(0, count=INPUT_REGISTERS + 1, device_id=UNIT),
        plc.client.write_register(HOLDING_REGISTERS, 1, device_id=UNIT),
    ):
        assert read.isError() and read.exception_code == ILLEGAL_ADDRESS, read
    assert plc.client.read_coils(0, count=COILS, device_id=UNIT).bits[:COILS] == [False] * COILS
    assert plc.services.inspector.triggers == 0  # the refused multi-coil write did not ack or trigger


def test_a_coil_value_other_than_on_or_off_answers_exception_3(plc: Plc) -> None:
    plc.wait_for(lambda b: b[DI_READY])
    for value in (0x1234, 0x0001, 0x00FF, 0xFFFF):
        reply = raw_coil_write(plc.client, COIL_TRIGGER, value)
        assert reply.isError() and reply.exception_code == ILLEGAL_VALUE, (hex(value), reply)
    assert outputs_status(plc.outputs)["modbus"]["triggers"] == 0  # none of them counted as ON
    assert not raw_coil_write(plc.client, COIL_TRIGGER, 0xFF00).isError()
    plc.wait_for(lambda b: b[DI_RESULT_VALID])
    assert outputs_status(plc.outputs)["modbus"]["triggers"] == 1
