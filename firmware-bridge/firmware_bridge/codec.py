"""Sans-I/O framing: ``encode`` turns a message into wire bytes, :class:`Decoder` turns bytes into messages.

Wire format (see PROTOCOL.md)::

    COBS( version u8 | type u8 | seq u16 | length u16 | payload | crc16 u16 ) 0x00

The decoder never raises on input bytes, buffers at most ``MAX_ENCODED_FRAME`` bytes, resynchronises
at the next 0x00 delimiter and counts every frame it drops in :class:`DecoderStats`.
"""

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum

from firmware_bridge import cobs
from firmware_bridge.crc import crc16
from firmware_bridge.messages import ErrorCode, Message, MessageType
from firmware_bridge.payload import pack_payload, unpack_payload
from firmware_bridge.protocol import (
    CRC_SIZE,
    DELIMITER,
    HEADER_SIZE,
    INTER_BYTE_TIMEOUT_S,
    MAX_ENCODED_FRAME,
    MAX_PAYLOAD,
    MAX_RAW_FRAME,
    PROTOCOL_VERSION,
)

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<BBHH")
_CRC = struct.Struct("<H")


class EncodeError(ValueError):
    """A message cannot be encoded (e.g. its payload exceeds MAX_PAYLOAD)."""


class FrameError(StrEnum):
    """Why a received frame was dropped."""

    GARBAGE = "garbage"
    OVERSIZED = "oversized"
    BAD_CRC = "bad_crc"
    BAD_VERSION = "bad_version"
    UNKNOWN_TYPE = "unknown_type"
    MALFORMED = "malformed"


_REJECT_CODES: dict[FrameError, ErrorCode] = {
    FrameError.BAD_VERSION: ErrorCode.UNSUPPORTED_VERSION,
    FrameError.UNKNOWN_TYPE: ErrorCode.UNKNOWN_TYPE,
    FrameError.MALFORMED: ErrorCode.MALFORMED,
}


class FrameDecodeError(ValueError):
    """Raised by :func:`decode_frame`; ``header`` is ``(type, seq)`` when the CRC was valid."""

    def __init__(self, error: FrameError, detail: str, header: tuple[int, int] | None = None) -> None:
        super().__init__(f"{error.value}: {detail}")
        self.error = error
        self.header = header


@dataclass(frozen=True, slots=True)
class Reject:
    """A CRC-valid frame that could not be used; the session answers it with NACK ``code``."""

    type_code: int
    seq: int
    code: ErrorCode


@dataclass(frozen=True, slots=True)
class DecoderStats:
    """Counters of a :class:`Decoder` (snapshot)."""

    bytes_in: int = 0
    frames_ok: int = 0
    garbage: int = 0
    oversized: int = 0
    bad_crc: int = 0
    bad_version: int = 0
    unknown_type: int = 0
    malformed: int = 0
    partial_timeouts: int = 0
    """Partial frames discarded because no byte followed for ``INTER_BYTE_TIMEOUT_S``."""
    max_buffered: int = 0

    @property
    def errors(self) -> int:
        """Dropped frames of any kind."""
        return (
            self.garbage
            + self.oversized
            + self.bad_crc
            + self.bad_version
            + self.unknown_type
            + self.malformed
            + self.partial_timeouts
        )

    def as_dict(self) -> dict[str, int]:
        result = {f.name: int(getattr(self, f.name)) for f in fields(self)}
        result["errors"] = self.errors
        return result


def encode_raw(message: Message) -> bytes:
    """Header + payload + CRC of ``message`` (before COBS); raises :class:`EncodeError`."""
    payload = pack_payload(message)
    if len(payload) > MAX_PAYLOAD:
        raise EncodeError(
            f"{message.TYPE.name} payload of {len(payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}"
        )
    body = _HEADER.pack(PROTOCOL_VERSION, message.TYPE, message.seq, len(payload)) + payload
    return body + _CRC.pack(crc16(body))


def encode(message: Message) -> bytes:
    """Wire bytes of ``message``: COBS-encoded frame including the trailing 0x00 delimiter."""
    return cobs.encode(encode_raw(message)) + DELIMITER


