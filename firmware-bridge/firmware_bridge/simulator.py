"""Firmware simulator: behaves like the reference MCU firmware on a serial port.

It answers HELLO (and requests one), sends SENSOR_FRAME windows (float32 [128, 3]) at ``rate_hz``
and TRIGGER every ``trigger_every_s`` once the handshake is done, sends heartbeats and (1.1)
DEVICE_STATUS, answers TIME_REQUEST, ACKs RESULT and IO_SET (NACKs IO_SET for non-existent outputs
with INVALID_ARGUMENT, and both with BUSY while :meth:`Simulator.set_busy` is on), applies output
pulses, accepts ENTER_BOOTLOADER (then stops streaming), and keeps/logs the last result and the
output states. ``protocol_minor=0`` makes it a 1.0 device; ``clock_offset_ms`` sets its clock far
from the host's; ``uart_baud`` paces its output like a real UART (with the 1.1 TX priority).

CLI::

    python -m firmware_bridge.simulator --port /dev/ttyUSB1 [--rate HZ] [--trigger-every S]
        [--mode idle|normal|fault|cycle] [--create-pty] [--protocol 1.0|1.1] [--uart-baud BAUD]

With ``--create-pty`` the simulator creates a virtual serial port itself and ``--port`` is the
symlink to create (e.g. ``/tmp/ttyFB0``), which the appliance then opens.
"""

import argparse
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType

import numpy as np

from firmware_bridge.delivery import Delivery
from firmware_bridge.fdtransport import FdTransport
from firmware_bridge.identity import Identity
from firmware_bridge.messages import (
    Capability,
    DeviceStatus,
    EnterBootloader,
    ErrorCode,
    IoSet,
    Message,
    Result,
    SensorFrame,
    Trigger,
)
from firmware_bridge.protocol import DEFAULT_BAUDRATE, DEVICE_STATUS_INTERVAL_S, SUPPORTED_BAUDRATES
from firmware_bridge.session import Session, SessionConfig, SessionState
from firmware_bridge.transport import SerialTransport, Transport, TransportConfig
from firmware_bridge.uart import PacedTransport
from firmware_bridge.virtualport import VirtualPort
from firmware_bridge.waveform import SensorMode, cycle_mode, window

logger = logging.getLogger(__name__)

V10_CAPABILITIES = (
    Capability.SENSOR_FRAME
    | Capability.TRIGGER
    | Capability.RESULT
    | Capability.IO_SET
    | Capability.HEARTBEAT
)
DEVICE_CAPABILITIES = (
    V10_CAPABILITIES | Capability.TIME_SYNC | Capability.DEVICE_STATUS | Capability.BOOTLOADER
)


def device_session_config(minor: int = 1, clock_offset_ms: int = 0) -> SessionConfig:
    """The simulated device's session: a 1.1 (or, ``minor`` 0, a 1.0) reference device."""
    identity = Identity(
        device_id=0x5EED0001,
        capabilities=int(DEVICE_CAPABILITIES if minor else V10_CAPABILITIES),
        firmware=f"fb-sim/1.{minor}.0",
        minor_version=minor,
    )
    return SessionConfig(identity=identity, time_sync_interval_s=0.0, clock_offset_ms=clock_offset_ms)


_MAX_IDLE_WAIT_S = 0.5


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    rate_hz: float = 10.0
    """SENSOR_FRAME rate; 0 disables frames."""
    trigger_every_s: float = 2.0
    """TRIGGER period; 0 disables triggers."""
    mode: SensorMode = SensorMode.NORMAL
    cycle_period_s: float = 5.0
    outputs: int = 4
    seed: int | None = None
    session: SessionConfig = field(default_factory=device_session_config)
    uart_baud: int = 0
    """> 0: pace the output like a UART at this baud rate (the port itself is a fast pty)."""

    def __post_init__(self) -> None:
        if self.rate_hz < 0 or self.trigger_every_s < 0 or self.cycle_period_s <= 0:
            raise ValueError("rate_hz and trigger_every_s must be >= 0, cycle_period_s > 0")
        if not 0 <= self.outputs <= 256:
            raise ValueError(f"outputs must be 0..256, got {self.outputs}")


@dataclass(slots=True)
class _Schedule:
    next_frame: float = 0.0
    next_trigger: float = 0.0
    pulses: dict[int, tuple[float, bool]] = field(default_factory=dict)


