"""Retention: keep results under a maximum age, row count, and disk bytes (database plus snapshots)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_ROUNDS = 50
DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_days: float = 0.0  # 0: no limit
    max_rows: int = 0
    max_bytes: int = 0


class Retention:
    def __init__(self, conn: sqlite3.Connection, snapshot_dir: Path, policy: RetentionPolicy) -> None:
        self._conn = conn
        self._snapshots = snapshot_dir
        self.policy = policy
        self.deleted = 0

    def disk_bytes(self) -> int:
        """Bytes the results hold: used database pages plus snapshot files."""
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        snapshots = self._conn.execute("SELECT COALESCE(SUM(snapshot_bytes), 0) FROM results").fetchone()[0]
        return int((pages - free) * page_size + snapshots)

    def _delete(self, where: str, params: tuple[float | int, ...]) -> int:
        files = [
            r[0]
            for r in self._conn.execute(
                f"SELECT snapshot FROM results WHERE snapshot IS NOT NULL AND {where}", params
            )
        ]
        self._conn.execute("BEGIN IMMEDIATE")
        deleted = self._conn.execute(f"DELETE FROM results WHERE {where}", params).rowcount
        self._conn.execute("COMMIT")
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                (self._snapshots / name).unlink()
        self.deleted += deleted
        return int(deleted)

    def run(self) -> int:
        """Apply the policy once; returns the number of results deleted."""
        policy, deleted = self.policy, 0
        if policy.max_age_days > 0:
            deleted += self._delete("ts < ?", (time.time() - policy.max_age_days * DAY_S,))
        if policy.max_rows > 0:
            deleted += self._delete(
                "id <= (SELECT id FROM results ORDER BY id DESC LIMIT 1 OFFSET ?)", (policy.max_rows,)
            )
        if policy.max_bytes > 0:
            deleted += self._trim_bytes(policy.max_bytes)
        if deleted:
            self._conn.execute("PRAGMA incremental_vacuum")
            logger.info("retention deleted %d results", deleted)
        return deleted

    def _trim_bytes(self, limit: int) -> int:
        deleted = 0
        for _ in range(MAX_ROUNDS):
            used = self.disk_bytes()
            rows = self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            if used <= limit or rows == 0:
                break
            excess = (used - limit) / used
            count = max(1, int(rows * excess * 1.1) + 1)  # a little more than the share over the limit
            deleted += self._delete(
                "id <= (SELECT id FROM results ORDER BY id ASC LIMIT 1 OFFSET ?)", (min(count, rows) - 1,)
            )
        return deleted
