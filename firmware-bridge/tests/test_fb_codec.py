"""firmware_bridge codec, messages, tensor helper and waveform generator."""

import struct

import numpy as np
import pytest
from firmware_bridge import cobs
from firmware_bridge.codec import Decoder, EncodeError, FrameError, Reject, decode_frame, encode, encode_raw
from firmware_bridge.crc import crc16
from firmware_bridge.messages import (
    Ack,
    ErrorCode,
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
from firmware_bridge.protocol import MAX_ENCODED_FRAME, MAX_PAYLOAD
from firmware_bridge.tensor import DType
from firmware_bridge.waveform import SensorMode, cycle_mode, window

SAMPLES: list[Message] = [
    Hello(1, 1, 1, 0xDEADBEEF, 0x1F, 2048, "fw/1.2.3", seq=1),
    SensorFrame.from_array(np.arange(384, dtype=np.float32).reshape(128, 3), sensor_id=2, timestamp_ms=99),
    Trigger(3, 0xFFFF_FFFF, seq=0xFFFF),
    Result(7, 8, -32768, 0, Verdict.PASS),
    IoSet(1, True, 65535),
    Ack(0x20, 5),
    Nack(0x21, 6, ErrorCode.BUSY),
    Heartbeat(1, 2, 3, 4, 5),
]


def _raw_frame(version: int, type_code: int, payload: bytes, length: int | None = None) -> bytes:
    body = (
        struct.pack("<BBHH", version, type_code, 0x1234, len(payload) if length is None else length) + payload
    )
    return cobs.encode(body + struct.pack("<H", crc16(body))) + b"\x00"


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    ],
)
def test_cobs_vectors(raw: bytes, encoded: bytes) -> None:
    assert cobs.encode(raw) == encoded
    assert cobs.decode(encoded) == raw
    assert len(encoded) <= cobs.max_encoded_size(len(raw))


def test_cobs_rejects_invalid() -> None:
    assert cobs.decode(b"\x03\x11") is None
    assert cobs.decode(b"\x02\x00") is None


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_roundtrip_every_type(message: Message) -> None:
    wire = encode(message)
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    decoder = Decoder()
    assert decoder.feed(wire) == [message]
    assert decode_frame(encode_raw(message)) == message
    assert decoder.stats.frames_ok == 1 and decoder.stats.errors == 0


def test_byte_by_byte_and_chunked_feeding() -> None:
    stream = b"".join(encode(m) for m in SAMPLES)
    decoder = Decoder()
    out: list[Message] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == SAMPLES
    out = []
    for i in range(0, len(stream), 37):
        out += decoder.feed(memoryview(stream)[i : i + 37])
    assert out == SAMPLES


