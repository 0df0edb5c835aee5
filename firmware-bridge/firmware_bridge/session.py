"""Session layer over a :class:`~firmware_bridge.transport.Transport`.

Handles the HELLO handshake (versions, 1.1 schema hash and boot id), heartbeats, link-lost
detection, ACK/NACK of reliable messages (never answering ACK/NACK/unreliable frames, one NACK per
burst: :mod:`firmware_bridge.replies`), retransmission and deadlines
(:class:`~firmware_bridge.delivery.Outbox`), exact duplicate suppression, time sync
(:mod:`firmware_bridge.timesync`) and the advertised-types rule (:mod:`firmware_bridge.peer_rules`).
Both ends of the link run the same state machine (the simulator uses this class as the "device").

Received SENSOR_FRAME, TRIGGER, RESULT, IO_SET and ENTER_BOOTLOADER messages go to ``on_message``
(called on the transport's reader thread; keep it short) or, without a callback, to a bounded queue
read with :meth:`Session.receive`. HELLO, ACK, NACK, HEARTBEAT, TIME_* and DEVICE_STATUS are
consumed by the session; the peer's HELLO, last HEARTBEAT and DEVICE_STATUS are in
:meth:`Session.stats` until the link is lost.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from firmware_bridge.codec import Reject, encode
from firmware_bridge.delivery import Delivery, DeliveryStatus
from firmware_bridge.inbox import MessageCallback
from firmware_bridge.messages import (
    MINOR1_TYPES,
    Ack,
    DeviceStatus,
    EnterBootloader,
    ErrorCode,
    Heartbeat,
    Hello,
    IoSet,
    Message,
    MessageType,
    Nack,
    Result,
    SensorFrame,
    TimeReply,
    TimeRequest,
    Trigger,
)
from firmware_bridge.peer_rules import refusal
from firmware_bridge.protocol import BOOTLOADER_MAGIC, DEFAULT_BAUDRATE, DELIMITER
from firmware_bridge.session_config import SessionConfig
from firmware_bridge.session_core import SessionCore
from firmware_bridge.session_state import SessionState, StateListener
from firmware_bridge.session_stats import SessionCounters, SessionStats
from firmware_bridge.transport import LinkState, PortSpec, SerialTransport, Transport, TransportConfig

logger = logging.getLogger(__name__)

AcceptHook = Callable[[Message], int | None]
"""Called for each new reliable message before it is delivered; return a NACK code to refuse it."""


class Session(SessionCore):
    """Thread-safe protocol session. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        transport: Transport,
        config: SessionConfig | None = None,
        *,
        on_message: MessageCallback | None = None,
        accept: AcceptHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(transport, config, on_message, clock)
        self._accept = accept
        self._handlers: dict[MessageType, Callable[[Message, float], None]] = {
            MessageType.HELLO: self._on_hello,
            MessageType.ACK: self._on_ack,
            MessageType.NACK: self._on_ack,
            MessageType.HEARTBEAT: self._on_heartbeat,
            MessageType.TIME_REQUEST: self._on_time_request,
            MessageType.TIME_REPLY: self._on_time_reply,
            MessageType.DEVICE_STATUS: self._on_device_status,
            MessageType.SENSOR_FRAME: self._on_unreliable,
            MessageType.TRIGGER: self._on_reliable,
            MessageType.RESULT: self._on_reliable,
            MessageType.IO_SET: self._on_reliable,
            MessageType.ENTER_BOOTLOADER: self._on_reliable,
        }

    @classmethod
    def open(
        cls,
        port: PortSpec,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        config: SessionConfig | None = None,
        on_message: MessageCallback | None = None,
    ) -> "Session":
        """A session on a serial port path (or a callable returning it); call :meth:`start` next."""
        return cls(SerialTransport(port, TransportConfig(baudrate=baudrate)), config, on_message=on_message)

    # -- public API --------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._states.state

    @property
    def peer(self) -> Hello | None:
        """The peer's last HELLO (identity, versions, capabilities); ``None`` after link loss."""
        return self._peer

    @property
    def boot_id(self) -> int:
        """Random per session object; sent in the 1.1 HELLO so the peer can tell a restart."""
        return self._boot_id

    def peer_time(self, peer_ms: int) -> float | None:
        """Our clock's time (``clock``, default monotonic) of a peer timestamp such as
        ``SensorFrame.timestamp_ms``; ``None`` until a TIME_REPLY arrived (1.0 peer: never)."""
        with self._lock:
            return self._clock_sync.to_host(peer_ms)

    def enter_bootloader(self, mode: int = 0) -> Delivery:
        """Ask the device to reset into its update bootloader (ACKed, then it leaves the link)."""
        return self.send(EnterBootloader(BOOTLOADER_MAGIC, mode))

    @property
    def transport(self) -> Transport:
        return self._transport

    def add_state_listener(self, listener: StateListener) -> None:
        """``listener(state)`` is called (from an internal thread) on every state change."""
        self._states.add_listener(listener)

    def start(self) -> None:
        with self._lock:
            if self._states.state is not SessionState.STOPPED:
                raise RuntimeError("session already started")
            self._timers.start(self._clock())
            self._states.set(SessionState.CONNECTING, starting=True)
        self._states.announce()
        self._thread = threading.Thread(target=self._run, name="fb-session", daemon=True)
        self._thread.start()
        self._transport.start(self._on_data, self._on_link)

    def stop(self) -> None:
        """Stop timers and the transport; pending reliable deliveries resolve as DROPPED."""
        with self._lock:
            if self._states.state is SessionState.STOPPED:
                return
            self._states.set(SessionState.STOPPED)
            self._wake.notify_all()
        self._transport.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            for outbox in self._outboxes.values():
                outbox.drop_all()
        self._states.announce()

    def __enter__(self) -> "Session":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the handshake completed (state READY) or ``timeout``; returns whether ready."""
        return self._states.ready.wait(timeout)

    def send(
        self,
        message: SensorFrame | Trigger | Result | IoSet | Heartbeat | DeviceStatus | EnterBootloader,
        *,
        expires_in: float | None = None,
    ) -> Delivery:
        """Send ``message`` with a fresh sequence number; thread-safe, never blocks on ACKs.

        TRIGGER, RESULT, IO_SET and ENTER_BOOTLOADER are reliable: the returned :class:`Delivery`
        resolves when they are ACKed/NACKed, timed out, or -- with ``expires_in`` seconds -- when that
        deadline passed first (EXPIRED: never sent or retransmitted after it). Other types resolve as
        SENT or DROPPED immediately. A type the peer did not advertise is DROPPED.
        """
        if isinstance(message, Hello | Ack | Nack | TimeRequest | TimeReply):
            raise ValueError(f"{message.TYPE.name} is managed by the session and cannot be sent directly")
        with self._lock:
            if self._states.state is SessionState.STOPPED or not self._peer_accepts(message.TYPE):
                delivery = Delivery(message)
                delivery.resolve(DeliveryStatus.DROPPED)
                return delivery
            stamped = replace(message, seq=self._take_seq())
            delivery = Delivery(stamped)
            frame = encode(stamped)
            outbox = self._outboxes.get(stamped.TYPE)
            now = self._clock()
            expires = None if expires_in is None else now + expires_in
            frames = [frame] if outbox is None else outbox.submit(delivery, frame, now, expires)
            self._notify()
        written = self._transmit(frames)
        if outbox is None:
            delivery.resolve(DeliveryStatus.SENT if written else DeliveryStatus.DROPPED)
        return delivery

    def receive(self, timeout: float | None = None) -> Message | None:
        """Next received message from the queue, or ``None`` after ``timeout`` seconds."""
        return self._inbox.receive(timeout)

    def stats(self) -> SessionStats:
        with self._lock:
            counts = dict(self._counts)
            for outbox in self._outboxes.values():
                counts["retries"] += outbox.retries
                counts["timeouts"] += outbox.timeouts
                counts["outbox_dropped"] += outbox.dropped
                counts["expired"] += outbox.expired
                counts["stray_acks"] += outbox.stray_acks
            counts["delivered"] = self._inbox.delivered
            counts["rx_dropped"] = self._inbox.dropped
            counts["nacks_suppressed"] = self._nack_policy.suppressed
            ready = self._states.state is SessionState.READY
            return SessionStats(
                state=self._states.state.value,
                peer=self._peer,
                peer_heartbeat=self._peer_heartbeat,
                peer_status=self._peer_status,
                clock_offset_ms=self._clock_sync.offset_ms(),
                protocol=f"1.{self._minor}" if ready else "",
                counters=SessionCounters(**counts),
                decoder=self._decoder.stats,
                transport=self._transport.stats(),
            )

    # -- receive path (transport reader thread) ------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        now = self._clock()
        with self._rx_lock:
            messages = self._decoder.feed(data, now)
            rejects = list(self._rejects)
            self._rejects.clear()
        if not messages and not rejects:
            return
        with self._lock:
            self._timers.heard(now)
            self._counts["rx_messages"] += len(messages)
            if messages:
                self._nack_policy.valid_frame()
        for message in messages:
            if message.TYPE in MINOR1_TYPES and self._config.identity.minor_version == 0:
                rejects.append(Reject(message.TYPE, message.seq, ErrorCode.UNKNOWN_TYPE))  # as 1.0 would
                continue
            self._handlers[message.TYPE](message, now)
        legacy = self._config.identity.minor_version == 0
        for reject in rejects:
            with self._lock:
                known = not (legacy and reject.type_code in MINOR1_TYPES)
                answer = self._nack_policy.should_nack(reject, now, known=known)
            if answer:
                self._reply(Nack(reject.type_code & 0xFF, reject.seq, reject.code))

    def _on_link(self, state: LinkState) -> None:
        if state is LinkState.CONNECTED:
            with self._rx_lock:
                self._decoder.reset()
            self._transport.write(DELIMITER)
        with self._lock:
            if self._states.state is SessionState.STOPPED:
                return
            if state is LinkState.CONNECTED:
                self._states.set(SessionState.CONNECTING)
                self._timers.restart(self._clock())
                self._notify()
            elif state is LinkState.LOST:
                if self._states.state is SessionState.READY:
                    self._lose_link()
                self._forget_peer()
        self._states.announce()

    def _on_hello(self, message: Message, now: float) -> None:
        assert isinstance(message, Hello)
        ours = self._config.identity
        frames: list[bytes] = []
        with self._lock:
            rebooted = self._peer is not None and self._peer.boot_id != message.boot_id
            self._peer = message
            self._dedupe.peer_boot(message.boot_id)
            if message.reply_requested or rebooted:
                self._dedupe.clear()  # the peer started a new session: new clock, new sequence
                self._clock_sync.clear()
                self._next_time_sync = now
            problem = refusal(ours, message)
            if problem is not None:
                logger.error("handshake refused: %s", problem.reason)
                self._counts["incompatible"] += 1
                self._counts["schema_mismatch"] += int(problem.schema_mismatch)
                self._counts["nacks_tx"] += 1
                frames.append(self._frame(Nack(message.TYPE, message.seq, ErrorCode.UNSUPPORTED_VERSION)))
            else:
                self._minor = min(ours.minor_version, message.minor)
                if message.reply_requested:
                    frames.append(self._hello_frame(request=False))
                if self._states.set(SessionState.READY):
                    self._counts["handshakes"] += 1
                    self._next_time_sync = now
                    logger.info(
                        "handshake with device %#010x (%s), protocol 1.%d",
                        message.device_id,
                        message.firmware,
                        self._minor,
                    )
            self._notify()
        self._transmit(frames)
        self._states.announce()

    def _on_ack(self, message: Message, now: float) -> None:
        assert isinstance(message, Ack | Nack)
        with self._lock:
            outbox = self._outboxes.get(message.acked_type)
            if isinstance(message, Nack):
                self._counts["nacks_rx"] += 1
                logger.warning(
                    "NACK type=%#04x seq=%d code=%d", message.acked_type, message.acked_seq, message.code
                )
            else:
                self._counts["acks_rx"] += 1
            if outbox is None:
                self._counts["stray_acks"] += 1
                return
            if isinstance(message, Nack):
                frames = outbox.on_nack(message.acked_seq, message.code, now)
            else:
                frames = outbox.on_ack(message.acked_seq, now)
            self._notify()
        self._transmit(frames)

    def _on_heartbeat(self, message: Message, now: float) -> None:
        assert isinstance(message, Heartbeat)
        with self._lock:
            self._peer_heartbeat = message

    def _on_time_request(self, message: Message, now: float) -> None:
        assert isinstance(message, TimeRequest)
        with self._lock:
            frame = self._frame(TimeReply(message.token, self.device_ms(now)))
        self._transmit([frame])

    def _on_time_reply(self, message: Message, now: float) -> None:
        assert isinstance(message, TimeReply)
        with self._lock:
            if self._clock_sync.on_reply(message, now):
                self._counts["time_replies"] += 1

    def _on_device_status(self, message: Message, now: float) -> None:
        assert isinstance(message, DeviceStatus)
        with self._lock:
            self._peer_status = message

    def _on_unreliable(self, message: Message, now: float) -> None:
        self._inbox.deliver(message)

    def _on_reliable(self, message: Message, now: float) -> None:
        """Dedup, accept/refuse, deliver, then ACK: an ACK means the application has the message."""
        with self._lock:
            duplicate = self._dedupe.is_duplicate(message.TYPE, message.seq, now)
            if duplicate:
                self._counts["duplicates"] += 1
        if duplicate:
            self._reply(Ack(message.TYPE, message.seq))
            return
        code = self._accept(message) if self._accept is not None else None
        if code is None and not self._inbox.has_room():
            code = ErrorCode.BUSY
        if code is None and not self._inbox.deliver(message):
            code = ErrorCode.INTERNAL
        if code is not None:
            self._reply(Nack(message.TYPE, message.seq, code))
            return
        with self._lock:
            self._dedupe.acked(message.TYPE, message.seq, now)
        self._reply(Ack(message.TYPE, message.seq))

    def _reply(self, message: Ack | Nack) -> None:
        with self._lock:
            if isinstance(message, Nack):
                self._counts["nacks_tx"] += 1
            frame = self._frame(message)
        self._transmit([frame])


__all__ = ["AcceptHook", "Session", "SessionConfig", "SessionState", "StateListener"]
