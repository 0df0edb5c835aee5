"""Protocol 1.1 rules, each tested against a real Session (PROTOCOL.md sections 4, 7, 8, 9, 11, 13).

The session runs on a probe transport with a settable clock, so a test feeds exact bytes at exact
times and reads every frame the session wrote. The same rules are tested in C in
firmware/tests/test_session.c.
"""

import struct
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from firmware_bridge import (
    Decoder,
    DeliveryStatus,
    ErrorCode,
    Heartbeat,
    Hello,
    HelloFlag,
    IoSet,
    LinkState,
    LoopbackTransport,
    Message,
    MessageType,
    Nack,
    Result,
    SensorFrame,
    Session,
    SessionConfig,
    Trigger,
    Verdict,
    cobs,
    encode,
)
from firmware_bridge.crc import crc16
from firmware_bridge.identity import Identity
from firmware_bridge.messages import Ack, Capability, EnterBootloader, TimeReply, TimeRequest
from firmware_bridge.protocol import BOOTLOADER_MAGIC, REF_SEQ_NONE
from firmware_bridge.schema import SCHEMA_HASHES, schema_text
from firmware_bridge.simulator import device_session_config
from firmware_bridge.transport import DataCallback, LinkMonitor, StateCallback, TransportStats
from firmware_bridge.uart import PacedTransport
from test_fb_session import wait_for

ALL_CAPS = 0xFF


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Probe:
    """A transport the test drives: `feed` plays received bytes, `sent` holds what was written."""

    def __init__(self) -> None:
        self._monitor = LinkMonitor("probe")
        self._on_data: DataCallback | None = None
        self._lock = threading.Lock()
        self.sent: list[bytes] = []

    @property
    def state(self) -> LinkState:
        return self._monitor.state

    def stats(self) -> TransportStats:
        return self._monitor.snapshot()

    def start(self, on_data: DataCallback, on_state: StateCallback) -> None:
        self._on_data = on_data
        self._monitor.attach(on_data, on_state)
        self._monitor.set_state(LinkState.CONNECTED)

    def stop(self) -> None:
        self._monitor.set_state(LinkState.DISCONNECTED)

    def write(self, data: bytes) -> bool:
        with self._lock:
            self.sent.append(bytes(data))
        return True

    def feed(self, data: bytes) -> None:
        assert self._on_data is not None
        self._on_data(data)

    def messages(self) -> list[Message]:
        with self._lock:
            data = b"".join(self.sent)
        return Decoder().feed(data)

    def nacks(self) -> list[Nack]:
        return [m for m in self.messages() if isinstance(m, Nack)]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()


