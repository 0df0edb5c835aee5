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
    r = judged.result
    return {
        "seq": r.seq,
        "ok": judged.ok,
        "label": r.label or "",
        "label_id": -1 if r.label_id is None else r.label_id,
        "score": round(r.score or 0.0, 4),
        "count": r.count,
        "latency_ms": round(r.timings.total_ms, 3),
        "model": r.model,
        "model_version": r.model_version,
        "backend": r.backend,
        "ts": round(r.ts, 3),
        "source": r.source,
        "detections": [d.to_json() for d in r.detections],
    }


def encode(judged: Judged) -> bytes:
    """Compact JSON (no spaces): what goes on the wire."""
    return json.dumps(result_payload(judged), separators=(",", ":")).encode()
