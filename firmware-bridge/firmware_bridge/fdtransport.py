"""Transport over an already-open file descriptor, e.g. the master side of a pty (the "device" end)."""

import errno
import logging
import os
import select
import threading
import time

from firmware_bridge.transport import (
    DataCallback,
    LinkMonitor,
    LinkState,
    MonitoredTransport,
    StateCallback,
)

logger = logging.getLogger(__name__)

_READ_SIZE = 4096


class FdTransport(MonitoredTransport):
    """Reads and writes a raw fd in a thread. The fd is *not* owned: the caller closes it after :meth:`stop`.

    A pty master reports ``EIO`` while no process has the slave open; that is treated as "peer
    absent" (counted, retried after ``poll_s``) rather than as a fatal error.
    """

    def __init__(self, fd: int, *, name: str = "", poll_s: float = 0.1, write_timeout_s: float = 1.0) -> None:
        self._fd = fd
        self._poll_s = poll_s
        self._write_timeout_s = write_timeout_s
        self._monitor = LinkMonitor(name or f"fd:{fd}")
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_data: DataCallback, on_state: StateCallback) -> None:
        if self._thread is not None:
            raise RuntimeError("FdTransport already started")
        self._monitor.attach(on_data, on_state)
        os.set_blocking(self._fd, False)
        self._stop.clear()
        self._monitor.count("opens")
        self._monitor.set_state(LinkState.CONNECTED)
        self._thread = threading.Thread(target=self._run, name=f"fd-rx:{self._fd}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._monitor.set_state(LinkState.DISCONNECTED)

    def write(self, data: bytes) -> bool:
        if self._thread is None:
            self._monitor.count("writes_dropped")
            return False
        with self._write_lock:
            ok = self._write_all(memoryview(data))
        if ok:
            self._monitor.count("bytes_tx", len(data))
        return ok

    def _write_all(self, view: memoryview) -> bool:
        deadline = time.monotonic() + self._write_timeout_s
        while view:
            remaining = deadline - time.monotonic()
            try:
                _, writable, _ = select.select([], [self._fd], [], max(0.0, remaining))
                if not writable:
                    self._monitor.failure("write_timeouts", "write timed out")
                    return False
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                continue
            except (OSError, ValueError) as exc:
                self._monitor.failure("write_errors", exc)
                return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self._fd], [], [], self._poll_s)
                data = os.read(self._fd, _READ_SIZE) if readable else b""
            except BlockingIOError:
                continue
            except (OSError, ValueError) as exc:
                self._on_error(exc)
                continue
            if data:
                self._monitor.deliver(data)
            elif readable:
                self._stop.wait(self._poll_s)

    def _on_error(self, exc: OSError | ValueError) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            self._monitor.failure("losses", "peer absent (EIO)")
        else:
            logger.warning("fd %d read failed: %s", self._fd, exc)
            self._monitor.failure("losses", exc)
        self._stop.wait(self._poll_s)
