"""Request and response bodies: every request body is read against its route's cap, JSON with a depth limit.

A Content-Length over the cap is refused (413) before a byte is read; a chunked body is counted as it
streams and refused the moment it passes the cap, so an oversized body costs at most one cap of memory.
JSON is scanned for nesting deeper than MAX_DEPTH before it is parsed (orjson), and any decode problem
(invalid UTF-8, syntax, depth) is a 400 naming it. Responses are encoded with orjson too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse

from appliance.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

SMALL_JSON_BYTES = 64 * 1024  # setup, tokens, config changes, activation, login forms
MAX_DEPTH = 64
JSON_TYPE = "application/json"
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")
_ENCODE = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _declared(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isascii() or not declared.isdigit():
        raise BadRequest(f"Content-Length {declared!r} is not a byte count")
    if int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit} byte limit")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes (else 413, without reading the rest)."""
    _declared(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def save_body(request: Request, limit: int, path: Path) -> int:
    """Stream the body into `path`, at most `limit` bytes (else 413); returns its size."""
    _declared(request, limit)
    size = 0
    with path.open("wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body is over the {limit} byte limit")
            fh.write(chunk)
    return size


def check_depth(raw: bytes, what: str = "body") -> None:
    """Refuse JSON nested deeper than MAX_DEPTH before parsing it (brackets inside strings do not count)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if token[0] in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise BadRequest(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")
        elif token[0] != ord('"'):
            depth -= 1


def parse_json(raw: bytes, what: str = "body") -> Any:
    """Parsed JSON, or a 400 naming what is wrong (invalid UTF-8, syntax, nesting depth)."""
    check_depth(raw, what)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"{what} is not valid JSON: {err}") from err


async def json_object(
    request: Request, limit: int = SMALL_JSON_BYTES, empty_ok: bool = False
) -> dict[str, Any]:
    """A small JSON object body (application/json), or a clear 4xx; with empty_ok no body means {}."""
    is_json = request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON_TYPE
    if not is_json and not empty_ok:
        raise UnsupportedMediaType("send application/json")
    raw = await read_body(request, limit)
    if not raw and (empty_ok or is_json):
        return {}
    if not is_json:
        raise UnsupportedMediaType("send application/json")
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _default(value: Any) -> Any:
    """What orjson cannot encode by itself: other numpy arrays and scalars; anything else as text."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return str(value)


def dumps(content: Any) -> bytes:
    """JSON bytes (orjson; numpy arrays included, NaN becomes null)."""
    try:
        return orjson.dumps(content, default=_default, option=_ENCODE)
    except orjson.JSONEncodeError:  # integers past 64 bits and other rarities: the stdlib, as text
        return json.dumps(content, default=_default).encode()


class JSONResponse(StarletteJSONResponse):
    """Starlette's JSONResponse, encoded with orjson."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
