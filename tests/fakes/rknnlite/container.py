"""The fake .rknn file: magic, header length, JSON header, then the float twin's .tflite bytes.

The header carries what a real .rknn carries and the runtime acts on (tests/fakes/README.md):
`format_version` (the model file format, checked by librknnrt in rknn_init), `target`, `toolkit`,
`source` ("tflite" or "onnx": ONNX models keep NCHW 4-D outputs), `quantized`, the per-output
attributes (`outputs`: dtype, scale, zero_point; raw integer outputs come back as they are) and the
input settings baked in at conversion (`inputs`: mean/std folded in, dtype). `crc` is the CRC-32 of
the payload, so a damaged or truncated file is noticed where the real runtime notices it: in
init_runtime, not in load_rknn.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MAGIC = b"RKNNFAKE"
_LENGTH = struct.Struct("<I")
FORMAT_VERSION = 6  # what rknn-toolkit2 >= 1.6 writes ("Invalid RKNN model version 6" on older runtimes)


def format_version_of(toolkit: str) -> int:
    major, minor = (int(p) for p in toolkit.split(".")[:2])
    return FORMAT_VERSION if (major, minor) >= (1, 6) else 5


def pack(
    tflite: bytes,
    target: str = "rk3588",
    toolkit: str = "2.3.2",
    quantized: bool = False,
    **attributes: Any,
) -> bytes:
    """A fake .rknn. `attributes`: source, outputs, inputs, format_version (see the module doc)."""
    header = {
        "target": target,
        "toolkit": toolkit,
        "quantized": quantized,
        "format_version": attributes.pop("format_version", format_version_of(toolkit)),
        "source": attributes.pop("source", "tflite"),
        "outputs": attributes.pop("outputs", []),
        "inputs": attributes.pop("inputs", []),
        "crc": zlib.crc32(tflite),
    }
    if attributes:
        raise TypeError(f"unknown .rknn attributes: {sorted(attributes)}")
    data = json.dumps(header).encode()
    return MAGIC + _LENGTH.pack(len(data)) + data + tflite


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, tflite bytes); ValueError with librknnrt's words when `data` is not a sound .rknn."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LENGTH.size:
        raise ValueError("parseRKNN: invalid RKNN_MAGIC!")
    start = len(MAGIC) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    try:
        header = json.loads(data[start : start + length])
    except ValueError as err:
        raise ValueError("parseRKNN from buffer: Invalid RKNN format!") from err
    payload = data[start + length :]
    if zlib.crc32(payload) != header.get("crc", zlib.crc32(payload)):
        raise ValueError("parseRKNN from buffer: Invalid RKNN format!")
    return header, payload