class Simulator:
    """In-process simulator; ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, transport: Transport, config: SimulatorConfig | None = None) -> None:
        self._config = config or SimulatorConfig()
        if self._config.uart_baud > 0:
            transport = PacedTransport(transport, self._config.uart_baud)
        self._session = Session(
            transport, self._config.session, on_message=self._on_message, accept=self._accept
        )
        self._session.add_state_listener(lambda _state: self._wake.set())
        self._rng = np.random.default_rng(self._config.seed)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._schedule = _Schedule()
        self._outputs: dict[int, bool] = dict.fromkeys(range(self._config.outputs), False)
        self._last_result: Result | None = None
        self._started_at = 0.0
        self.frames_sent = 0
        self._triggers: deque[Delivery] = deque(maxlen=1000)
        self.results_received = 0
        self.io_received = 0
        self.busy_refusals = 0
        self.bootloader_requested = False
        self._busy = False
        self._next_status = 0.0
        self._frame_log: deque[tuple[int, int, float]] = deque(maxlen=1000)
        self._result_log: deque[tuple[Result, float]] = deque(maxlen=1000)
        self._io_log: deque[tuple[IoSet, float]] = deque(maxlen=1000)
        self._trigger_log: dict[int, float] = {}

    @classmethod
    def on_port(
        cls, port: str, config: SimulatorConfig | None = None, *, baudrate: int = DEFAULT_BAUDRATE
    ) -> "Simulator":
        """Simulator on a serial device path (e.g. one end of a ``socat`` pty pair)."""
        return cls(SerialTransport(port, TransportConfig(baudrate=baudrate)), config)

    @property
    def session(self) -> Session:
        return self._session

    @property
    def last_result(self) -> Result | None:
        with self._lock:
            return self._last_result

    @property
    def triggers(self) -> list[Delivery]:
        """Deliveries of the most recent TRIGGERs (their ACK status), oldest first."""
        with self._lock:
            return list(self._triggers)

    @property
    def sent_frames(self) -> list[tuple[int, int, float]]:
        """(seq, device timestamp_ms, monotonic time generated) of the recent SENSOR_FRAMEs."""
        with self._lock:
            return list(self._frame_log)

    @property
    def results(self) -> list[tuple[Result, float]]:
        """Recent RESULTs taken, with the monotonic time each was applied."""
        with self._lock:
            return list(self._result_log)

    @property
    def io_log(self) -> list[tuple[IoSet, float]]:
        """Recent IO_SETs applied, with the monotonic time each was applied."""
        with self._lock:
            return list(self._io_log)

    def set_busy(self, busy: bool) -> None:
        """While on, RESULT and IO_SET are NACKed BUSY (the device cannot take them now)."""
        with self._lock:
            self._busy = busy

    def send_trigger(self, input_id: int = 0) -> Delivery:
        """Fire the photo-eye now (TRIGGER with the device clock)."""
        delivery = self._session.send(Trigger(input_id=input_id, timestamp_ms=self._session.device_ms()))
        with self._lock:
            self._triggers.append(delivery)
            self._trigger_log[delivery.seq] = time.monotonic()
            while len(self._trigger_log) > 1000:
                del self._trigger_log[next(iter(self._trigger_log))]
        return delivery

    def trigger_time(self, seq: int) -> float | None:
        """Monotonic time the TRIGGER with ``seq`` was first sent."""
        with self._lock:
            return self._trigger_log.get(seq)

    @property
    def outputs(self) -> dict[int, bool]:
        with self._lock:
            return dict(self._outputs)

    def start(self) -> None:
        self._stop.clear()
        self._started_at = time.monotonic()
        self._session.start()
        self._thread = threading.Thread(target=self._run, name="fb-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._session.stop()

    def __enter__(self) -> "Simulator":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def mode_at(self, now: float) -> SensorMode:
        if self._config.mode is SensorMode.CYCLE:
            return cycle_mode(now - self._started_at, self._config.cycle_period_s)
        return self._config.mode

    def uptime_ms(self, now: float) -> int:
        """The device clock (ms, wraps), as stamped on SENSOR_FRAME and TRIGGER."""
        return self._session.device_ms(now)

    # -- message handling (session reader thread) ----------------------------------------------

    def _accept(self, message: Message) -> int | None:
        with self._lock:
            busy = self._busy and isinstance(message, Result | IoSet)
            if busy:
                self.busy_refusals += 1
        if busy:
            return ErrorCode.BUSY
        if isinstance(message, IoSet) and message.output_id >= self._config.outputs:
            logger.warning("IO_SET for unknown output %d refused", message.output_id)
            return ErrorCode.INVALID_ARGUMENT
        if isinstance(message, EnterBootloader) and message.mode != 0:
            return ErrorCode.INVALID_ARGUMENT
        return None

    def _on_message(self, message: Message) -> None:
        if isinstance(message, Result):
            with self._lock:
                self._last_result = message
                self.results_received += 1
                self._result_log.append((message, time.monotonic()))
            logger.info(
                "RESULT id=%d ref=%d label=%d score=%d%% %s",
                message.result_id,
                message.ref_seq,
                message.label,
                message.score_permille // 10,
                message.verdict.name,
            )
        elif isinstance(message, IoSet):
            with self._lock:
                self.io_received += 1
                self._io_log.append((message, time.monotonic()))
            self._apply_io(message)
        elif isinstance(message, EnterBootloader):
            logger.warning("ENTER_BOOTLOADER: would reset into the vendor bootloader now")
            with self._lock:
                self.bootloader_requested = True

    def _apply_io(self, message: IoSet) -> None:
        with self._lock:
            self._outputs[message.output_id] = message.state
            if message.pulse_ms:
                revert_at = time.monotonic() + message.pulse_ms / 1000
                self._schedule.pulses[message.output_id] = (revert_at, not message.state)
            else:
                self._schedule.pulses.pop(message.output_id, None)
        logger.info(
            "IO_SET output %d -> %s (pulse %d ms)", message.output_id, message.state, message.pulse_ms
        )
        self._wake.set()

    # -- generator thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._session.state is SessionState.READY and not self.bootloader_requested:
                self._emit_due(now)
            else:
                self._schedule.next_frame = self._schedule.next_trigger = self._next_status = now
            self._expire_pulses(now)
            self._wake.wait(self._seconds_until_due(time.monotonic()))
            self._wake.clear()

    def _emit_due(self, now: float) -> None:
        schedule, config = self._schedule, self._config
        if config.rate_hz > 0 and now >= schedule.next_frame:
            self._send_frame(now)
            period = 1 / config.rate_hz
            schedule.next_frame += period
            if schedule.next_frame < now:
                schedule.next_frame = now + period
        if config.trigger_every_s > 0 and now >= schedule.next_trigger:
            self.send_trigger()
            schedule.next_trigger = now + config.trigger_every_s
        if now >= self._next_status:
            self._next_status = now + DEVICE_STATUS_INTERVAL_S
            if self._config.session.identity.minor_version > 0:
                self._session.send(DeviceStatus(self.uptime_ms(now), 0, 0, 0, 0))

    def _send_frame(self, now: float) -> None:
        samples = window(self.mode_at(now), self._rng, now - self._started_at)
        stamp = self.uptime_ms(now)
        frame = SensorFrame.from_array(samples, sensor_id=0, timestamp_ms=stamp)
        delivery = self._session.send(frame)
        self.frames_sent += 1
        with self._lock:
            self._frame_log.append((delivery.seq, stamp, now))

    def _expire_pulses(self, now: float) -> None:
        with self._lock:
            expired = [(out, state) for out, (at, state) in self._schedule.pulses.items() if at <= now]
            for output, state in expired:
                del self._schedule.pulses[output]
                self._outputs[output] = state
        for output, state in expired:
            logger.info("output %d pulse ended -> %s", output, state)

    def _seconds_until_due(self, now: float) -> float:
        deadlines = [now + _MAX_IDLE_WAIT_S]
        if self._session.state is SessionState.READY:
            if self._config.rate_hz > 0:
                deadlines.append(self._schedule.next_frame)
            if self._config.trigger_every_s > 0:
                deadlines.append(self._schedule.next_trigger)
        with self._lock:
            deadlines += [at for at, _ in self._schedule.pulses.values()]
        return max(0.0, min(deadlines) - now)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.simulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--port", required=True, help="serial device path (symlink to create with --create-pty)"
    )
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUDRATE, choices=SUPPORTED_BAUDRATES)
    parser.add_argument("--rate", type=float, default=10.0, help="SENSOR_FRAME rate in Hz (0 = off)")
    parser.add_argument("--trigger-every", type=float, default=2.0, help="TRIGGER period in s (0 = off)")
    parser.add_argument("--mode", choices=[m.value for m in SensorMode], default=SensorMode.NORMAL.value)
    parser.add_argument("--cycle-period", type=float, default=5.0, help="seconds per mode in cycle mode")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--protocol", choices=["1.0", "1.1"], default="1.1", help="behave as a 1.0 or 1.1 device"
    )
    parser.add_argument("--clock-offset-ms", type=int, default=0, help="device clock offset from uptime")
    parser.add_argument(
        "--uart-baud", type=int, default=0, help="pace output like a UART at this baud rate (0 = off)"
    )
    parser.add_argument(
        "--create-pty", action="store_true", help="create a virtual port, --port is its symlink"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="exit after S seconds (0 = run until signal)"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = SimulatorConfig(
        rate_hz=args.rate,
        trigger_every_s=args.trigger_every,
        mode=SensorMode(args.mode),
        cycle_period_s=args.cycle_period,
        seed=args.seed,
        session=device_session_config(int(args.protocol[-1]), args.clock_offset_ms),
        uart_baud=args.uart_baud,
    )
    vport = VirtualPort(args.port) if args.create_pty else None
    if vport is not None:
        vport.open()
        transport: Transport = FdTransport(vport.master_fd, name=vport.slave_path)
        sys.stdout.write(f"virtual serial port: {vport.path} -> {vport.slave_path}\n")
        sys.stdout.flush()
    else:
        transport = SerialTransport(args.port, TransportConfig(baudrate=args.baud))
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    simulator = Simulator(transport, config)
    try:
        simulator.start()
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while not done.wait(5.0 if deadline is None else max(0.0, min(5.0, deadline - time.monotonic()))):
            stats = simulator.session.stats()
            logger.info("state=%s frames=%d %s", stats.state, simulator.frames_sent, stats.counters)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        simulator.stop()
        if vport is not None:
            vport.close()
            vport.remove_link()
    return 0


if __name__ == "__main__":
    sys.exit(main())
