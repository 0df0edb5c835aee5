"""Consistent Overhead Byte Stuffing (canonical form, no delimiter handling).

The encoder produces the canonical encoding: a block of 254 non-zero bytes that ends exactly at
the end of the input is *not* followed by an empty ``0x01`` block. The decoder accepts both forms.
"""

_BLOCK = 254


def max_encoded_size(raw_len: int) -> int:
    """Upper bound for the encoded size of ``raw_len`` input bytes."""
    return raw_len + raw_len // _BLOCK + 1


def encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 byte."""
    out = bytearray()
    segments = bytes(data).split(b"\x00")
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        pos = 0
        size = len(segment)
        while size - pos >= _BLOCK:
            out.append(0xFF)
            out += segment[pos : pos + _BLOCK]
            pos += _BLOCK
        remainder = size - pos
        if index == last and remainder == 0 and size > 0:
            break
        out.append(remainder + 1)
        out += segment[pos:]
    return bytes(out)


def decode(data: bytes | bytearray | memoryview) -> bytes | None:
    """Decode one COBS block sequence (without delimiter); ``None`` if it is not valid COBS."""
    src = bytes(data)
    out = bytearray()
    pos = 0
    size = len(src)
    while pos < size:
        code = src[pos]
        end = pos + code
        if code == 0 or end > size:
            return None
        block = src[pos + 1 : end]
        if 0 in block:
            return None
        out += block
        pos = end
        if code != 0xFF and pos < size:
            out.append(0)
    return bytes(out)
