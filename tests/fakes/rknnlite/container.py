"""The fake .rknn file: magic, header length, JSON header, then the float twin's .tflite bytes."""

from __future__ import annotations

import json
import struct
from typing import Any

MAGIC = b"RKNNFAKE"
_LENGTH = struct.Struct("<I")


def pack(tflite: bytes, target: str = "rk3588", toolkit: str = "2.3.2", quantized: bool = False) -> bytes:
    header = json.dumps({"target": target, "toolkit": toolkit, "quantized": quantized}).encode()
    return MAGIC + _LENGTH.pack(len(header)) + header + tflite


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, tflite bytes); ValueError when `data` is not a fake .rknn file."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LENGTH.size:
        raise ValueError("not an RKNN model (bad magic)")
    start = len(MAGIC) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    header = json.loads(data[start : start + length])
    return header, data[start + length :]
