"""Judged parts and OK parts per minute over the last hour, from the results' `verdict` column (the
Inspection page's yield-over-time chart): one GROUP BY on a read-only connection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from appliance.api.ui import charts, timeline

WINDOW_S = 3600.0
BUCKET_S = 60.0
SQL = (
    "SELECT CAST((ts - ?) / ? AS INTEGER) AS bucket, COUNT(*), SUM(json_extract(verdict, '$.ok')) "
    "FROM results WHERE ts >= ? AND ts < ? AND verdict IS NOT NULL GROUP BY bucket"
)


def counts(db: Path, now: float | None = None) -> list[tuple[int, int]]:
    """(judged, OK) per minute, oldest first; nothing stored (or no database yet) reads as zeros."""
    return timeline.bucketed(db, SQL, WINDOW_S, BUCKET_S, now)


def chart(db: Path) -> charts.Chart:
    """Bars per minute: every judged part, and over it the OK ones (their ratio is the yield)."""
    points = counts(db)
    drawn = charts.timeline("Parts per minute, OK over all judged (yield), last hour", points, BUCKET_S)
    bars = tuple(
        dataclasses.replace(b, title=b.title.replace("with detections", "OK").replace("results", "judged"))
        for b in drawn.bars
    )
    legend = tuple((css, "judged" if text == "results" else "OK") for css, text in drawn.legend)
    empty = "" if any(j for j, _ in points) else "No judged parts stored in the last hour."
    return dataclasses.replace(drawn, bars=bars, legend=legend, empty=empty)
