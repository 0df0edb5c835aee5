"""What MQTT and webhooks send: one result as small, flat JSON with fixed field names.

The same fields as the REST trigger answer (docs/plc.md), plus `source`, so that one parser on the
receiving side handles all three, and `event_id`: the same id for the same result on every output,
every retry and after a restart, for receivers to deduplicate (MQTT QoS 1 and webhooks deliver at
least once).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
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


EVENT_NAMESPACE = uuid.UUID("6f1d7c2e-8b8a-4f57-9d0e-3c1f5a6b7e90")


def event_id(result: Result) -> str:
    """A UUID derived from the result (source, seq, timestamp): stable wherever it is sent."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{result.source}/{result.seq}/{result.ts!r}"))


def result_payload(judged: Judged) -> dict[str, Any]:
    return {**flat_result(judged.result, judged.ok), "event_id": event_id(judged.result)}


def encode(judged: Judged) -> bytes:
    """Compact JSON (no spaces): what goes on the wire."""
    return json.dumps(result_payload(judged), separators=(",", ":")).encode()
