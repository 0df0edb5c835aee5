"""Byte transports: the :class:`Transport` protocol, shared link bookkeeping and :class:`SerialTransport`.

A transport owns one reader thread that hands received bytes to ``on_data`` and reports link
state changes to ``on_state``. ``write`` is thread-safe and never raises on I/O errors: it returns
``False`` and the failure is counted (and, for a dead port, triggers a reconnect).
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Protocol, TypeVar

import serial

from firmware_bridge.protocol import DEFAULT_BAUDRATE, SUPPORTED_BAUDRATES

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class LinkState(StrEnum):
    DISCONNECTED = "disconnected"
    """Not started, or stopped."""
    CONNECTING = "connecting"
    """Started, first open not yet successful."""
    CONNECTED = "connected"
    LOST = "lost"
    """The open port failed (unplugged, I/O error); a reconnect follows."""
    RECONNECTING = "reconnecting"
    """Trying to reopen the port with exponential backoff."""


DataCallback = Callable[[bytes], None]
StateCallback = Callable[[LinkState], None]
PortSpec = str | os.PathLike[str] | Callable[[], str]


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Snapshot of a transport's state and counters."""

    state: LinkState
    port: str
    bytes_rx: int = 0
    bytes_tx: int = 0
    opens: int = 0
    open_failures: int = 0
    losses: int = 0
    write_errors: int = 0
    write_timeouts: int = 0
    writes_dropped: int = 0
    callback_errors: int = 0
    last_error: str = ""

    @property
    def reconnects(self) -> int:
        """Successful opens after the first one."""
        return max(0, self.opens - 1)


_COUNTERS = tuple(f.name for f in fields(TransportStats) if f.name not in ("state", "port", "last_error"))


class Transport(Protocol):
    """What a :class:`firmware_bridge.session.Session` needs from a byte link."""

    def start(self, on_data: DataCallback, on_state: StateCallback) -> None: ...

    def stop(self) -> None: ...

    def write(self, data: bytes) -> bool: ...

    @property
    def state(self) -> LinkState: ...

    def stats(self) -> TransportStats: ...


class Backoff:
    """Exponential backoff delays: ``minimum, 2*minimum, ...`` capped at ``maximum``.

    The appliance has the same rule in appliance/backoff.py; this package keeps its own because it is
    a distribution of its own that the appliance depends on (it must not depend back)."""

    def __init__(self, minimum: float, maximum: float, factor: float = 2.0) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"backoff needs 0 < minimum <= maximum, got {minimum}, {maximum}")
        self._minimum = minimum
        self._maximum = maximum
        self._factor = factor
        self._current = minimum

    def next(self) -> float:
        delay = self._current
        self._current = min(self._maximum, self._current * self._factor)
        return delay

    def reset(self) -> None:
        self._current = self._minimum


