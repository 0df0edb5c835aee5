"""Snapshot types returned by :meth:`firmware_bridge.session.Session.stats`."""

from dataclasses import asdict, dataclass, fields
from typing import Any

from firmware_bridge.codec import DecoderStats
from firmware_bridge.messages import Heartbeat, Hello
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
    retries: int = 0
    timeouts: int = 0
    outbox_dropped: int = 0
    stray_acks: int = 0
    handshakes: int = 0
    link_losses: int = 0
    incompatible: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class SessionStats:
    state: str
    peer: Hello | None
    peer_heartbeat: Heartbeat | None
    counters: SessionCounters
    decoder: DecoderStats
    transport: TransportStats

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly nested dict (for a status API)."""
        return {
            "state": self.state,
            "peer": None if self.peer is None else asdict(self.peer),
            "peer_heartbeat": None if self.peer_heartbeat is None else asdict(self.peer_heartbeat),
            "counters": self.counters.as_dict(),
            "decoder": self.decoder.as_dict(),
            "transport": {**asdict(self.transport), "state": self.transport.state.value},
        }
