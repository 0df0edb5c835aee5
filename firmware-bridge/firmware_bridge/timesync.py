"""Host <-> device clock mapping from TIME_REQUEST / TIME_REPLY pairs (protocol 1.1, no I/O).

The host sends ``TIME_REQUEST(token)`` at host time t0; the device answers ``TIME_REPLY(token,
device_ms)`` with its clock when the request arrived; the reply arrives at t1. Assuming the device
read its clock half way, device_ms corresponds to host time (t0 + t1) / 2, uncertain by half the
round trip. The sample with the shortest round trip among the last ``SAMPLES`` is used, so one
delayed reply (behind a SENSOR_FRAME) does not move the estimate. Device timestamps (u32 ms, wrap
every ~49.7 days) are converted relative to that sample with signed 32-bit arithmetic, which is
right for timestamps within ~24 days of it.
"""

from collections import deque
from dataclasses import dataclass

from firmware_bridge.messages import TimeReply, TimeRequest

SAMPLES = 8
_U32 = 0x1_0000_0000
_HALF = 0x8000_0000


@dataclass(frozen=True, slots=True)
class ClockSample:
    device_ms: int
    host_s: float
    """Host (session clock) time matching ``device_ms``."""
    round_trip_s: float


class ClockSync:
    """Not thread-safe: the session holds its lock."""

    def __init__(self) -> None:
        self._sent: dict[int, float] = {}
        self._samples: deque[ClockSample] = deque(maxlen=SAMPLES)
        self._next_token = 1

    def clear(self) -> None:
        self._sent.clear()
        self._samples.clear()

    def request(self, now: float) -> TimeRequest:
        token = self._next_token
        self._next_token = (token + 1) % _U32 or 1
        self._sent[token] = now
        while len(self._sent) > SAMPLES:
            del self._sent[next(iter(self._sent))]
        return TimeRequest(token)

    def on_reply(self, reply: TimeReply, now: float) -> bool:
        """Use a reply; ``False`` for an unknown or stale token."""
        sent = self._sent.pop(reply.token, None)
        if sent is None or now < sent:
            return False
        self._samples.append(ClockSample(reply.device_ms, (sent + now) / 2, now - sent))
        return True

    @property
    def sample_count(self) -> int:
        return len(self._samples)

    @property
    def best(self) -> ClockSample | None:
        return min(self._samples, key=lambda s: s.round_trip_s) if self._samples else None

    def to_host(self, device_ms: int) -> float | None:
        """Host time of a device timestamp, or ``None`` before the first reply."""
        sample = self.best
        if sample is None:
            return None
        delta = (device_ms - sample.device_ms + _HALF) % _U32 - _HALF
        return sample.host_s + delta / 1000.0

    def offset_ms(self) -> float | None:
        """Device clock minus host clock, in ms (for status)."""
        sample = self.best
        return None if sample is None else sample.device_ms - sample.host_s * 1000.0
