"""Exponential backoff: the one rule for every retry in the appliance.

After `failures` consecutive failures the next attempt waits 0 while fewer than `free` attempts have
failed, then `first_s`, doubling after each further failure, at most `max_s`. A reconnect loop
(sources, NPU contexts, webhooks) uses the default `free=1`: the first attempt is immediate, the wait
after the first failure is `first_s`. Login throttling lets a few typing mistakes pass (`free=3`).

firmware_bridge has its own copy (firmware_bridge/transport.py): it is a distribution of its own
that the appliance depends on, so it cannot depend back on the appliance.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first_s: float
    max_s: float
    free: int = 1  # attempts made without waiting (the first always is)

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failures."""
        if failures < self.free:
            return 0.0
        return float(min(self.first_s * 2 ** (failures - self.free), max(self.max_s, self.first_s)))

    def delays(self) -> Iterator[float]:
        """The waits of one outage, after failure 1, 2, ...: what a retry loop sleeps."""
        return (self.delay(failures) for failures in itertools.count(1))
