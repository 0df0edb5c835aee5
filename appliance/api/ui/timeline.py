"""Results per time interval from the results database (for the dashboard's results-over-time chart).

One GROUP BY over the indexed `ts` column of a read-only connection; a missing database (store off,
nothing written yet) reads as no results.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from appliance.store.database import connect

WINDOW_S = 600.0
BUCKET_S = 10.0

SQL = (
    "SELECT CAST((ts - ?) / ? AS INTEGER) AS bucket, COUNT(*), SUM(count > 0) "
    "FROM results WHERE ts >= ? AND ts < ? GROUP BY bucket"
)


def counts(
    db: Path, window_s: float = WINDOW_S, bucket_s: float = BUCKET_S, now: float | None = None
) -> list[tuple[int, int]]:
    """(results, results with detections) per bucket, oldest first, over the last `window_s`."""
    return bucketed(db, SQL, window_s, bucket_s, now)


def bucketed(
    db: Path, sql: str, window_s: float, bucket_s: float, now: float | None
) -> list[tuple[int, int]]:
    """Two sums per bucket from `sql` (parameters: start, bucket_s, start, end; rows: bucket, a, b),
    oldest first; a missing or unreadable database reads as zeros."""
    buckets = int(window_s // bucket_s)
    end = time.time() if now is None else now
    start = end - buckets * bucket_s
    out = [(0, 0)] * buckets
    if not db.exists():
        return out
    try:
        conn = connect(db, readonly=True)
        try:
            rows = conn.execute(sql, (start, bucket_s, start, end)).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return out
    for bucket, first, second in rows:
        if 0 <= bucket < buckets:
            out[bucket] = (int(first), int(second or 0))
    return out