def test_sensor_frame_tensor_helper() -> None:
    for dtype in ("u1", "i1", "<i2", ">u2", "<i4", ">f4"):
        array = (np.arange(24) % 100).astype(dtype).reshape(2, 3, 4)
        frame = SensorFrame.from_array(array)
        back = frame.to_array()
        assert back.shape == (2, 3, 4) and back.dtype.isnative
        np.testing.assert_array_equal(back, array)
        back[0, 0, 0] = 1  # writable copy
    frame = SensorFrame.from_array(np.zeros((128, 3), np.float32))
    assert frame.dtype is DType.F32 and frame.shape == (128, 3) and len(frame.data) == 1536
    with pytest.raises(ValueError, match="unsupported tensor dtype"):
        SensorFrame.from_array(np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="rank"):
        SensorFrame.from_array(np.zeros((1, 1, 1, 1, 1), np.uint8))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: Result(1, 2, 3, 1001, Verdict.PASS), "score_permille"),
        (lambda: Result(1, 2, 40000, 1, Verdict.PASS), "label"),
        (lambda: Trigger(256, 0), "input_id"),
        (lambda: Trigger(1, 0, seq=70000), "seq"),
        (lambda: IoSet(1, 1, 0), "state"),  # type: ignore[arg-type]
        (lambda: Hello(0, 2, 1, 0, 0, 64, ""), "min_version"),
        (lambda: Hello(0, 1, 1, 0, 0, 64, "x" * 33), "firmware"),
        (lambda: Hello(0, 1, 1, 0, 0, 64, "tab\t"), "firmware"),
        (lambda: SensorFrame(0, 0, DType.F32, (2,), b"\x00" * 7), "needs 8"),
        (lambda: SensorFrame(0, 0, DType.U8, (0,), b""), "dimension"),
        (lambda: SensorFrame(0, 0, DType.U8, (2041,), b"\x01" * 2041), "MAX_PAYLOAD"),
    ],
)
def test_field_validation(factory: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()  # type: ignore[operator]


def test_largest_frame_fits_the_decoder_bound() -> None:
    frame = SensorFrame(0, 0, DType.U8, (MAX_PAYLOAD - 9,), (bytes(range(1, 256)) * 9)[: MAX_PAYLOAD - 9])
    wire = encode(frame)
    assert len(wire) - 1 <= MAX_ENCODED_FRAME
    assert Decoder().feed(wire) == [frame]
    assert issubclass(EncodeError, ValueError)


def test_decoder_counts_and_rejects() -> None:
    rejects: list[Reject] = []
    decoder = Decoder(on_reject=rejects.append)
    good = encode(Trigger(1, 2, seq=3))
    bad_crc = bytearray(good)
    bad_crc[3] ^= 0x01
    stream = b"".join(
        [
            b"\x00\x00",  # empty frames are ignored
            bytes(bad_crc),
            b"\x05\x01\x00",  # invalid COBS
            b"\x02\x01\x00",  # valid COBS, too short
            _raw_frame(2, MessageType.TRIGGER, b"\x01\x00\x00\x00\x00"),
            _raw_frame(1, 0x55, b""),
            _raw_frame(1, MessageType.TRIGGER, b"\x01\x00\x00\x00\x00", length=4),
            _raw_frame(1, MessageType.RESULT, bytes(10) + b"\x07"),  # verdict 7
            b"\x01" * (MAX_ENCODED_FRAME + 5) + b"\x00",
            good,
        ]
    )
    assert decoder.feed(stream) == [Trigger(1, 2, seq=3)]
    stats = decoder.stats
    assert (stats.bad_crc, stats.garbage, stats.bad_version, stats.unknown_type) == (1, 2, 1, 1)
    assert (stats.malformed, stats.oversized, stats.frames_ok) == (2, 1, 1)
    assert stats.max_buffered <= MAX_ENCODED_FRAME and decoder.buffered == 0
    assert [r.code for r in rejects] == [
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.MALFORMED,
        ErrorCode.MALFORMED,
    ]
    assert rejects[1] == Reject(0x55, 0x1234, ErrorCode.UNKNOWN_TYPE)
    assert stats.as_dict()["errors"] == stats.errors == 8


def test_decode_frame_errors_name_the_reason() -> None:
    with pytest.raises(ValueError, match="bad_crc"):
        decode_frame(encode_raw(Ack(1, 2))[:-1] + b"\x00")
    try:
        decode_frame(b"\x01\x55\x00\x00\x00\x00" + struct.pack("<H", crc16(b"\x01\x55\x00\x00\x00\x00")))
    except ValueError as exc:
        assert getattr(exc, "error", None) is FrameError.UNKNOWN_TYPE


def test_hello_accepts_trailing_bytes_for_future_versions() -> None:
    hello = Hello(0, 1, 2, 5, 0, 64, "abc")
    raw_payload = encode_raw(hello)[6:-2] + b"\x99\x98"
    frame = _raw_frame(1, MessageType.HELLO, raw_payload)
    assert Decoder().feed(frame) == [Hello(0, 1, 2, 5, 0, 64, "abc", seq=0x1234)]


def test_waveform_modes_differ() -> None:
    rng = np.random.default_rng(1)
    idle, normal, fault = (
        window(mode, rng, 0.0) for mode in (SensorMode.IDLE, SensorMode.NORMAL, SensorMode.FAULT)
    )
    for w in (idle, normal, fault):
        assert w.shape == (128, 3) and w.dtype == np.float32
    rms = [float(np.sqrt(np.mean(w**2))) for w in (idle, normal, fault)]
    assert rms[0] < 0.05 < rms[1] < rms[2]
    high = [float(np.abs(np.fft.rfft(w[:, 0]))[40:].sum()) for w in (normal, fault)]  # > 125 Hz
    assert high[1] > 3 * high[0]
    assert [cycle_mode(t, 5.0) for t in (0, 5, 10, 15)] == ["idle", "normal", "fault", "idle"]
    with pytest.raises(ValueError):
        window(SensorMode.CYCLE, rng, 0.0)
