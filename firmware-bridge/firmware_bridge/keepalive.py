"""Timers of a session: heartbeat period, HELLO retry period and the link-lost timeout (no I/O)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeepalivePolicy:
    heartbeat_interval_s: float
    hello_interval_s: float
    link_timeout_s: float


class Keepalive:
    """Deadline bookkeeping in seconds of a monotonic clock. Not thread-safe: the session locks."""

    def __init__(self, policy: KeepalivePolicy) -> None:
        self._policy = policy
        self._started_at = 0.0
        self._last_rx = 0.0
        self._next_heartbeat = 0.0
        self._next_hello = 0.0

    def start(self, now: float) -> None:
        self._started_at = now
        self.restart(now)
        self._next_heartbeat = now + self._policy.heartbeat_interval_s

    def restart(self, now: float) -> None:
        """Link (re)established: send HELLO now, and count silence from now."""
        self._last_rx = now
        self._next_hello = now

    def heard(self, now: float) -> None:
        self._last_rx = now

    def uptime_ms(self, now: float) -> int:
        return int((now - self._started_at) * 1000)

    def silence(self, now: float) -> float:
        return now - self._last_rx

    def heartbeat_due(self, now: float) -> bool:
        if now < self._next_heartbeat:
            return False
        self._next_heartbeat = now + self._policy.heartbeat_interval_s
        return True

    def hello_due(self, now: float) -> bool:
        if now < self._next_hello:
            return False
        self._next_hello = now + self._policy.hello_interval_s
        return True

    def link_expired(self, now: float) -> bool:
        return now - self._last_rx >= self._policy.link_timeout_s

    def next_deadline(self, *, ready: bool) -> float:
        """Earliest time one of the timers needs attention."""
        other = self._last_rx + self._policy.link_timeout_s if ready else self._next_hello
        return min(self._next_heartbeat, other)
