"""Configuration of a :class:`firmware_bridge.session.Session`."""

from dataclasses import dataclass, field

from firmware_bridge.identity import Identity
from firmware_bridge.protocol import (
    ACK_TIMEOUT_S,
    DUPLICATE_WINDOW_S,
    HEARTBEAT_INTERVAL_S,
    HELLO_INTERVAL_S,
    INTER_BYTE_TIMEOUT_S,
    LINK_TIMEOUT_S,
    MAX_RETRIES,
    TIME_SYNC_INTERVAL_S,
)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Protocol timing (defaults are the normative values of PROTOCOL.md) and buffer bounds."""

    identity: Identity = field(default_factory=Identity)
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    link_timeout_s: float = LINK_TIMEOUT_S
    ack_timeout_s: float = ACK_TIMEOUT_S
    max_retries: int = MAX_RETRIES
    hello_interval_s: float = HELLO_INTERVAL_S
    rx_queue_size: int = 256
    """Bound of the receive queue; when full, the oldest unreliable message is dropped and
    reliable ones are NACKed with BUSY (the peer retries)."""
    outbox_size: int = 64
    """Reliable messages per type that may wait behind the one in flight."""
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    inter_byte_timeout_s: float = INTER_BYTE_TIMEOUT_S
    time_sync_interval_s: float = TIME_SYNC_INTERVAL_S
    """How often the clock is sampled with TIME_REQUEST when the peer advertises TIME_SYNC; 0: never
    (devices answer requests but do not send them)."""
    clock_offset_ms: int = 0
    """Added to this side's ms clock (uptime) in HEARTBEAT and TIME_REPLY; a simulator knob for a
    device whose clock is far from the host's."""

    def __post_init__(self) -> None:
        timings = (
            self.heartbeat_interval_s,
            self.link_timeout_s,
            self.ack_timeout_s,
            self.hello_interval_s,
            self.duplicate_window_s,
            self.inter_byte_timeout_s,
        )
        if min(timings) <= 0:
            raise ValueError("session intervals and timeouts must be > 0")
        if self.max_retries < 0 or self.rx_queue_size < 1 or self.outbox_size < 0:
            raise ValueError("max_retries >= 0, rx_queue_size >= 1 and outbox_size >= 0 are required")
        if self.time_sync_interval_s < 0:
            raise ValueError("time_sync_interval_s must be >= 0")
