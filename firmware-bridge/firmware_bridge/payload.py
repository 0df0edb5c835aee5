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
    DeviceStatus,
    EnterBootloader,
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
_HELLO_EXTENSION = struct.Struct("<BII")
_TIME_REQUEST = struct.Struct("<I")
_TIME_REPLY = struct.Struct("<II")
_DEVICE_STATUS = struct.Struct("<IIIII")
_ENTER_BOOTLOADER = struct.Struct("<IB")


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
    if m.minor_version is None:
        return fixed + text
    return fixed + text + _HELLO_EXTENSION.pack(m.minor_version, m.schema_hash, m.boot_id)


def _unpack_hello(payload: bytes, seq: int) -> Hello:
    if len(payload) < _HELLO.size:
        raise PayloadError(f"HELLO payload must be at least {_HELLO.size} bytes, got {len(payload)}")
    flags, min_v, max_v, device_id, caps, max_payload, text_len = _HELLO.unpack_from(payload)
    end = _HELLO.size + text_len
    if end > len(payload):
        raise PayloadError(f"HELLO firmware string of {text_len} bytes overruns the payload")
    firmware = payload[_HELLO.size : end].decode("ascii")
    if len(payload) < end + _HELLO_EXTENSION.size:  # 1.0 HELLO (a partial extension is ignored)
        return Hello(flags, min_v, max_v, device_id, caps, max_payload, firmware, seq=seq)
    minor, schema_hash, boot_id = _HELLO_EXTENSION.unpack_from(payload, end)  # later bytes: ignored
    return Hello(
        flags, min_v, max_v, device_id, caps, max_payload, firmware, minor, schema_hash, boot_id, seq=seq
    )


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


def _pack_time_request(msg: Any) -> bytes:
    m: TimeRequest = msg
    return _TIME_REQUEST.pack(m.token)


def _unpack_time_request(payload: bytes, seq: int) -> TimeRequest:
    _expect_size(payload, _TIME_REQUEST, "TIME_REQUEST")
    return TimeRequest(*_TIME_REQUEST.unpack(payload), seq=seq)


def _pack_time_reply(msg: Any) -> bytes:
    m: TimeReply = msg
    return _TIME_REPLY.pack(m.token, m.device_ms)


def _unpack_time_reply(payload: bytes, seq: int) -> TimeReply:
    _expect_size(payload, _TIME_REPLY, "TIME_REPLY")
    return TimeReply(*_TIME_REPLY.unpack(payload), seq=seq)


def _pack_device_status(msg: Any) -> bytes:
    m: DeviceStatus = msg
    return _DEVICE_STATUS.pack(
        m.uptime_ms, m.fault_flags, m.trigger_overflows, m.sample_overruns, m.tx_dropped
    )


def _unpack_device_status(payload: bytes, seq: int) -> DeviceStatus:
    _expect_size(payload, _DEVICE_STATUS, "DEVICE_STATUS")
    return DeviceStatus(*_DEVICE_STATUS.unpack(payload), seq=seq)


def _pack_enter_bootloader(msg: Any) -> bytes:
    m: EnterBootloader = msg
    return _ENTER_BOOTLOADER.pack(m.magic, m.mode)


def _unpack_enter_bootloader(payload: bytes, seq: int) -> EnterBootloader:
    _expect_size(payload, _ENTER_BOOTLOADER, "ENTER_BOOTLOADER")
    return EnterBootloader(*_ENTER_BOOTLOADER.unpack(payload), seq=seq)


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
    MessageType.TIME_REQUEST: PayloadCodec(_pack_time_request, _unpack_time_request),
    MessageType.TIME_REPLY: PayloadCodec(_pack_time_reply, _unpack_time_reply),
    MessageType.DEVICE_STATUS: PayloadCodec(_pack_device_status, _unpack_device_status),
    MessageType.ENTER_BOOTLOADER: PayloadCodec(_pack_enter_bootloader, _unpack_enter_bootloader),
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