def decode_frame(raw: bytes) -> Message:
    """Decode one unstuffed frame (header + payload + CRC); raises :class:`FrameDecodeError`."""
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise FrameDecodeError(FrameError.GARBAGE, f"{len(raw)} bytes is shorter than header + CRC")
    if len(raw) > MAX_RAW_FRAME:
        raise FrameDecodeError(
            FrameError.OVERSIZED, f"{len(raw)} bytes exceeds MAX_RAW_FRAME {MAX_RAW_FRAME}"
        )
    body = raw[:-CRC_SIZE]
    (received,) = _CRC.unpack_from(raw, len(body))
    if crc16(body) != received:
        raise FrameDecodeError(FrameError.BAD_CRC, f"CRC {received:#06x} != computed {crc16(body):#06x}")
    version, type_code, seq, length = _HEADER.unpack_from(body)
    header = (type_code, seq)
    if length != len(body) - HEADER_SIZE:
        raise FrameDecodeError(
            FrameError.MALFORMED, f"length field {length} != {len(body) - HEADER_SIZE}", header
        )
    if version != PROTOCOL_VERSION:
        raise FrameDecodeError(FrameError.BAD_VERSION, f"version {version}", header)
    try:
        msg_type = MessageType(type_code)
    except ValueError:
        raise FrameDecodeError(FrameError.UNKNOWN_TYPE, f"type {type_code:#04x}", header) from None
    try:
        return unpack_payload(msg_type, body[HEADER_SIZE:], seq)
    except (ValueError, struct.error, IndexError, OverflowError) as exc:
        raise FrameDecodeError(FrameError.MALFORMED, str(exc), header) from None


class Decoder:
    """Streaming frame decoder (sans-I/O). Not thread-safe: feed it from one thread.

    ``on_reject`` is called for CRC-valid frames with an unsupported version, unknown type or
    malformed payload, so the caller can decide whether to NACK them; it must not raise.
    When :meth:`feed` is given the time, a partial frame after which no byte arrived for
    ``inter_byte_timeout_s`` is discarded (``partial_timeouts``) before the new bytes are used.
    """

    def __init__(
        self,
        on_reject: Callable[[Reject], None] | None = None,
        inter_byte_timeout_s: float = INTER_BYTE_TIMEOUT_S,
    ) -> None:
        self._buffer = bytearray()
        self._skipping = False
        self._inter_byte_timeout_s = inter_byte_timeout_s
        self._last_byte_at: float | None = None
        self._counts: dict[str, int] = {f.name: 0 for f in fields(DecoderStats)}
        self._on_reject = on_reject

    @property
    def buffered(self) -> int:
        """Bytes of the current, incomplete frame held in the buffer (always <= MAX_ENCODED_FRAME)."""
        return len(self._buffer)

    @property
    def stats(self) -> DecoderStats:
        return DecoderStats(**self._counts)

    def reset(self) -> None:
        """Drop any partial frame (e.g. after the port was reopened); counters are kept."""
        self._buffer.clear()
        self._skipping = False

    def feed(self, data: bytes | bytearray | memoryview, now: float | None = None) -> list[Message]:
        """Consume bytes (received at monotonic time ``now``, if known) and return the messages
        completed by them, in order."""
        chunk = bytes(data)
        self._expire_partial(now)
        if now is not None and chunk:
            self._last_byte_at = now
        self._counts["bytes_in"] += len(chunk)
        messages: list[Message] = []
        pos = 0
        while pos < len(chunk):
            delimiter = chunk.find(DELIMITER, pos)
            end = len(chunk) if delimiter < 0 else delimiter
            self._accumulate(chunk, pos, end)
            if delimiter < 0:
                break
            self._complete(messages)
            pos = delimiter + 1
        return messages

    def _expire_partial(self, now: float | None) -> None:
        last = self._last_byte_at
        if now is None or last is None or now - last < self._inter_byte_timeout_s:
            return
        if self._buffer:
            self._counts["partial_timeouts"] += 1
            logger.debug("partial frame of %d bytes timed out", len(self._buffer))
        self.reset()

    def _accumulate(self, chunk: bytes, start: int, end: int) -> None:
        if self._skipping or start == end:
            return
        if len(self._buffer) + (end - start) > MAX_ENCODED_FRAME:
            self._counts["oversized"] += 1
            self._buffer.clear()
            self._skipping = True
            return
        self._buffer += chunk[start:end]
        self._counts["max_buffered"] = max(self._counts["max_buffered"], len(self._buffer))

    def _complete(self, messages: list[Message]) -> None:
        if self._skipping:
            self._skipping = False
            return
        if not self._buffer:
            return
        encoded = bytes(self._buffer)
        self._buffer.clear()
        raw = cobs.decode(encoded)
        if raw is None:
            self._counts[FrameError.GARBAGE.value] += 1
            return
        try:
            message = decode_frame(raw)
        except FrameDecodeError as exc:
            self._drop(exc)
            return
        self._counts["frames_ok"] += 1
        messages.append(message)

    def _drop(self, exc: FrameDecodeError) -> None:
        self._counts[exc.error.value] += 1
        logger.debug("dropped frame: %s", exc)
        code = _REJECT_CODES.get(exc.error)
        if code is not None and exc.header is not None and self._on_reject is not None:
            type_code, seq = exc.header
            self._on_reject(Reject(type_code, seq, code))
