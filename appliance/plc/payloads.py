"""What MQTT and webhooks send: one result as small, flat JSON with fixed field names.

The same fields as the REST trigger answer (docs/plc.md), plus `source`, so that one parser on the
receiving side handles all three.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.pipeline.inspection import flat_result
from appliance.pipeline.results import Result, ResultBus


@dataclass(frozen=True)
class Feed:
    """Where an output gets its results: the bus, and the rule that says pass or fail."""

    bus: ResultBus
    judge: Callable[[Result], bool]


@dataclass(frozen=True)
class Judged:
    """A result without its frame (outputs queue many of them), and its verdict."""

    result: Result
    ok: bool

    @classmethod
    def of(cls, result: Result, judge: Callable[[Result], bool]) -> Judged:
        light = result if result.image is None else dataclasses.replace(result, image=None)
        return cls(light, judge(result))


def result_payload(judged: Judged) -> dict[str, Any]:
    return flat_result(judged.result, judged.ok)


def encode(judged: Judged) -> bytes:
    """Compact JSON (no spaces): what goes on the wire."""
    return json.dumps(result_payload(judged), separators=(",", ":")).encode()
