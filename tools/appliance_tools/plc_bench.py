"""`appliance bench`: the Modbus trigger round trip as a PLC sees it.

A stock pymodbus client plays the PLC: write the trigger coil, poll the discrete inputs until
result valid (or error), read the input registers; that span is one round trip. The ack that
follows is not timed. The appliance runs the demo video in triggered mode, so every round trip
includes reading a frame, inference, post-processing and storing the result.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymodbus.client import ModbusTcpClient

from appliance.config import PlcConfig, parse_config
from appliance.plc.modbus import ModbusOutput
from appliance.plc.outputs import Output, start_outputs, stop_outputs
from appliance.plc.registers import (
    COIL_RESULTS_ACK,
    COIL_TRIGGER,
    DI_ERROR,
    DI_RESULT_VALID,
    DISCRETE_INPUTS,
    INPUT_REGISTERS,
)
from appliance.services import Services

UNIT = 1
WARMUP = 10
RESULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RoundTrip:
    count: int
    p50_ms: float
    p99_ms: float
    errors: int  # round trips that ended with the error bit


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cycle(client: ModbusTcpClient) -> bool:
    """One PLC cycle: trigger, wait for result valid or error, read the results, ack. True if valid."""
    client.write_coil(COIL_TRIGGER, True, device_id=UNIT)
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while time.monotonic() < deadline:
        bits = client.read_discrete_inputs(0, count=DISCRETE_INPUTS, device_id=UNIT).bits
        if bits[DI_RESULT_VALID] or bits[DI_ERROR]:
            client.read_input_registers(0, count=INPUT_REGISTERS, device_id=UNIT)
            return bool(bits[DI_RESULT_VALID])
    raise TimeoutError("no result over Modbus")


def _measure(port: int, triggers: int) -> RoundTrip:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=RESULT_TIMEOUT_S)
    if not client.connect():  # type: ignore[no-untyped-call]  # pymodbus: unannotated
        raise ConnectionError(f"cannot connect to the Modbus server on port {port}")
    times: list[float] = []
    errors = 0
    try:
        for n in range(WARMUP + triggers):
            started = time.perf_counter()
            valid = _cycle(client)
            if n >= WARMUP:
                times.append(time.perf_counter() - started)
                errors += not valid
            client.write_coil(COIL_RESULTS_ACK, True, device_id=UNIT)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])
    return RoundTrip(len(times), round(float(p50), 3), round(float(p99), 3), errors)


def bench_modbus_trigger(data_dir: Path, video: Path, triggers: int = 200, threads: int = 2) -> RoundTrip:
    """Serve `video` (triggered) with the registry's active model and time `triggers` round trips."""
    config = parse_config(
        f'[data]\ndir = "{data_dir}"\n[source]\nkind = "video"\npath = "{video}"\nmode = "triggered"\n'
        f'[backend]\nthreads = {threads}\n[log]\nlevel = "WARNING"\n'
    )
    services = Services.build(config)
    services.start()
    plc = PlcConfig(modbus_enabled=True, modbus_host="127.0.0.1", modbus_port=_port())
    outputs: list[Output] = []
    try:
        outputs = start_outputs(services, plc)
        if not isinstance(outputs[0], ModbusOutput):
            raise RuntimeError(f"Modbus server did not start: {outputs[0].status()}")
        return _measure(plc.modbus_port, triggers)
    finally:
        stop_outputs(outputs)
        services.stop()
