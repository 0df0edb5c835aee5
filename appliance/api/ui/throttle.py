"""Exponential backoff after failed logins, per client address (the rule: appliance/backoff.py).

A few attempts are free (typing mistakes); after that each failure doubles the wait before the next
attempt is accepted, up to a cap. A successful login clears the address's record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from appliance.backoff import Backoff

FREE_FAILURES = 3
BASE_DELAY_S = 1.0
MAX_DELAY_S = 300.0
MAX_CLIENTS = 10_000  # forget everybody beyond this many addresses (bounded memory)


@dataclass
class _Record:
    failures: int
    last: float


class LoginBackoff:
    def __init__(self, free: int = FREE_FAILURES, base_s: float = BASE_DELAY_S, cap_s: float = MAX_DELAY_S):
        self.rule = Backoff(base_s, cap_s, free)
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds before `client` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._records.get(client)
        if record is None:
            return 0.0
        return max(0.0, record.last + self.rule.delay(record.failures) - now)

    def failed(self, client: str, now: float | None = None) -> float:
        """Record a failure; returns the wait before the next attempt."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if client not in self._records and len(self._records) >= MAX_CLIENTS:
                self._records.clear()
            record = self._records.setdefault(client, _Record(0, now))
            record.failures += 1
            record.last = now
            return self.rule.delay(record.failures)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)
