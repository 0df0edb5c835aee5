"""Query-string parsing with errors that name the parameter. An empty value means "not given"."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from appliance.errors import BadRequest

NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # a JSON number
WHOLE = re.compile(r"-?[0-9]+")
FLAGS = {"0": False, "1": True, "true": True, "false": False, "yes": True, "no": False}


def _number(raw: str) -> float | None:
    value = float(raw) if NUMBER.fullmatch(raw) else math.nan
    return value if math.isfinite(value) else None


def time_param(params: QueryParams, name: str) -> float | None:
    """Epoch seconds or an ISO 8601 time (naive times are UTC)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    number = _number(raw)
    if number is not None:
        return number
    try:
        parsed = datetime.fromisoformat(raw.strip().upper().replace("Z", "+00:00"))
    except ValueError as err:
        raise BadRequest(f"{name}: {raw!r} is neither epoch seconds nor an ISO 8601 time") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def int_param(params: QueryParams, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not WHOLE.fullmatch(raw) or len(raw) > 20:
        raise BadRequest(f"{name}: {raw!r} is not a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low} and {high}, got {value}")
    return value


def float_param(params: QueryParams, name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = _number(raw)
    if value is None:
        raise BadRequest(f"{name}: {raw!r} is not a finite number")
    return value


def flag_param(params: QueryParams, name: str) -> bool:
    raw = params.get(name) or "0"
    if raw not in FLAGS:
        raise BadRequest(f"{name}: use 1 or 0, got {raw!r}")
    return FLAGS[raw]