def raw_frame(version: int, type_code: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("<BBHH", version, type_code, seq, len(payload)) + payload
    return cobs.encode(body + struct.pack("<H", crc16(body))) + b"\x00"


def device_hello(*, flags: int = 0, caps: int = ALL_CAPS, boot_id: int = 0xB007, **kw: int) -> Hello:
    fields = {"minor_version": 1, "schema_hash": SCHEMA_HASHES[1], "boot_id": boot_id} | kw
    return Hello(flags, 1, 1, 0x5EED0001, caps, 128, "probe/1.1", **fields)  # type: ignore[arg-type]


class Host:
    def __init__(self, config: SessionConfig | None = None) -> None:
        self.clock = Clock()
        self.probe = Probe()
        self.received: list[Message] = []
        self.session = Session(self.probe, config, on_message=self.received.append, clock=self.clock)

    def handshake(self, hello: Hello | None = None) -> None:
        self.probe.feed(encode(hello or device_hello()))
        assert self.session.wait_ready(1.0)
        self.probe.clear()

    def triggers(self) -> list[Trigger]:
        return [m for m in self.received if isinstance(m, Trigger)]


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host()
    h.session.start()
    yield h
    h.session.stop()


def test_never_answers_ack_nack_heartbeat_or_unreliable_frames(host: Host) -> None:
    host.handshake()
    host.probe.feed(raw_frame(1, MessageType.ACK, 1, b"\x20"))  # malformed ACK
    host.probe.feed(raw_frame(1, MessageType.NACK, 2, b"\x20\x01"))  # malformed NACK
    host.probe.feed(raw_frame(1, MessageType.HEARTBEAT, 3, b"\x00" * 7))  # malformed HEARTBEAT
    host.probe.feed(raw_frame(1, MessageType.SENSOR_FRAME, 4, b"\x00" * 3))  # malformed SENSOR_FRAME
    host.probe.feed(raw_frame(2, MessageType.ACK, 5, b"\x20\x01\x00"))  # ACK of another version
    assert host.probe.nacks() == []
    assert host.session.stats().counters.nacks_suppressed == 5
    host.probe.feed(raw_frame(1, MessageType.RESULT, 6, b"\x00" * 3))  # a reliable type is answered
    assert [(n.acked_type, n.acked_seq, n.code) for n in host.probe.nacks()] == [
        (MessageType.RESULT, 6, ErrorCode.MALFORMED)
    ]


def test_bad_version_is_nacked_once_per_burst(host: Host) -> None:
    host.handshake()
    for seq in range(50):
        host.probe.feed(raw_frame(2, MessageType.TRIGGER, seq, b"\x01\x00\x00\x00\x00"))
    assert len(host.probe.nacks()) == 1
    assert host.session.stats().decoder.bad_version == 50
    host.probe.feed(encode(Heartbeat(1, 2, 3, 4, 5, seq=60)))  # a valid frame ends the burst
    host.probe.feed(raw_frame(2, MessageType.TRIGGER, 61, b"\x01\x00\x00\x00\x00"))
    host.clock.now += 1.1  # so does the burst interval
    host.probe.feed(raw_frame(2, MessageType.TRIGGER, 62, b"\x01\x00\x00\x00\x00"))
    assert len(host.probe.nacks()) == 3
    assert host.session.stats().counters.nacks_tx == 3


def test_sequence_wrap_of_65536_frames_is_not_a_duplicate(host: Host) -> None:
    host.handshake()
    host.probe.feed(encode(Trigger(0, 1, seq=100)))
    host.probe.feed(encode(Trigger(0, 1, seq=100)))  # a retransmission (its ACK was lost)
    assert len(host.triggers()) == 1 and host.session.stats().counters.duplicates == 1
    # the peer's counter runs through every other value (1.0 peers use 0xFFFF too); even at 921600
    # baud 65,535 heartbeats take 21 s on the wire
    batch = bytearray()
    for k in range(1, 0x10000):
        batch += encode(Heartbeat(k, 0, 0, 0, 0, seq=(100 + k) % 0x10000))
        if k % 4096 == 0:
            host.clock.now += 4096 * 32 / 92160
            host.probe.feed(bytes(batch))
            batch.clear()
    host.probe.feed(bytes(batch))
    host.probe.feed(encode(Trigger(0, 2, seq=100)))  # a new TRIGGER with the same seq after the wrap
    assert [t.timestamp_ms for t in host.triggers()] == [1, 2]
    assert host.session.stats().counters.duplicates == 1


def test_a_rebooted_device_is_not_taken_for_a_retransmission(host: Host) -> None:
    host.handshake()
    host.probe.feed(encode(Trigger(0, 1, seq=7)))
    host.probe.feed(encode(device_hello(boot_id=0x2222)))  # a new boot id, without REPLY_REQUESTED
    host.probe.feed(encode(Trigger(0, 2, seq=7)))
    assert len(host.triggers()) == 2


def test_schema_hash_mismatch_refuses_the_handshake(host: Host) -> None:
    host.probe.feed(encode(device_hello(flags=HelloFlag.REPLY_REQUESTED, schema_hash=0x1234)))
    assert not host.session.wait_ready(0.2)
    counters = host.session.stats().counters
    assert counters.schema_mismatch == 1 and counters.incompatible == 1 and counters.nacks_tx == 1
    assert [n.code for n in host.probe.nacks()] == [ErrorCode.UNSUPPORTED_VERSION]


def test_incompatible_version_nack_is_counted(host: Host) -> None:
    host.probe.feed(encode(Hello(1, 2, 3, 5, ALL_CAPS, 128, "v2-only")))
    assert [n.code for n in host.probe.nacks()] == [ErrorCode.UNSUPPORTED_VERSION]
    assert host.session.stats().counters.nacks_tx == 1


def test_schema_hash_is_crc32_of_the_documented_table() -> None:
    assert SCHEMA_HASHES[1] == zlib.crc32(schema_text(1).encode()) == 0x49A58E38
    assert SCHEMA_HASHES[0] == 0xA6C9C4E1


def test_inter_byte_timeout_drops_a_partial_frame(host: Host) -> None:
    host.handshake()
    frame = encode(Trigger(0, 5, seq=9))
    host.probe.feed(frame[:5])  # the rest never comes
    host.clock.now += 0.2
    host.probe.feed(encode(Trigger(0, 6, seq=10)))
    assert [t.timestamp_ms for t in host.triggers()] == [6]
    stats = host.session.stats().decoder
    assert stats.partial_timeouts == 1 and stats.garbage == 0


def test_hello_below_minimum_max_payload_is_malformed(host: Host) -> None:
    good = encode(device_hello())
    raw = cobs.decode(good[:-1])
    assert raw is not None
    payload = bytearray(raw[6:-2])
    payload[11:13] = struct.pack("<H", 63)
    host.probe.feed(raw_frame(1, MessageType.HELLO, 3, bytes(payload)))
    assert host.session.stats().decoder.malformed == 1
    assert [n.code for n in host.probe.nacks()] == [ErrorCode.MALFORMED]


def test_reserved_bits_are_ignored(host: Host) -> None:
    host.handshake(device_hello(flags=0xFE, caps=ALL_CAPS | 0xFFFF_FF00))
    assert host.session.peer is not None and host.session.stats().protocol == "1.1"


def test_types_the_peer_did_not_advertise_are_not_sent(host: Host) -> None:
    host.handshake(device_hello(caps=int(Capability.SENSOR_FRAME | Capability.TRIGGER | Capability.RESULT)))
    assert host.session.send(IoSet(0, True, 100)).status is DeliveryStatus.DROPPED
    assert host.session.enter_bootloader().status is DeliveryStatus.DROPPED
    assert host.session.stats().counters.unadvertised == 2
    assert not [m for m in host.probe.messages() if isinstance(m, IoSet | EnterBootloader)]


def test_a_sender_never_uses_ref_seq_none_as_a_sequence_number(host: Host) -> None:
    host.handshake()
    host.session._seq = REF_SEQ_NONE - 1
    first = host.session.send(Heartbeat(0, 0, 0, 0, 0))
    second = host.session.send(Heartbeat(0, 0, 0, 0, 0))
    assert (first.seq, second.seq) == (0xFFFE, 0x0000)


def test_an_expired_reliable_message_is_never_sent_again(host: Host) -> None:
    host.handshake()
    delivery = host.session.send(IoSet(0, True, 100), expires_in=0.25)
    attempts = lambda: [m for m in host.probe.messages() if isinstance(m, IoSet)]  # noqa: E731
    assert len(attempts()) == 1
    host.probe.feed(encode(Nack(MessageType.IO_SET, delivery.seq, ErrorCode.BUSY)))
    host.clock.now += 0.3
    assert wait_for(lambda: delivery.status is DeliveryStatus.EXPIRED)
    sent = len(attempts())
    host.clock.now += 5.0
    time.sleep(0.2)  # give the timer thread every chance to retransmit
    assert len(attempts()) == sent <= 2
    assert host.session.stats().counters.expired == 1
    late = host.session.send(IoSet(0, True, 100), expires_in=0.0)
    assert late.status is DeliveryStatus.EXPIRED and len(attempts()) == sent


def test_time_sync_maps_a_device_clock_one_hour_off() -> None:
    host_link, device_link = LoopbackTransport.pair()
    frames: list[Message] = []
    device = Session(device_link, device_session_config(clock_offset_ms=3_600_000))
    host = Session(host_link, SessionConfig(time_sync_interval_s=1.0), on_message=frames.append)
    host.start()
    device.start()
    try:
        assert host.wait_ready(2.0)
        assert wait_for(lambda: host.stats().counters.time_replies >= 4)
        sent_at = time.monotonic()
        stamp = device.device_ms()
        assert stamp > 3_600_000  # the device clock is an hour "ahead" of its uptime
        device.send(SensorFrame.from_array(np.zeros((4, 3), np.float32), timestamp_ms=stamp))
        assert wait_for(lambda: any(isinstance(m, SensorFrame) for m in frames))
        (frame,) = [m for m in frames if isinstance(m, SensorFrame)]
        mapped = host.peer_time(frame.timestamp_ms)
        best = host._clock_sync.best
        assert mapped is not None and best is not None
        assert abs(mapped - sent_at) <= best.round_trip_s / 2 + 0.005  # exact up to half a round trip
        assert host.stats().clock_offset_ms is not None
    finally:
        host.stop()
        device.stop()


def test_a_10_device_works_with_a_11_host() -> None:
    """PROTOCOL.md section 13: everything of 1.0 works; 1.1-only types are never sent to it."""
    host_link, device_link = LoopbackTransport.pair()
    got: list[Message] = []
    device_got: list[Message] = []
    host = Session(host_link, SessionConfig(time_sync_interval_s=0.05), on_message=got.append)
    device = Session(device_link, device_session_config(minor=0), on_message=device_got.append)
    host.start()
    device.start()
    try:
        assert host.wait_ready(2.0) and device.wait_ready(2.0)
        assert host.stats().protocol == "1.0" and host.peer is not None and host.peer.minor_version is None
        assert device.send(Trigger(0, 1)).wait(2.0) is DeliveryStatus.ACKED
        assert host.send(Result(1, REF_SEQ_NONE, 0, 900, Verdict.PASS)).wait(2.0) is DeliveryStatus.ACKED
        assert host.send(IoSet(0, True, 50)).wait(2.0) is DeliveryStatus.ACKED
        device.send(SensorFrame.from_array(np.ones((2, 3), np.float32)))
        assert wait_for(lambda: any(isinstance(m, SensorFrame) for m in got))
        time.sleep(0.2)
        assert host.enter_bootloader().status is DeliveryStatus.DROPPED
        assert host.stats().counters.time_replies == 0 and host.peer_time(123) is None
        assert device.stats().counters.nacks_tx == 0  # the host sent it nothing it does not know
    finally:
        host.stop()
        device.stop()


def test_a_10_side_nacks_11_types_as_unknown() -> None:
    h = Host(device_session_config(minor=0))
    h.session.start()
    try:
        h.handshake(Hello(0, 1, 1, 0, ALL_CAPS, 2048, "host/1.1", 1, SCHEMA_HASHES[1], 5))
        h.probe.feed(encode(TimeRequest(7, seq=3)))
        assert [(n.acked_type, n.code) for n in h.probe.nacks()] == [
            (MessageType.TIME_REQUEST, ErrorCode.UNKNOWN_TYPE)
        ]
        assert not [m for m in h.probe.messages() if isinstance(m, TimeReply)]
    finally:
        h.session.stop()


def test_link_loss_forgets_the_peer() -> None:
    host_link, device_link = LoopbackTransport.pair()
    host = Session(host_link, SessionConfig(heartbeat_interval_s=0.05, link_timeout_s=0.3))
    device = Session(device_link, device_session_config())
    host.start()
    device.start()
    try:
        assert host.wait_ready(2.0)
        assert wait_for(lambda: host.stats().peer_heartbeat is not None)
        host_link.set_link(False)  # unplugged
        assert wait_for(lambda: host.peer is None)
        stats = host.stats()
        assert stats.peer is None and stats.peer_heartbeat is None and stats.peer_status is None
    finally:
        host.stop()
        device.stop()


def test_enter_bootloader_is_acked_by_a_11_device() -> None:
    host_link, device_link = LoopbackTransport.pair()
    seen: list[Message] = []
    host = Session(host_link)
    device = Session(device_link, device_session_config(), on_message=seen.append)
    host.start()
    device.start()
    try:
        assert host.wait_ready(2.0) and device.wait_ready(2.0)
        assert host.enter_bootloader().wait(2.0) is DeliveryStatus.ACKED
        assert seen == [EnterBootloader(BOOTLOADER_MAGIC, 0, seq=seen[0].seq)]
        assert Identity().capabilities & Capability.BOOTLOADER
    finally:
        host.stop()
        device.stop()


def test_paced_transport_sends_control_frames_before_waiting_bulk() -> None:
    """R16: an ACK queued behind a window that has not started goes first; one that started is
    finished first (frames cannot interleave)."""
    inner = Probe()
    paced = PacedTransport(inner, 921600)
    paced.start(lambda _data: None, lambda _state: None)
    try:
        frame = SensorFrame.from_array(np.ones((128, 3), np.float32))
        window = encode(SensorFrame(0, 0, frame.dtype, frame.shape, frame.data, seq=1))
        paced.write(window)
        assert wait_for(lambda: bool(inner.sent))  # the first window is on the wire
        paced.write(window)  # waits
        paced.write(encode(Ack(MessageType.TRIGGER, 5, seq=2)))  # must overtake the waiting window
        assert wait_for(lambda: len(inner.messages()) == 3)
        assert [m.seq for m in inner.messages()] == [1, 2, 1]
        decoder = Decoder()
        decoder.feed(b"".join(inner.sent))
        assert decoder.stats.errors == 0  # never interleaved
    finally:
        paced.stop()
