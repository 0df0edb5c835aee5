"""A transport wrapper that emulates a UART's wire time and the 1.1 transmit priority rule.

``PacedTransport(inner, baudrate)`` accepts whole frames from :meth:`write` without blocking and
hands them to ``inner`` in chunks no faster than the baud rate allows (10 bits per byte, 8N1), like
a device whose UART drains a FIFO. Frames are queued in two classes (PROTOCOL.md section 7.4):
control frames (everything but SENSOR_FRAME) are sent before any bulk frame that has not started;
a bulk frame that started is finished first, because frames cannot interleave on the wire. The
simulator uses it with ``--uart-baud`` and ``firmware_bridge.linkbench`` to measure link figures
on a pty (whose own throughput is unlimited).
"""

import threading
import time
from collections import deque

from firmware_bridge.messages import MessageType
from firmware_bridge.transport import DataCallback, LinkState, StateCallback, Transport, TransportStats

CHUNK = 64
"""Bytes handed to the inner transport at once (a typical UART FIFO)."""
MAX_QUEUED = 64 * 1024
_SENSOR_TYPE_BYTE = MessageType.SENSOR_FRAME


def _is_bulk(frame: bytes) -> bool:
    # COBS: byte 0 is a code, byte 1 the header version, byte 2 the type unless the code is 1 (a zero
    # at offset 1), which never happens for version 1; delimiters alone are control.
    return len(frame) > 3 and frame[2] == _SENSOR_TYPE_BYTE


class PacedTransport:
    def __init__(self, inner: Transport, baudrate: int) -> None:
        self._inner = inner
        self._byte_s = 10.0 / baudrate
        self._control: deque[bytes] = deque()
        self._bulk: deque[bytes] = deque()
        self._current: memoryview | None = None
        self._queued = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    @property
    def state(self) -> LinkState:
        return self._inner.state

    def stats(self) -> TransportStats:
        return self._inner.stats()

    def start(self, on_data: DataCallback, on_state: StateCallback) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="uart-tx", daemon=True)
        self._thread.start()
        self._inner.start(on_data, on_state)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._inner.stop()

    def write(self, data: bytes) -> bool:
        with self._cond:
            if self._stop or self._queued + len(data) > MAX_QUEUED:
                self.dropped += 1
                return False
            (self._bulk if _is_bulk(data) else self._control).append(data)
            self._queued += len(data)
            self._cond.notify_all()
        return True

    def _next_chunk(self) -> bytes | None:
        """Caller holds the condition."""
        if self._current is None:
            if self._control:
                self._current = memoryview(self._control.popleft())
            elif self._bulk:
                self._current = memoryview(self._bulk.popleft())
            else:
                return None
        chunk, self._current = bytes(self._current[:CHUNK]), self._current[CHUNK:]
        if not self._current:
            self._current = None
        self._queued -= len(chunk)
        return chunk

    def _run(self) -> None:
        wire_free_at = time.monotonic()
        while True:
            with self._cond:
                chunk = self._next_chunk()
                while chunk is None and not self._stop:
                    self._cond.wait()
                    chunk = self._next_chunk()
                if self._stop:
                    return
            assert chunk is not None
            now = time.monotonic()
            start = max(now, wire_free_at)
            wire_free_at = start + len(chunk) * self._byte_s
            if wire_free_at > now:
                time.sleep(wire_free_at - now)  # the bytes are "on the wire" until then
            self._inner.write(chunk)
