"""Delivery tracking for sent messages and the stop-and-wait :class:`Outbox` of reliable types.

At most one message per reliable type is in flight; later ones wait in a bounded FIFO. The
in-flight message is retransmitted with the *same* sequence number every ``ack_timeout_s`` until
it is ACKed, NACKed with a final code, or ``1 + max_retries`` transmissions went unanswered.

A message may have a *deadline* (monotonic seconds): once it has passed, the message is never sent
or retransmitted again -- it resolves ``EXPIRED`` whether it was still queued or in flight. So a
peer that answers BUSY for a while gets no stale burst afterwards.
"""

import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from firmware_bridge.messages import RETRYABLE_ERRORS, Message


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    """Unreliable message handed to the transport."""
    ACKED = "acked"
    NACKED = "nacked"
    TIMED_OUT = "timed_out"
    """No ACK after all retries (``code`` holds the last retryable NACK code, if any)."""
    DROPPED = "dropped"
    """Not sent: transport down (unreliable types), outbox full, session stopped, or a type the peer
    did not advertise."""
    EXPIRED = "expired"
    """Its deadline passed before it was ACKed; not sent (again) after that."""


class Delivery:
    """Thread-safe outcome of one :meth:`Session.send` call."""

    def __init__(self, message: Message) -> None:
        self._message = message
        self._status = DeliveryStatus.PENDING
        self._code: int | None = None
        self._done = threading.Event()

    def __repr__(self) -> str:
        return f"Delivery({self._message.TYPE.name} seq={self._message.seq} {self._status.value})"

    @property
    def message(self) -> Message:
        """The message as sent, with its assigned ``seq``."""
        return self._message

    @property
    def seq(self) -> int:
        return self._message.seq

    @property
    def status(self) -> DeliveryStatus:
        return self._status

    @property
    def code(self) -> int | None:
        """NACK error code (see :class:`firmware_bridge.messages.ErrorCode`), if any."""
        return self._code

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> DeliveryStatus:
        """Block until resolved or ``timeout`` seconds passed; returns the (possibly PENDING) status."""
        self._done.wait(timeout)
        return self._status

    def resolve(self, status: DeliveryStatus, code: int | None = None) -> None:
        if self._done.is_set():
            return
        self._status = status
        if code is not None:
            self._code = code
        self._done.set()

    def note_code(self, code: int) -> None:
        self._code = code


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    frame: bytes
    attempts: int = 0
    deadline: float = 0.0
    """Next retransmission time."""
    expires: float | None = None
    """The message's own deadline (``None``: none)."""


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    capacity: int
    ack_timeout_s: float
    max_retries: int


class Outbox:
    """Sender state for one reliable message type. Not thread-safe: the session holds its lock.

    Methods return the frames that must be transmitted now.
    """

    def __init__(self, policy: OutboxPolicy) -> None:
        self._policy = policy
        self._inflight: _Pending | None = None
        self._queue: deque[_Pending] = deque()
        self.retries = 0
        self.timeouts = 0
        self.dropped = 0
        self.expired = 0
        self.stray_acks = 0

    @property
    def pending(self) -> int:
        return len(self._queue) + (self._inflight is not None)

    def next_deadline(self) -> float | None:
        times = [p.expires for p in self._queue if p.expires is not None]
        if self._inflight is not None:
            times.append(self._inflight.deadline)
            if self._inflight.expires is not None:
                times.append(self._inflight.expires)
        return min(times) if times else None

    def submit(
        self, delivery: Delivery, frame: bytes, now: float, expires: float | None = None
    ) -> list[bytes]:
        pending = _Pending(delivery, frame, expires=expires)
        if expires is not None and now >= expires:
            self._expire(pending)
            return []
        if self._inflight is None:
            return self._launch(pending, now)
        if len(self._queue) >= self._policy.capacity:
            self.dropped += 1
            delivery.resolve(DeliveryStatus.DROPPED)
            return []
        self._queue.append(pending)
        return []

    def on_ack(self, seq: int, now: float) -> list[bytes]:
        if not self._matches(seq):
            return []
        return self._finish(DeliveryStatus.ACKED, None, now)

    def on_nack(self, seq: int, code: int, now: float) -> list[bytes]:
        if not self._matches(seq) or self._inflight is None:
            return []
        if code in RETRYABLE_ERRORS:
            self._inflight.delivery.note_code(code)
            return []
        return self._finish(DeliveryStatus.NACKED, code, now)

    def due(self, now: float) -> list[bytes]:
        self._expire_queued(now)
        pending = self._inflight
        if pending is not None and pending.expires is not None and now >= pending.expires:
            self._inflight = None
            self._expire(pending)
            return self._next(now)
        if pending is None or now < pending.deadline:
            return []
        if pending.attempts > self._policy.max_retries:
            self.timeouts += 1
            return self._finish(DeliveryStatus.TIMED_OUT, None, now)
        self.retries += 1
        return self._transmit(pending, now)

    def drop_all(self) -> None:
        for pending in (self._inflight, *self._queue):
            if pending is not None:
                pending.delivery.resolve(DeliveryStatus.DROPPED)
        self._inflight = None
        self._queue.clear()

    def _matches(self, seq: int) -> bool:
        if self._inflight is not None and self._inflight.delivery.seq == seq:
            return True
        self.stray_acks += 1
        return False

    def _finish(self, status: DeliveryStatus, code: int | None, now: float) -> list[bytes]:
        if self._inflight is not None:
            self._inflight.delivery.resolve(status, code)
        self._inflight = None
        return self._next(now)

    def _next(self, now: float) -> list[bytes]:
        self._expire_queued(now)
        if self._queue:
            return self._launch(self._queue.popleft(), now)
        return []

    def _expire_queued(self, now: float) -> None:
        if not any(p.expires is not None and now >= p.expires for p in self._queue):
            return
        keep: deque[_Pending] = deque()
        for pending in self._queue:
            if pending.expires is not None and now >= pending.expires:
                self._expire(pending)
            else:
                keep.append(pending)
        self._queue = keep

    def _expire(self, pending: _Pending) -> None:
        self.expired += 1
        pending.delivery.resolve(DeliveryStatus.EXPIRED, pending.delivery.code)

    def _launch(self, pending: _Pending, now: float) -> list[bytes]:
        self._inflight = pending
        return self._transmit(pending, now)

    def _transmit(self, pending: _Pending, now: float) -> list[bytes]:
        pending.attempts += 1
        pending.deadline = now + self._policy.ack_timeout_s
        return [pending.frame]
