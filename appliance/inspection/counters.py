"""Production counters per job and in total, persisted in their own SQLite file (data_dir/counters.db).

Counted per job number and in a total row (job 0, which is kept independently: resetting one job
leaves the total alone; resetting everything resets the total too):

- triggers: every inspection that ran (ok + ng + errors)
- ok, ng, errors: its outcome (an error is a trigger that produced no verdict)
- missed: triggers refused while the appliance was busy (not in `triggers`)
- processing time min / avg / max in ms over the verdicts and errors that reported one
- yield = ok / (ok + ng), in percent (None before the first verdict)
- reset_at: when the row was last reset (or first created)

Every update is one transaction (WAL journal), so a restart keeps every update that returned.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import BadRequest

TOTAL = 0
OUTCOMES = ("ok", "ng", "error")
COUNTERS_FILE = "counters.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    job INTEGER PRIMARY KEY,
    triggers INTEGER NOT NULL DEFAULT 0,
    ok INTEGER NOT NULL DEFAULT 0,
    ng INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    missed INTEGER NOT NULL DEFAULT 0,
    timed INTEGER NOT NULL DEFAULT 0,
    time_sum_ms REAL NOT NULL DEFAULT 0,
    time_min_ms REAL,
    time_max_ms REAL,
    reset_at REAL NOT NULL
)
"""
COLUMNS = "job, triggers, ok, ng, errors, missed, timed, time_sum_ms, time_min_ms, time_max_ms, reset_at"


@dataclass(frozen=True)
class CounterSnapshot:
    job: int  # 0: the total
    triggers: int
    ok: int
    ng: int
    errors: int
    missed: int
    time_min_ms: float | None
    time_avg_ms: float | None
    time_max_ms: float | None
    reset_at: float

    @property
    def yield_pct(self) -> float | None:
        judged = self.ok + self.ng
        return None if judged == 0 else 100.0 * self.ok / judged

    def to_json(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "job": self.job,
            "triggers": self.triggers,
            "ok": self.ok,
            "ng": self.ng,
            "errors": self.errors,
            "missed": self.missed,
            "yield_pct": None if self.yield_pct is None else round(self.yield_pct, 3),
            "time_ms": {
                "min": ms(self.time_min_ms),
                "avg": ms(self.time_avg_ms),
                "max": ms(self.time_max_ms),
            },
            "reset_at": round(self.reset_at, 3),
        }


def _snapshot(row: tuple[Any, ...]) -> CounterSnapshot:
    job, triggers, ok, ng, errors, missed, timed, time_sum, tmin, tmax, reset_at = row
    return CounterSnapshot(
        job, triggers, ok, ng, errors, missed, tmin, time_sum / timed if timed else None, tmax, reset_at
    )


class Counters:
    """The counters database; one connection, used under a lock (the only writer of its file)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)

    def _ensure(self, job: int, now: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO counters (job, reset_at) VALUES (?, ?)", (job, now))

    @staticmethod
    def _check_job(job: int) -> int:
        if isinstance(job, bool) or not isinstance(job, int) or not 0 <= job <= 999:
            raise BadRequest(f"job numbers are 1..999 (0: the total), got {job!r}")
        return job

    def record(self, job: int, outcome: str, time_ms: float | None = None) -> None:
        """Count one trigger of `job` that ended `ok`, `ng` or `error` (with its processing time)."""
        if outcome not in OUTCOMES:
            raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        column = {"ok": "ok", "ng": "ng", "error": "errors"}[outcome]
        timed = time_ms is not None and time_ms >= 0.0
        ms = float(time_ms) if timed and time_ms is not None else 0.0
        rows = {TOTAL, self._check_job(job)}
        with self._lock:
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    self._ensure(row, now)
                    self._db.execute(
                        f"UPDATE counters SET triggers = triggers + 1, {column} = {column} + 1, "
                        "timed = timed + :t, time_sum_ms = time_sum_ms + :ms, "
                        "time_min_ms = CASE WHEN :t = 0 THEN time_min_ms "
                        "  WHEN time_min_ms IS NULL OR :ms < time_min_ms THEN :ms ELSE time_min_ms END, "
                        "time_max_ms = CASE WHEN :t = 0 THEN time_max_ms "
                        "  WHEN time_max_ms IS NULL OR :ms > time_max_ms THEN :ms ELSE time_max_ms END "
                        "WHERE job = :job",
                        {"t": int(timed), "ms": ms, "job": row},
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def missed(self, job: int) -> None:
        """Count a trigger refused while busy."""
        rows = {TOTAL, self._check_job(job)}
        with self._lock:
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")
            for row in rows:
                self._ensure(row, now)
                self._db.execute("UPDATE counters SET missed = missed + 1 WHERE job = ?", (row,))
            self._db.execute("COMMIT")

    def read(self, job: int = TOTAL) -> CounterSnapshot:
        """The counters of `job` (0: the total); zeros for a job never counted."""
        self._check_job(job)
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM counters WHERE job = ?", (job,)).fetchone()
        if row is None:
            return CounterSnapshot(job, 0, 0, 0, 0, 0, None, None, None, 0.0)
        return _snapshot(row)

    def read_all(self) -> list[CounterSnapshot]:
        """The total first, then every job that has counters, by number."""
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM counters ORDER BY job").fetchall()
        found = [_snapshot(r) for r in rows]
        if not found or found[0].job != TOTAL:
            found.insert(0, CounterSnapshot(TOTAL, 0, 0, 0, 0, 0, None, None, None, 0.0))
        return found

    def reset(self, job: int | None = None) -> float:
        """Zero one job's counters, or (None) every job and the total; returns the reset time."""
        if job is not None:
            self._check_job(job)
        with self._lock:
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")
            if job is None:
                self._db.execute("DELETE FROM counters")
                self._ensure(TOTAL, now)
            else:
                self._db.execute("DELETE FROM counters WHERE job = ?", (job,))
                self._ensure(job, now)
            self._db.execute("COMMIT")
        return now

    def close(self) -> None:
        with self._lock:
            self._db.close()
