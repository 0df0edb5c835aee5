"""State, timers and the transmit path of a session (the receive side and the API are in
:mod:`firmware_bridge.session`): sequence numbers, heartbeats, HELLO retries, link-lost detection,
retransmissions and deadlines, time-sync requests, and what is forgotten when the link goes."""

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from firmware_bridge.codec import Decoder, Reject, encode
from firmware_bridge.delivery import Outbox, OutboxPolicy
from firmware_bridge.inbox import Inbox, MessageCallback
from firmware_bridge.keepalive import Keepalive, KeepalivePolicy
from firmware_bridge.messages import RELIABLE_TYPES, DeviceStatus, Heartbeat, Hello, HelloFlag, Message
from firmware_bridge.peer_rules import may_send, syncs_time
from firmware_bridge.protocol import REF_SEQ_NONE, SEQ_MODULO
from firmware_bridge.replies import Dedupe, NackPolicy
from firmware_bridge.session_config import SessionConfig
from firmware_bridge.session_state import SessionState, StateTracker
from firmware_bridge.session_stats import SessionCounters
from firmware_bridge.timesync import ClockSync
from firmware_bridge.transport import LinkState, Transport

logger = logging.getLogger(__name__)

_U32 = 0xFFFF_FFFF
_MAX_WAIT_S = 1.0


class SessionCore:
    """Base of :class:`firmware_bridge.session.Session`; all methods expect the caller to hold
    ``self._lock`` unless they say otherwise."""

    def __init__(
        self,
        transport: Transport,
        config: SessionConfig | None,
        on_message: MessageCallback | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._config = config or SessionConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._dirty = False
        self._states = StateTracker()
        self._seq = secrets.randbelow(REF_SEQ_NONE)
        cfg = self._config
        policy = OutboxPolicy(cfg.outbox_size, cfg.ack_timeout_s, cfg.max_retries)
        self._outboxes: dict[int, Outbox] = {t: Outbox(policy) for t in sorted(RELIABLE_TYPES)}
        self._timers = Keepalive(
            KeepalivePolicy(cfg.heartbeat_interval_s, cfg.hello_interval_s, cfg.link_timeout_s)
        )
        self._dedupe = Dedupe(cfg.duplicate_window_s)
        self._nack_policy = NackPolicy()
        self._clock_sync = ClockSync()
        self._next_time_sync = 0.0
        self._boot_id = secrets.randbits(32)
        self._minor = 0  # negotiated minor version while READY
        self._counts = SessionCounters().as_dict()
        self._peer: Hello | None = None
        self._peer_heartbeat: Heartbeat | None = None
        self._peer_status: DeviceStatus | None = None
        self._rx_lock = threading.Lock()
        self._rejects: list[Reject] = []
        self._decoder = Decoder(self._rejects.append, cfg.inter_byte_timeout_s)
        self._inbox = Inbox(cfg.rx_queue_size, on_message)
        self._thread: threading.Thread | None = None

    def device_ms(self, now: float | None = None) -> int:
        """This side's ms clock as sent in HEARTBEAT / TIME_REPLY (uptime + ``clock_offset_ms``)."""
        at = self._clock() if now is None else now
        return (self._timers.uptime_ms(at) + self._config.clock_offset_ms) & _U32

    # -- timers (session thread) ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._states.state is SessionState.STOPPED:
                    return
                frames = self._collect_due(self._clock())
            self._transmit(frames)
            self._states.announce()
            with self._wake:
                if self._stopped():
                    return
                if not self._dirty:
                    self._wake.wait(self._seconds_until_due(self._clock()))
                self._dirty = False

    def _collect_due(self, now: float) -> list[bytes]:
        link_up = self._transport.state is LinkState.CONNECTED
        frames: list[bytes] = []
        if self._timers.heartbeat_due(now) and link_up:
            frames.append(self._frame(self._heartbeat(now)))
        if self._states.state is SessionState.READY and self._timers.link_expired(now):
            logger.warning("link lost: nothing received for %.1f s", self._timers.silence(now))
            self._lose_link()
            self._timers.restart(now)
        if self._states.state is not SessionState.READY and self._timers.hello_due(now) and link_up:
            frames.append(self._hello_frame(request=True))
        if self._time_sync_due(now) and link_up:
            frames.append(self._frame(self._clock_sync.request(now)))
        for outbox in self._outboxes.values():
            frames += outbox.due(now)
        return frames

    def _seconds_until_due(self, now: float) -> float:
        deadlines = [self._timers.next_deadline(ready=self._states.state is SessionState.READY)]
        if self._syncs_time():
            deadlines.append(self._next_time_sync)
        deadlines += [d for d in (o.next_deadline() for o in self._outboxes.values()) if d is not None]
        return min(_MAX_WAIT_S, max(0.0, min(deadlines) - now))

    # -- helpers (callers hold self._lock unless stated) ----------------------------------------

    def _stopped(self) -> bool:
        return self._states.state is SessionState.STOPPED

    def _lose_link(self) -> None:
        self._counts["link_losses"] += 1
        self._states.set(SessionState.LINK_LOST)
        self._forget_peer()

    def _forget_peer(self) -> None:
        """Link lost or port gone: the peer's identity, heartbeat, status and clock are unknown now."""
        self._peer = None
        self._peer_heartbeat = None
        self._peer_status = None
        self._clock_sync.clear()

    def _peer_accepts(self, type_code: int) -> bool:
        ok = may_send(self._config.identity, self._peer, type_code)
        self._counts["unadvertised"] += int(not ok)
        return ok

    def _syncs_time(self) -> bool:
        ready = self._states.state is SessionState.READY
        return (
            ready and self._config.time_sync_interval_s > 0 and syncs_time(self._config.identity, self._peer)
        )

    def _time_sync_due(self, now: float) -> bool:
        if not self._syncs_time() or now < self._next_time_sync:
            return False
        # a quick round of samples after the handshake (the best round trip wins), then one per interval
        quick = self._clock_sync.sample_count < 8
        self._next_time_sync = now + (0.1 if quick else self._config.time_sync_interval_s)
        return True

    def _notify(self) -> None:
        self._dirty = True
        self._wake.notify_all()

    def _take_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % SEQ_MODULO
        if self._seq == REF_SEQ_NONE and self._config.identity.minor_version > 0:
            self._seq = 0  # 1.1: 0xFFFF is "no message" in RESULT.ref_seq, never a sequence number
        return seq

    def _frame(self, message: Message) -> bytes:
        return encode(replace(message, seq=self._take_seq()))

    def _hello_frame(self, *, request: bool) -> bytes:
        flags = HelloFlag.REPLY_REQUESTED if request else 0
        return self._frame(self._config.identity.hello(int(flags), self._boot_id))

    def _heartbeat(self, now: float) -> Heartbeat:
        decoder = self._decoder.stats
        return Heartbeat(
            uptime_ms=self.device_ms(now),
            rx_frames=decoder.frames_ok & _U32,
            rx_errors=decoder.errors & _U32,
            tx_frames=self._counts["tx_frames"] & _U32,
            tx_retries=sum(o.retries for o in self._outboxes.values()) & _U32,
        )

    def _transmit(self, frames: list[bytes]) -> bool:
        """Write frames (caller must NOT hold the lock); returns whether all were written."""
        ok = True
        for frame in frames:
            written = self._transport.write(frame)
            ok = ok and written
            with self._lock:
                self._counts["tx_frames" if written else "tx_failed"] += 1
        return ok
