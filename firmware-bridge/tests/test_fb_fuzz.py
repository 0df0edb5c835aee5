"""Decoder robustness: hypothesis fuzzing and the fuzzbench script."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

from firmware_bridge import cobs, fuzzbench
from firmware_bridge.codec import Decoder, encode, encode_raw
from firmware_bridge.messages import (
    Ack,
    DeviceStatus,
    EnterBootloader,
    Heartbeat,
    Hello,
    IoSet,
    Message,
    Nack,
    Result,
    SensorFrame,
    TimeReply,
    TimeRequest,
    Trigger,
    Verdict,
)
from firmware_bridge.protocol import FIRMWARE_STRING_MAX, MAX_ENCODED_FRAME, MIN_MAX_PAYLOAD
from firmware_bridge.tensor import DType, itemsize
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=150, deadline=None, database=None)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)


@st.composite
def sensor_frames(draw: st.DrawFn) -> SensorFrame:
    dtype = draw(st.sampled_from(list(DType)))
    shape = draw(st.one_of(st.just((128, 3)), st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)))
    size = itemsize(dtype)
    for dim in shape:
        size *= dim
    data = draw(st.binary(min_size=size, max_size=size))
    return SensorFrame(draw(u8), draw(u32), dtype, shape, data, seq=draw(u16))


@st.composite
def hellos(draw: st.DrawFn) -> Hello:
    low, high = sorted((draw(u8), draw(u8)))
    text = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=FIRMWARE_STRING_MAX))
    max_payload = draw(st.integers(MIN_MAX_PAYLOAD, 0xFFFF))
    fixed = (draw(u8), low, high, draw(u32), draw(u32), max_payload, text)
    if draw(st.booleans()):  # 1.0 HELLO without the 1.1 extension
        return Hello(*fixed, seq=draw(u16))
    return Hello(*fixed, draw(u8), draw(u32), draw(u32), seq=draw(u16))


messages: st.SearchStrategy[Message] = st.one_of(
    hellos(),
    sensor_frames(),
    st.builds(Trigger, u8, u32, seq=u16),
    st.builds(
        Result,
        u32,
        u16,
        st.integers(-0x8000, 0x7FFF),
        st.integers(0, 1000),
        st.sampled_from(Verdict),
        seq=u16,
    ),
    st.builds(IoSet, u8, st.booleans(), u16, seq=u16),
    st.builds(Ack, u8, u16, seq=u16),
    st.builds(Nack, u8, u16, u8, seq=u16),
    st.builds(Heartbeat, u32, u32, u32, u32, u32, seq=u16),
    st.builds(TimeRequest, u32, seq=u16),
    st.builds(TimeReply, u32, u32, seq=u16),
    st.builds(DeviceStatus, u32, u32, u32, u32, u32, seq=u16),
    st.builds(EnterBootloader, u32, u8, seq=u16),
)


def _feed_checked(decoder: Decoder, data: bytes) -> list[Message]:
    out = decoder.feed(data)
    assert decoder.buffered <= MAX_ENCODED_FRAME
    assert decoder.stats.max_buffered <= MAX_ENCODED_FRAME
    return out


@FUZZ
@given(st.lists(st.binary(max_size=2 * MAX_ENCODED_FRAME), max_size=6))
def test_random_bytes_never_raise_and_stay_bounded(chunks: list[bytes]) -> None:
    decoder = Decoder()
    for chunk in chunks:
        _feed_checked(decoder, chunk)
    assert decoder.stats.bytes_in == sum(map(len, chunks))


@FUZZ
@given(messages, st.lists(st.integers(0, 4000), max_size=8))
def test_any_message_roundtrips_with_any_split(message: Message, cuts: list[int]) -> None:
    wire = encode(message)
    points = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    decoder = Decoder()
    out: list[Message] = []
    for start, end in itertools.pairwise(points):
        out += _feed_checked(decoder, wire[start:end])
    assert out == [message]


@FUZZ
@given(st.binary(max_size=3 * MAX_ENCODED_FRAME), messages)
def test_valid_frame_after_garbage_decodes(garbage: bytes, message: Message) -> None:
    decoder = Decoder()
    out = _feed_checked(decoder, garbage + b"\x00" + encode(message))
    assert out and out[-1] == message


@FUZZ
@given(messages, st.lists(st.tuples(st.integers(0, 10_000), u8), min_size=1, max_size=4), st.data())
def test_mutated_frames_never_raise(
    message: Message, edits: list[tuple[int, int]], data: st.DataObject
) -> None:
    wire = bytearray(encode(message))
    for position, value in edits:
        wire[position % len(wire)] = value
    if data.draw(st.booleans()):
        wire = wire[: data.draw(st.integers(0, len(wire)))]
    decoder = Decoder()
    _feed_checked(decoder, bytes(wire))
    out = _feed_checked(decoder, b"\x00" + encode(message))
    assert out and out[-1] == message


@FUZZ
@given(messages, st.integers(min_value=0))
def test_single_bit_error_is_counted_as_bad_crc(message: Message, bit: int) -> None:
    raw = bytearray(encode_raw(message))
    bit %= 8 * len(raw)
    raw[bit // 8] ^= 1 << (bit % 8)
    decoder = Decoder()
    before = decoder.stats.bad_crc
    assert _feed_checked(decoder, cobs.encode(bytes(raw)) + b"\x00") == []
    assert decoder.stats.bad_crc == before + 1
    assert decoder.stats.errors == 1


@FUZZ
@given(st.integers(1, 3000), st.binary(min_size=1, max_size=64), messages)
def test_oversized_frame_is_counted_and_skipped(extra: int, pattern: bytes, message: Message) -> None:
    filler = (pattern.replace(b"\x00", b"\x01") * (MAX_ENCODED_FRAME // len(pattern) + 2))[
        : MAX_ENCODED_FRAME + extra
    ]
    decoder = Decoder()
    assert _feed_checked(decoder, filler) == []
    assert _feed_checked(decoder, encode(message)) == []  # still skipping up to the next delimiter
    assert decoder.stats.oversized == 1
    assert _feed_checked(decoder, encode(message)) == [message]


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=200), messages), max_size=6))
def test_concatenated_frames_and_garbage(parts: list[tuple[bytes, Message]]) -> None:
    stream = b"".join(garbage + b"\x00" + encode(message) for garbage, message in parts)
    out = iter(_feed_checked(Decoder(), stream))
    assert all(any(got == message for got in out) for _, message in parts)  # in-order subsequence


def test_fuzzbench_run_reports_ok() -> None:
    report = fuzzbench.run(5000, seed=7)
    assert report.ok, report.render()
    stats = report.stats
    assert stats.bad_crc > 0 and stats.oversized > 0 and stats.garbage > 0 and stats.malformed > 0
    assert report.max_buffered <= MAX_ENCODED_FRAME
    assert "RESULT: OK" in report.render()


def test_fuzzbench_cli() -> None:
    package_dir = Path(fuzzbench.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_dir), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "firmware_bridge.fuzzbench", "--count", "20000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inputs          20000" in proc.stdout
    assert "exceptions      0" in proc.stdout and "RESULT: OK" in proc.stdout
