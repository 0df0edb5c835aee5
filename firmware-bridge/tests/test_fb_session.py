"""Session over the in-memory loopback transport: handshake, ACK/NACK, retries, dedup, link loss."""

import json
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from firmware_bridge import (
    Decoder,
    DeliveryStatus,
    ErrorCode,
    Hello,
    Identity,
    IoSet,
    LoopbackTransport,
    Message,
    MessageType,
    Result,
    SensorFrame,
    Session,
    SessionConfig,
    SessionState,
    Trigger,
    Verdict,
    cobs,
)
from firmware_bridge.crc import crc16

FAST = SessionConfig(
    heartbeat_interval_s=0.1, link_timeout_s=0.4, ack_timeout_s=0.05, max_retries=3, hello_interval_s=0.05
)
DEVICE = SessionConfig(
    identity=Identity(device_id=0x5EED0001, firmware="test-device/1"),
    heartbeat_interval_s=0.1,
    link_timeout_s=0.4,
    ack_timeout_s=0.05,
    hello_interval_s=0.05,
)


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def frame_types(data: bytes) -> list[MessageType]:
    return [m.TYPE for m in Decoder().feed(data)]


class Pair:
    def __init__(self, *, host_config: SessionConfig = FAST, device_config: SessionConfig = DEVICE) -> None:
        self.host_link, self.device_link = LoopbackTransport.pair()
        self.device_messages: list[Message] = []
        self.refuse: dict[MessageType, ErrorCode] = {}
        self.host = Session(self.host_link, host_config)
        self.device = Session(
            self.device_link, device_config, on_message=self.device_messages.append, accept=self._accept
        )

    def _accept(self, message: Message) -> int | None:
        return self.refuse.get(message.TYPE)

    def start(self) -> None:
        self.host.start()
        self.device.start()
        assert self.host.wait_ready(2.0) and self.device.wait_ready(2.0)

    def stop(self) -> None:
        self.host.stop()
        self.device.stop()


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    p.start()
    yield p
    p.stop()


def test_handshake_identity_and_stats(pair: Pair) -> None:
    assert pair.host.state is SessionState.READY
    assert pair.host.peer is not None and pair.host.peer.device_id == 0x5EED0001
    assert pair.host.peer.firmware == "test-device/1"
    assert pair.device.peer is not None and pair.device.peer.device_id == 0
    assert wait_for(lambda: pair.host.stats().peer_heartbeat is not None)
    stats = pair.host.stats()
    assert stats.counters.handshakes == 1 and stats.transport.state == "connected"
    json.dumps(stats.as_dict())  # status-API friendly


def test_reliable_messages_are_acked_and_delivered_once(pair: Pair) -> None:
    results = [pair.host.send(Result(i, 0, i, 500, Verdict.FAIL)) for i in range(5)]
    assert [d.wait(2.0) for d in results] == [DeliveryStatus.ACKED] * 5
    assert [m.result_id for m in pair.device_messages if isinstance(m, Result)] == list(range(5))
    assert len({d.seq for d in results}) == 5
    trigger = pair.device.send(Trigger(1, 1234))
    assert trigger.wait(2.0) is DeliveryStatus.ACKED
    received = pair.host.receive(timeout=1.0)
    assert isinstance(received, Trigger) and received.seq == trigger.seq
    frame = pair.device.send(SensorFrame.from_array(np.ones((128, 3), np.float32)))
    assert frame.status is DeliveryStatus.SENT
    got = pair.host.receive(timeout=1.0)
    assert isinstance(got, SensorFrame) and got.to_array().shape == (128, 3)


def test_lost_ack_causes_retransmission_but_no_duplicate_delivery(pair: Pair) -> None:
    dropped: list[bytes] = []

    def drop_first_ack(data: bytes) -> bool:
        if not dropped and MessageType.ACK in frame_types(data):
            dropped.append(data)
            return True
        return False

    pair.device_link.drop = drop_first_ack
    delivery = pair.host.send(IoSet(0, True, 100))
    assert delivery.wait(2.0) is DeliveryStatus.ACKED
    assert dropped
    assert sum(isinstance(m, IoSet) for m in pair.device_messages) == 1
    assert pair.device.stats().counters.duplicates == 1
    assert pair.host.stats().counters.retries >= 1


def test_unanswered_message_times_out_after_retries(pair: Pair) -> None:
    sent: list[bytes] = []

    def swallow_results(data: bytes) -> bool:
        if MessageType.RESULT in frame_types(data):
            sent.append(data)
            return True
        return False

    pair.host_link.drop = swallow_results
    delivery = pair.host.send(Result(1, 2, 3, 4, Verdict.PASS))
    assert delivery.wait(2.0) is DeliveryStatus.TIMED_OUT
    assert len(sent) == 4 and len(set(sent)) == 1  # 1 + MAX_RETRIES identical transmissions
    counters = pair.host.stats().counters
    assert counters.timeouts == 1 and counters.retries == 3


