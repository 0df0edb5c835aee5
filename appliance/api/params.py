"""Query-string parsing with errors that name the parameter."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from appliance.errors import BadRequest


def time_param(params: QueryParams, name: str) -> float | None:
    """Epoch seconds or an ISO 8601 time (naive times are UTC)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as err:
        raise BadRequest(f"{name}: {raw!r} is neither epoch seconds nor an ISO 8601 time") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def int_param(params: QueryParams, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise BadRequest(f"{name}: {raw!r} is not a whole number") from err
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low} and {high}, got {value}")
    return value


def float_param(params: QueryParams, name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError as err:
        raise BadRequest(f"{name}: {raw!r} is not a number") from err


def flag_param(params: QueryParams, name: str) -> bool:
    raw = (params.get(name) or "0").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise BadRequest(f"{name}: use 1 or 0, got {raw!r}")
    return raw in ("1", "true", "yes")
