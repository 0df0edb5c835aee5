"""Receiver rules of protocol 1.1 that decide what is answered and what is a duplicate (no I/O).

* :class:`NackPolicy` -- which rejected frames get a NACK: only HELLO, reliable types and unknown
  types; never ACK, NACK, HEARTBEAT or another unreliable type (no NACK storms). UNSUPPORTED_VERSION
  and UNKNOWN_TYPE are sent once per burst: again only after a valid frame arrived or
  ``NACK_BURST_S`` passed.
* :class:`Dedupe` -- per reliable type the last ACKed sequence number, its time and the peer's boot
  id. A repeat is a duplicate only within ``DUPLICATE_WINDOW_S`` of that ACK and from the same boot,
  so a sequence counter that wrapped (65,536 frames later) is never mistaken for a retransmission.
"""

from dataclasses import dataclass

from firmware_bridge.codec import Reject
from firmware_bridge.messages import NACKABLE_TYPES, ErrorCode, MessageType
from firmware_bridge.protocol import DUPLICATE_WINDOW_S, NACK_BURST_S

_BURST_CODES = frozenset({ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNKNOWN_TYPE})


def _known(type_code: int) -> bool:
    return type_code in MessageType._value2member_map_


class NackPolicy:
    """Not thread-safe: the session holds its lock."""

    def __init__(self, burst_s: float = NACK_BURST_S) -> None:
        self._burst_s = burst_s
        self._last_burst_nack: float | None = None
        self._valid_since = True
        self.suppressed = 0

    def valid_frame(self) -> None:
        """A valid frame arrived: the next bad-version / unknown-type frame starts a new burst."""
        self._valid_since = True

    def should_nack(self, reject: Reject, now: float, *, known: bool = True) -> bool:
        """``known=False``: the type is unknown to this side (a 1.0 side and a 1.1-only type)."""
        if known and _known(reject.type_code) and reject.type_code not in NACKABLE_TYPES:
            self.suppressed += 1
            return False
        if reject.code not in _BURST_CODES:
            return True
        last = self._last_burst_nack
        if not self._valid_since and last is not None and now - last < self._burst_s:
            self.suppressed += 1
            return False
        self._last_burst_nack = now
        self._valid_since = False
        return True


@dataclass(slots=True)
class _Seen:
    seq: int
    at: float
    boot_id: int


class Dedupe:
    """Not thread-safe: the session holds its lock."""

    def __init__(self, window_s: float = DUPLICATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._seen: dict[int, _Seen] = {}
        self._boot_id = 0

    def peer_boot(self, boot_id: int) -> None:
        """The peer's HELLO named its boot id; a new one clears the memory (the peer restarted)."""
        if boot_id != self._boot_id:
            self._seen.clear()
            self._boot_id = boot_id

    def clear(self) -> None:
        self._seen.clear()

    def is_duplicate(self, type_code: int, seq: int, now: float) -> bool:
        seen = self._seen.get(type_code)
        return (
            seen is not None
            and seen.seq == seq
            and seen.boot_id == self._boot_id
            and now - seen.at <= self._window_s
        )

    def acked(self, type_code: int, seq: int, now: float) -> None:
        self._seen[type_code] = _Seen(seq, now, self._boot_id)
