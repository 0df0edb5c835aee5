"""Snapshot types returned by :meth:`firmware_bridge.session.Session.stats`."""

from dataclasses import asdict, dataclass, fields
from typing import Any

from firmware_bridge.codec import DecoderStats
from firmware_bridge.messages import DeviceStatus, Heartbeat, Hello
from firmware_bridge.transport import TransportStats


@dataclass(frozen=True, slots=True)
class SessionCounters:
    tx_frames: int = 0
    tx_failed: int = 0
    """Frames the transport refused (link down, write error or timeout)."""
    rx_messages: int = 0
    delivered: int = 0
    duplicates: int = 0
    rx_dropped: int = 0
    """Unreliable messages dropped because the receive queue was full."""
    acks_rx: int = 0
    nacks_rx: int = 0
    nacks_tx: int = 0
    """Every NACK sent, including UNSUPPORTED_VERSION for an incompatible HELLO."""
    nacks_suppressed: int = 0
    """Rejected frames not answered: ACK/NACK/HEARTBEAT/unreliable types, or a burst already NACKed."""
    retries: int = 0
    timeouts: int = 0
    expired: int = 0
    """Reliable messages not sent (again) because their deadline passed."""
    outbox_dropped: int = 0
    unadvertised: int = 0
    """Messages not sent because the peer did not advertise the type (or is 1.0 and it is 1.1-only)."""
    stray_acks: int = 0
    handshakes: int = 0
    link_losses: int = 0
    incompatible: int = 0
    schema_mismatch: int = 0
    time_replies: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class SessionStats:
    state: str
    peer: Hello | None
    peer_heartbeat: Heartbeat | None
    peer_status: DeviceStatus | None
    clock_offset_ms: float | None
    """Peer clock minus our clock from time sync (``None``: not synchronised)."""
    protocol: str
    """Negotiated version, e.g. "1.1" ("" before the handshake)."""
    counters: SessionCounters
    decoder: DecoderStats
    transport: TransportStats

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly nested dict (for a status API)."""
        return {
            "state": self.state,
            "peer": None if self.peer is None else asdict(self.peer),
            "peer_heartbeat": None if self.peer_heartbeat is None else asdict(self.peer_heartbeat),
            "peer_status": None if self.peer_status is None else asdict(self.peer_status),
            "clock_offset_ms": None if self.clock_offset_ms is None else round(self.clock_offset_ms, 1),
            "protocol": self.protocol,
            "counters": self.counters.as_dict(),
            "decoder": self.decoder.as_dict(),
            "transport": {**asdict(self.transport), "state": self.transport.state.value},
        }
