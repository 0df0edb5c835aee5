"""Rows of the results table, as the writer takes them and as readers show them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

# Columns the writer fills from a Record, in order; the writer adds snapshot and snapshot_bytes.
COLUMNS = (
    "ts",
    "seq",
    "frame_id",
    "source",
    "model",
    "model_version",
    "task",
    "backend",
    "label",
    "label_id",
    "score",
    "count",
    "detections",
    "extra",
    "pre_ms",
    "infer_ms",
    "post_ms",
    "total_ms",
    "verdict",
)
INSERT_SQL = (
    f"INSERT INTO results ({', '.join(COLUMNS)}, snapshot, snapshot_bytes) "
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)


@dataclass(frozen=True)
class Record:
    """One result to store: values for COLUMNS, and the frame if a snapshot is wanted."""

    values: tuple[Any, ...]
    image: np.ndarray | None = None


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it."""
    out = dict(row)
    out["time"] = datetime.fromtimestamp(row["ts"], UTC).isoformat(timespec="milliseconds")
    out["detections"] = json.loads(row["detections"] or "[]")
    out["extra"] = json.loads(row["extra"]) if row.get("extra") else {}
    out["verdict"] = json.loads(row["verdict"]) if row.get("verdict") else None
    return out
