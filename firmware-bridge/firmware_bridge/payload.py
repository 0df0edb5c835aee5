"""Payload layouts: one pack/unpack pair per message type, kept in an explicit registry.

All integers are little-endian. ``unpack`` functions raise :class:`PayloadError` (a ``ValueError``)
for any payload that does not match its layout; the decoder turns that into a ``malformed`` count.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.messages import (
    Ack,
    Heartbeat,
    Hello,
    IoSet,
    Message,
    MessageType,
    Nack,
    Result,
    SensorFrame,
    Trigger,
    Verdict,
)
from firmware_bridge.tensor import DType

_HELLO = struct.Struct("<BBBIIHB")
_SENSOR = struct.Struct("<BIBB")
_TRIGGER = struct.Struct("<BI")
_RESULT = struct.Struct("<IHhHB")
_IO_SET = struct.Struct("<BBH")
_ACK = struct.Struct("<BH")
_NACK = struct.Struct("<BHB")
_HEARTBEAT = struct.Struct("<IIIII")


class PayloadError(ValueError):
    """A payload does not match the layout of its message type."""


def _expect_size(payload: bytes, layout: struct.Struct, name: str) -> None:
    if len(payload) != layout.size:
        raise PayloadError(f"{name} payload must be {layout.size} bytes, got {len(payload)}")


def _pack_hello(msg: Any) -> bytes:
    m: Hello = msg
    text = m.firmware.encode("ascii")
    fixed = _HELLO.pack(
        m.flags, m.min_version, m.max_version, m.device_id, m.capabilities, m.max_payload, len(text)
    )
    return fixed + text


def _unpack_hello(payload: bytes, seq: int) -> Hello:
    if len(payload) < _HELLO.size:
        raise PayloadError(f"HELLO payload must be at least {_HELLO.size} bytes, got {len(payload)}")
    flags, min_v, max_v, device_id, caps, max_payload, text_len = _HELLO.unpack_from(payload)
    end = _HELLO.size + text_len
    if end > len(payload):
        raise PayloadError(f"HELLO firmware string of {text_len} bytes overruns the payload")
    firmware = payload[_HELLO.size : end].decode("ascii")
    return Hello(flags, min_v, max_v, device_id, caps, max_payload, firmware, seq=seq)


def _pack_sensor(msg: Any) -> bytes:
    m: SensorFrame = msg
    dims = struct.pack(f"<{len(m.shape)}H", *m.shape)
    return _SENSOR.pack(m.sensor_id, m.timestamp_ms, m.dtype, len(m.shape)) + dims + m.data


def _unpack_sensor(payload: bytes, seq: int) -> SensorFrame:
    if len(payload) < _SENSOR.size:
        raise PayloadError(f"SENSOR_FRAME payload must be at least {_SENSOR.size} bytes, got {len(payload)}")
    sensor_id, timestamp_ms, dtype, rank = _SENSOR.unpack_from(payload)
    data_start = _SENSOR.size + 2 * rank
    if data_start > len(payload):
        raise PayloadError(f"SENSOR_FRAME rank {rank} overruns the payload")
    shape = struct.unpack_from(f"<{rank}H", payload, _SENSOR.size)
    return SensorFrame(sensor_id, timestamp_ms, DType(dtype), shape, payload[data_start:], seq=seq)


def _pack_trigger(msg: Any) -> bytes:
    m: Trigger = msg
    return _TRIGGER.pack(m.input_id, m.timestamp_ms)


def _unpack_trigger(payload: bytes, seq: int) -> Trigger:
    _expect_size(payload, _TRIGGER, "TRIGGER")
    return Trigger(*_TRIGGER.unpack(payload), seq=seq)


def _pack_result(msg: Any) -> bytes:
    m: Result = msg
    return _RESULT.pack(m.result_id, m.ref_seq, m.label, m.score_permille, m.verdict)


def _unpack_result(payload: bytes, seq: int) -> Result:
    _expect_size(payload, _RESULT, "RESULT")
    result_id, ref_seq, label, score, verdict = _RESULT.unpack(payload)
    return Result(result_id, ref_seq, label, score, Verdict(verdict), seq=seq)


def _pack_io_set(msg: Any) -> bytes:
    m: IoSet = msg
    return _IO_SET.pack(m.output_id, int(m.state), m.pulse_ms)


def _unpack_io_set(payload: bytes, seq: int) -> IoSet:
    _expect_size(payload, _IO_SET, "IO_SET")
    output_id, state, pulse_ms = _IO_SET.unpack(payload)
    if state not in (0, 1):
        raise PayloadError(f"IO_SET state must be 0 or 1, got {state}")
    return IoSet(output_id, bool(state), pulse_ms, seq=seq)


def _pack_ack(msg: Any) -> bytes:
    m: Ack = msg
    return _ACK.pack(m.acked_type, m.acked_seq)


def _unpack_ack(payload: bytes, seq: int) -> Ack:
    _expect_size(payload, _ACK, "ACK")
    return Ack(*_ACK.unpack(payload), seq=seq)


def _pack_nack(msg: Any) -> bytes:
    m: Nack = msg
    return _NACK.pack(m.acked_type, m.acked_seq, m.code)


def _unpack_nack(payload: bytes, seq: int) -> Nack:
    _expect_size(payload, _NACK, "NACK")
    return Nack(*_NACK.unpack(payload), seq=seq)


def _pack_heartbeat(msg: Any) -> bytes:
    m: Heartbeat = msg
    return _HEARTBEAT.pack(m.uptime_ms, m.rx_frames, m.rx_errors, m.tx_frames, m.tx_retries)


def _unpack_heartbeat(payload: bytes, seq: int) -> Heartbeat:
    _expect_size(payload, _HEARTBEAT, "HEARTBEAT")
    return Heartbeat(*_HEARTBEAT.unpack(payload), seq=seq)


@dataclass(frozen=True)
class PayloadCodec:
    """Pack/unpack functions for one message type."""

    pack: Callable[[Any], bytes]
    unpack: Callable[[bytes, int], Message]


PAYLOAD_CODECS: dict[MessageType, PayloadCodec] = {
    MessageType.HELLO: PayloadCodec(_pack_hello, _unpack_hello),
    MessageType.SENSOR_FRAME: PayloadCodec(_pack_sensor, _unpack_sensor),
    MessageType.TRIGGER: PayloadCodec(_pack_trigger, _unpack_trigger),
    MessageType.RESULT: PayloadCodec(_pack_result, _unpack_result),
    MessageType.IO_SET: PayloadCodec(_pack_io_set, _unpack_io_set),
    MessageType.ACK: PayloadCodec(_pack_ack, _unpack_ack),
    MessageType.NACK: PayloadCodec(_pack_nack, _unpack_nack),
    MessageType.HEARTBEAT: PayloadCodec(_pack_heartbeat, _unpack_heartbeat),
}
"""Registry: message type -> payload codec."""


def pack_payload(message: Message) -> bytes:
    """Serialise the payload of ``message`` (without header/CRC)."""
    return PAYLOAD_CODECS[message.TYPE].pack(message)


def unpack_payload(msg_type: MessageType, payload: bytes, seq: int) -> Message:
    """Parse a payload; raises ``ValueError`` (incl. :class:`PayloadError`) if it is malformed."""
    try:
        return PAYLOAD_CODECS[msg_type].unpack(payload, seq)
    except struct.error as exc:
        raise PayloadError(f"{msg_type.name} payload: {exc}") from exc
