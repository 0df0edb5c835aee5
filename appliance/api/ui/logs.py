"""Recent log lines in memory: a bounded ring the System page and the diagnostics bundle read."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

RING_SIZE = 500


@dataclass(frozen=True)
class LogLine:
    created: float
    level: str
    name: str
    message: str

    def __str__(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created))
        return f"{stamp} {self.level} {self.name}: {self.message}"


class LogRing(logging.Handler):
    """Keeps the last `size` records (with tracebacks) as plain lines; never raises into the caller."""

    def __init__(self, size: int = RING_SIZE) -> None:
        super().__init__()
        self._lines: deque[LogLine] = deque(maxlen=size)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            line = LogLine(record.created, record.levelname, record.name, message)
        except Exception:  # a broken log call must not break the caller
            self.handleError(record)
            return
        with self._guard:
            self._lines.append(line)

    def lines(self, limit: int = RING_SIZE, min_level: int = logging.NOTSET) -> list[LogLine]:
        """The newest `limit` lines at `min_level` or above, oldest first."""
        with self._guard:
            kept = [line for line in self._lines if logging.getLevelName(line.level) >= min_level]
        return kept[-limit:] if limit > 0 else []


RING = LogRing()


def install() -> LogRing:
    """Attach the ring to the root logger once (idempotent); returns it."""
    root = logging.getLogger()
    if RING not in root.handlers:
        root.addHandler(RING)
    return RING