class LinkMonitor:
    """Thread-safe state, counters and callbacks shared by transport implementations."""

    def __init__(self, port: str) -> None:
        self._lock = threading.Lock()
        self._state = LinkState.DISCONNECTED
        self._port = port
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._last_error = ""
        self._on_data: DataCallback | None = None
        self._on_state: StateCallback | None = None

    def attach(self, on_data: DataCallback, on_state: StateCallback) -> None:
        self._on_data = on_data
        self._on_state = on_state

    @property
    def state(self) -> LinkState:
        return self._state

    def set_port(self, port: str) -> None:
        with self._lock:
            self._port = port

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def failure(self, name: str, error: BaseException | str) -> None:
        with self._lock:
            self._counts[name] += 1
            self._last_error = str(error)

    def set_state(self, state: LinkState) -> None:
        with self._lock:
            if state is self._state:
                return
            self._state = state
        logger.info("link %s: %s", self._port, state.value)
        callback = self._on_state
        if callback is not None:
            self._guarded(callback, state)

    def deliver(self, data: bytes) -> None:
        self.count("bytes_rx", len(data))
        callback = self._on_data
        if callback is not None:
            self._guarded(callback, data)

    def _guarded(self, callback: Callable[[_T], None], arg: _T) -> None:
        try:
            callback(arg)
        except Exception:
            self.failure("callback_errors", "callback raised")
            logger.exception("transport callback failed")

    def snapshot(self) -> TransportStats:
        with self._lock:
            return TransportStats(
                state=self._state, port=self._port, last_error=self._last_error, **self._counts
            )


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Serial settings and reconnect backoff."""

    baudrate: int = DEFAULT_BAUDRATE
    backoff_min_s: float = 0.1
    backoff_max_s: float = 5.0
    read_timeout_s: float = 0.2
    write_timeout_s: float = 1.0
    exclusive: bool = True

    def __post_init__(self) -> None:
        if self.baudrate not in SUPPORTED_BAUDRATES:
            raise ValueError(f"unsupported baud rate {self.baudrate}; supported: {SUPPORTED_BAUDRATES}")
        Backoff(self.backoff_min_s, self.backoff_max_s)
        if self.read_timeout_s <= 0 or self.write_timeout_s <= 0:
            raise ValueError("read_timeout_s and write_timeout_s must be > 0")


class MonitoredTransport:
    """State and statistics of a transport, both kept by its LinkMonitor (shared by every transport)."""

    _monitor: LinkMonitor

    @property
    def state(self) -> LinkState:
        return self._monitor.state

    def stats(self) -> TransportStats:
        return self._monitor.snapshot()


class SerialTransport(MonitoredTransport):
    """pyserial transport that survives unplug/replug.

    ``port`` is a device path (``/dev/ttyUSB0``, a symlink such as ``/dev/serial/by-id/...``) or a
    callable returning the path to open, evaluated on every (re)open. When reading or writing fails
    (port disappeared, ``SerialException``, ``OSError``) the port is closed, the state goes
    ``LOST`` then ``RECONNECTING``, and it is reopened with exponential backoff between
    ``backoff_min_s`` and ``backoff_max_s`` until it succeeds or :meth:`stop` is called.
    """

    def __init__(self, port: PortSpec, config: TransportConfig | None = None) -> None:
        self._port = port
        self._config = config or TransportConfig()
        self._monitor = LinkMonitor(self._describe_port())
        self._serial: serial.Serial | None = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._fault = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> TransportConfig:
        return self._config

    def start(self, on_data: DataCallback, on_state: StateCallback) -> None:
        if self._thread is not None:
            raise RuntimeError("SerialTransport already started")
        self._monitor.attach(on_data, on_state)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"serial-rx:{self._describe_port()}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._write_lock:
            if self._serial is not None:
                self._serial.cancel_read()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._monitor.set_state(LinkState.DISCONNECTED)

    def write(self, data: bytes) -> bool:
        with self._write_lock:
            port = self._serial
            if port is None:
                self._monitor.count("writes_dropped")
                return False
            try:
                port.write(data)
            except serial.SerialTimeoutException as exc:
                self._monitor.failure("write_timeouts", exc)
                return False
            except (serial.SerialException, OSError) as exc:
                self._monitor.failure("write_errors", exc)
                self._fault.set()
                port.cancel_read()
                return False
        self._monitor.count("bytes_tx", len(data))
        return True

    def _describe_port(self) -> str:
        return os.fspath(self._port) if isinstance(self._port, str | os.PathLike) else "<callable>"

    def _run(self) -> None:
        backoff = Backoff(self._config.backoff_min_s, self._config.backoff_max_s)
        while not self._stop.is_set():
            port = self._serial
            if port is None:
                if not self._open():
                    self._stop.wait(self._retry_delay(backoff))
                continue
            received = self._read_once(port)
            if received is None:
                self._stop.wait(backoff.next())  # a port that opens but fails at once must not spin
                backoff.reset()  # lost after working: the replug must be noticed at once
            elif received:
                backoff.reset()  # the link demonstrably works
        self._close()

    def _retry_delay(self, backoff: Backoff) -> float:
        """While the device node is absent (unplugged) poll for it every ``backoff_min_s`` (a stat
        per 0.1 s), so a replug is opened at once; back off only while it exists but fails to open
        (busy, permissions) -- then the next attempt is at most ``backoff_max_s`` away."""
        if not callable(self._port) and not os.path.exists(self._port):
            backoff.reset()
            return self._config.backoff_min_s
        return backoff.next()

    def _open(self) -> bool:
        first = self._monitor.snapshot().opens == 0
        self._monitor.set_state(LinkState.CONNECTING if first else LinkState.RECONNECTING)
        try:
            path = self._port() if callable(self._port) else os.fspath(self._port)
            self._monitor.set_port(path)
            port = serial.Serial(
                port=path,
                baudrate=self._config.baudrate,
                timeout=self._config.read_timeout_s,
                write_timeout=self._config.write_timeout_s,
                exclusive=self._config.exclusive,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._monitor.failure("open_failures", exc)
            logger.debug("open failed: %s", exc)
            return False
        with self._write_lock:
            self._serial = port
            self._fault.clear()
        self._monitor.count("opens")
        self._monitor.set_state(LinkState.CONNECTED)
        logger.info("opened %s at %d baud", path, self._config.baudrate)
        return True

    def _read_once(self, port: serial.Serial) -> bool | None:
        """Read what is available (waits up to ``read_timeout_s``); ``None`` if the port was lost."""
        try:
            data = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self._lose(exc)
            return None
        if self._fault.is_set():
            self._lose("write failed")
            return None
        if data:
            self._monitor.deliver(data)
        return bool(data)

    def _lose(self, error: BaseException | str) -> None:
        if self._stop.is_set():
            return
        logger.warning("serial port %s lost: %s", self.stats().port, error)
        self._monitor.failure("losses", error)
        self._close()
        self._monitor.set_state(LinkState.LOST)

    def _close(self) -> None:
        with self._write_lock:
            port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                logger.debug("close failed: %s", exc)
