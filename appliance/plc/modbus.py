"""The Modbus TCP server (pymodbus 3.16): the handshake's state in registers, PLC writes to it.

pymodbus runs on its own asyncio loop in one thread. The datastore is a pymodbus `SimDevice` with
four separate blocks (coils, discrete inputs, holding and input registers); its `action` hook sees
every access before it is served, so PLC writes reach the handshake at once. The handshake never
blocks the loop: a trigger or job change runs on the handshake's worker thread, and its outcome is
written back with the server's `async_setValues`, input registers before discrete inputs in one
loop step, so a PLC never reads result valid next to an old result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
from dataclasses import dataclass
from typing import Any

from pymodbus.constants import ExcCodes, ModbusStatus
from pymodbus.datastore import ModbusServerContext
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    WriteMultipleCoilsRequest,
    WriteSingleCoilRequest,
)
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from appliance.errors import ApplianceError
from appliance.plc.handshake import Handshake
from appliance.plc.registers import (
    COIL_RESET_COUNTERS,
    COIL_RESULTS_ACK,
    COIL_TRIGGER,
    COILS,
    DISCRETE_INPUTS,
    HOLDING_REGISTERS,
    HR_JOB_NUMBER,
    HR_MODEL_SLOT,
    INPUT_REGISTERS,
    discrete_inputs,
    input_registers,
)

logger = logging.getLogger(__name__)

# Modbus function codes the server tells apart
FC_WRITE_COIL, FC_WRITE_COILS = 5, 15
FC_WRITE_REGISTER, FC_WRITE_REGISTERS = 6, 16
FC_DISCRETE_INPUTS, FC_INPUT_REGISTERS = 2, 4
COIL_WRITES = frozenset({FC_WRITE_COIL, FC_WRITE_COILS})
REGISTER_WRITES = frozenset({FC_WRITE_REGISTER, FC_WRITE_REGISTERS})

REFRESH_S = 0.25  # registers are rewritten at least this often (model changed over REST, ...)
START_TIMEOUT_S = 10.0


class MappedCoilsRead(ReadCoilsRequest):
    """FC01 within the map. pymodbus keeps bits in 16-bit words, so without these checks coils 3-15
    (and discrete inputs 5-15) would answer and keep values; a vision sensor answers exception 2."""

    size = COILS

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        if self.address + self.count > self.size:
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_ADDRESS)
        return await super().datastore_update(context, device_id)


class MappedInputsRead(ReadDiscreteInputsRequest):
    """FC02 within the map."""

    size = DISCRETE_INPUTS

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        if self.address + self.count > self.size:
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_ADDRESS)
        return await super().datastore_update(context, device_id)


class MappedCoilWrite(WriteSingleCoilRequest):
    """FC05: the value must be 0x0000 or 0xFF00 (else exception 3), the coil in the map (else 2)."""

    value = ModbusStatus.OFF

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])
        self.bits = [self.value == ModbusStatus.ON]

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        if self.value not in (ModbusStatus.ON, ModbusStatus.OFF):
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)
        if self.address >= COILS:
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_ADDRESS)
        return await super().datastore_update(context, device_id)


class MappedCoilsWrite(WriteMultipleCoilsRequest):
    """FC15 within the map."""

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        if self.address + self.count > COILS:
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_ADDRESS)
        return await super().datastore_update(context, device_id)


MAPPED_REQUESTS: list[type[ModbusPDU]] = [
    MappedCoilsRead,
    MappedInputsRead,
    MappedCoilWrite,
    MappedCoilsWrite,
]


class ModbusUnavailable(ApplianceError):
    """The Modbus server cannot listen (port in use, no permission for port 502, ...)."""

    status = 503


@dataclass(frozen=True)
class ModbusOptions:
    host: str = "0.0.0.0"
    port: int = 5020
    unit_id: int = 0  # 0 answers every unit id


def _device(unit_id: int, action: SimAction) -> SimDevice:
    return SimDevice(
        id=unit_id,
        simdata=(
            [SimData(0, count=COILS, values=False, datatype=DataType.BITS)],
            [SimData(0, count=DISCRETE_INPUTS, values=False, datatype=DataType.BITS)],
            [SimData(0, count=HOLDING_REGISTERS, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=INPUT_REGISTERS, values=0, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )


class ModbusOutput:
    """Serves the handshake to PLCs; `start()` returns once the port listens (or raises)."""

    name = "modbus"

    def __init__(self, handshake: Handshake, options: ModbusOptions) -> None:
        self.handshake = handshake
        self.options = options
        self.clients = 0
        self._server: ModbusTcpServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._syncing = False
        self._listening = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        handshake.on_change = self._changed

    @property
    def address(self) -> str:
        return f"{self.options.host}:{self.options.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="modbus", daemon=True)
        self._thread.start()
        if not self._listening.wait(START_TIMEOUT_S) or self._failure is not None:
            self.stop()
            raise ModbusUnavailable(f"Modbus server cannot listen on {self.address}: {self._failure}")
        logger.info("Modbus TCP server listening on %s (unit id %d)", self.address, self.options.unit_id)

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_S)
        self.handshake.close()

    def status(self) -> dict[str, Any]:
        c = self.handshake.counters
        return {
            "enabled": True,
            "listening": self._server is not None,
            "address": self.address,
            "connected": self.clients > 0,
            "clients": self.clients,
            "sent": c.results,
            "errors": c.errors,
            "dropped": c.refused,
            "triggers": c.triggers,
            "job_changes": c.job_changes,
        }

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._dirty, self._stopping = asyncio.Event(), asyncio.Event()
        device = _device(self.options.unit_id, self._action)
        address = (self.options.host, self.options.port)
        server = ModbusTcpServer(
            device, address=address, trace_connect=self._connected, custom_pdu=MAPPED_REQUESTS
        )
        try:
            await server.serve_forever(background=True)
        except (OSError, RuntimeError) as err:
            self._failure = err
            self._listening.set()
            return
        self._server = server
        await self._sync()
        self._listening.set()
        try:
            await self._refresh_until_stopped()
        finally:
            self._server = None
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated

    async def _refresh_until_stopped(self) -> None:
        assert self._dirty is not None and self._stopping is not None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), REFRESH_S)
            self._dirty.clear()
            await self._sync(clear_coils=True)

    async def _sync(self, clear_coils: bool = False) -> None:
        """Write the handshake's reading; with clear_coils also reset trigger and ack (already taken)."""
        server = self._server
        if server is None:
            return
        reading = self.handshake.reading()
        unit = self.options.unit_id
        self._syncing = True
        try:
            await server.async_setValues(unit, FC_INPUT_REGISTERS, 0, input_registers(reading))
            await server.async_setValues(unit, FC_DISCRETE_INPUTS, 0, discrete_inputs(reading))
            if clear_coils:
                await server.async_setValues(unit, FC_WRITE_COILS, 0, [False] * COILS)
        finally:
            self._syncing = False

    async def _action(
        self,
        function_code: int,
        _start: int,
        address: int,
        _count: int,
        _registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before serving any access; PLC writes go to the handshake."""
        if self._syncing or values is None:
            return None
        if function_code in COIL_WRITES or function_code in REGISTER_WRITES:
            for offset, value in enumerate(values):
                self._plc_wrote(function_code, address + offset, int(value))
            await self._sync()  # busy (or the error) is readable before the write is answered
            self._changed()  # and right after it, the taken coils are cleared
        return None

    def _plc_wrote(self, function_code: int, address: int, value: int) -> None:
        if function_code in COIL_WRITES and value:
            if address == COIL_TRIGGER:
                self.handshake.trigger()
            elif address == COIL_RESULTS_ACK:
                self.handshake.acknowledge()
            elif address == COIL_RESET_COUNTERS:
                self.handshake.reset_counters()
        elif function_code in REGISTER_WRITES and address == HR_MODEL_SLOT:
            self.handshake.change_job(value)
        elif function_code in REGISTER_WRITES and address == HR_JOB_NUMBER:
            self.handshake.change_job_number(value)

    def _changed(self) -> None:
        """Called by the handshake from any thread: rewrite the registers soon."""
        loop, dirty = self._loop, self._dirty
        if loop is not None and dirty is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server is gone
                loop.call_soon_threadsafe(dirty.set)

    def _connected(self, connected: bool) -> None:
        self.clients += 1 if connected else -1
        logger.info("Modbus client %s (%d connected)", "connected" if connected else "gone", self.clients)