def test_nack_final_and_retryable(pair: Pair) -> None:
    pair.refuse[MessageType.IO_SET] = ErrorCode.INVALID_ARGUMENT
    delivery = pair.host.send(IoSet(9, True))
    assert delivery.wait(2.0) is DeliveryStatus.NACKED and delivery.code == ErrorCode.INVALID_ARGUMENT
    assert not any(isinstance(m, IoSet) for m in pair.device_messages)

    pair.refuse[MessageType.RESULT] = ErrorCode.BUSY
    before = pair.host.stats().counters.nacks_rx

    def lift_after_two_busy() -> None:  # the device takes it once it refused twice (no timing race)
        wait_for(lambda: pair.host.stats().counters.nacks_rx >= before + 2)
        pair.refuse.pop(MessageType.RESULT)

    lifter = threading.Thread(target=lift_after_two_busy)
    lifter.start()
    delivery = pair.host.send(Result(5, 0, 1, 2, Verdict.PASS))
    assert delivery.wait(2.0) is DeliveryStatus.ACKED
    lifter.join()
    assert pair.host.stats().counters.nacks_rx >= before + 2


def test_reject_is_answered_with_nack(pair: Pair) -> None:
    body = bytes([1, 0x55, 9, 0, 0, 0])  # version 1, unknown type 0x55, seq 9, empty payload
    frame = cobs.encode(body + crc16(body).to_bytes(2, "little")) + b"\x00"
    assert pair.device_link.write(frame)
    assert wait_for(lambda: pair.host.stats().counters.nacks_tx == 1)
    assert pair.host.stats().decoder.unknown_type == 1
    assert wait_for(lambda: pair.device.stats().counters.nacks_rx == 1)


def test_session_rejects_managed_types_and_sends_after_stop() -> None:
    p = Pair()
    with pytest.raises(ValueError, match="managed by the session"):
        p.host.send(Hello(0, 1, 1, 0, 0, 64, ""))  # type: ignore[arg-type]
    assert p.host.send(Trigger(0, 0)).status is DeliveryStatus.DROPPED
    p.start()
    pending = p.host.send(Result(1, 0, 0, 0, Verdict.PASS))
    p.stop()
    assert pending.wait(1.0) in (DeliveryStatus.ACKED, DeliveryStatus.DROPPED)
    assert p.host.state is SessionState.STOPPED


def test_link_loss_and_recovery_by_heartbeat_timeout(pair: Pair) -> None:
    lost = threading.Event()
    ready_again = threading.Event()
    pair.host.add_state_listener(
        lambda s: lost.set() if s is SessionState.LINK_LOST else ready_again.set() if lost.is_set() else None
    )
    pair.host_link.drop = pair.device_link.drop = lambda _data: True
    assert lost.wait(2.0)
    assert not pair.host.wait_ready(0)
    pair.host_link.drop = pair.device_link.drop = None
    assert ready_again.wait(2.0)
    counters = pair.host.stats().counters
    assert counters.link_losses == 1 and counters.handshakes == 2


def test_unplugged_transport_reports_lost_and_rehandshakes(pair: Pair) -> None:
    pair.host_link.set_link(False)
    assert wait_for(lambda: pair.host.state is SessionState.LINK_LOST)
    assert pair.host.send(SensorFrame.from_array(np.zeros(3, np.uint8))).status is DeliveryStatus.DROPPED
    pair.host_link.set_link(True)
    assert pair.host.wait_ready(2.0)
    assert pair.host.stats().transport.losses == 1


def test_full_receive_queue_drops_oldest_and_pushes_back_reliable() -> None:
    small = SessionConfig(
        rx_queue_size=2, ack_timeout_s=0.05, max_retries=20, heartbeat_interval_s=0.1, hello_interval_s=0.05
    )
    p = Pair(host_config=small)
    p.start()
    try:
        for i in range(5):
            p.device.send(SensorFrame.from_array(np.full(4, i, np.uint8)))
        assert wait_for(lambda: p.host.stats().counters.rx_dropped == 3)
        trigger = p.device.send(Trigger(0, 1))
        assert wait_for(lambda: p.host.stats().counters.nacks_tx >= 1)  # BUSY
        first = p.host.receive(0.5)
        assert isinstance(first, SensorFrame) and first.to_array()[0] == 3
        assert trigger.wait(2.0) is DeliveryStatus.ACKED
        assert isinstance(p.host.receive(0.5), SensorFrame)
        assert isinstance(p.host.receive(0.5), Trigger)
    finally:
        p.stop()


def test_incompatible_versions_never_become_ready() -> None:
    future = SessionConfig(identity=Identity(min_version=2, max_version=3), hello_interval_s=0.05)
    p = Pair(host_config=future)
    p.host.start()
    p.device.start()
    try:
        assert not p.host.wait_ready(0.3) and not p.device.wait_ready(0.01)
        assert p.host.stats().counters.incompatible >= 1
        assert p.device.stats().counters.incompatible >= 1
        assert p.host.stats().counters.nacks_rx >= 1
    finally:
        p.stop()
