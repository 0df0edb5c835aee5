"""Per-frame failures of the running pipeline: counted, kept for status and the views, logged sparingly.

A model that was proven at activation can still fail on some frames (another camera, a bad frame);
those failures must be visible: `FaultLog` keeps the last error, whether the newest frame failed,
and logs at most one warning per LOG_EVERY_S with the number of failures in between.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

LOG_EVERY_S = 10.0


class FaultLog:
    def __init__(self, log_every_s: float = LOG_EVERY_S) -> None:
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.failing = False  # the newest source frame failed
        self._log_every = log_every_s
        self._logged_at = float("-inf")
        self._unlogged = 0
        self._lock = threading.Lock()

    def failed(self, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            self.last_error, self.last_error_at, self.failing = message, time.time(), True
            self._unlogged += 1
            if now - self._logged_at < self._log_every:
                return
            count, self._unlogged, self._logged_at = self._unlogged, 0, now
        logger.warning("frames are failing: %s (%d failure(s) since the last report)", message, count)

    def succeeded(self) -> None:
        if self.failing:
            with self._lock:
                self.failing = False
            logger.info("frames are producing results again")

    def clear(self) -> None:
        """A new model or source: the old failures no longer describe what runs."""
        with self._lock:
            self.failing = False
            self.last_error = None
            self.last_error_at = None

    def status(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "failing": self.failing,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }
