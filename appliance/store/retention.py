"""Retention: keep results under a maximum age, row count and disk bytes, and give space back.

Every delete unlinks the snapshot files first and then deletes the rows in small transactions, so
a delete frees space before its commit needs any (a commit on a full disk fails, see space.py).
Under the free-space reserve the writer calls `unlink_oldest` (files only, no commit) and, when no
snapshot is left, `evict_oldest` inside its own insert transaction (the table stops growing).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass

from appliance.store.database import rollback
from appliance.store.snapshots import SnapshotFiles

logger = logging.getLogger(__name__)

MAX_ROUNDS = 50
DAY_S = 86_400.0
CHUNK = 500  # rows per delete transaction: a small WAL append, even on a nearly full disk
VACUUM_PAGES = 1000  # pages per incremental_vacuum transaction (one WAL checkpoint's worth)
VACUUM_ROUNDS = 1000


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_days: float = 0.0  # 0: no limit
    max_rows: int = 0
    max_bytes: int = 0
    min_free_bytes: int = 0  # free-space reserve on the data disk (the writer keeps it); 0: no check


class Retention:
    def __init__(self, conn: sqlite3.Connection, files: SnapshotFiles, policy: RetentionPolicy) -> None:
        self._conn = conn
        self._files = files
        self.policy = policy
        self.deleted = 0
        self._unlinked_upto = 0  # snapshot files of rows with id <= this are gone from disk
        self._cleared_upto = 0  # ... and those rows say so

    def disk_bytes(self) -> int:
        """Bytes the results hold: used database pages plus snapshot files still on disk."""
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        snapshots = self._conn.execute(
            "SELECT COALESCE(SUM(snapshot_bytes), 0) FROM results WHERE id > ?", (self._unlinked_upto,)
        ).fetchone()[0]
        return int((pages - free) * page_size + snapshots)

    def _delete(self, where: str, params: tuple[float | int, ...]) -> int:
        """Delete the rows matching `where`, oldest first, CHUNK rows (files first) per transaction."""
        deleted = 0
        while True:
            rows = self._conn.execute(
                f"SELECT id, snapshot FROM results WHERE {where} ORDER BY id LIMIT {CHUNK}", params
            ).fetchall()
            if not rows:
                break
            for _, name in rows:
                if name:
                    self._files.unlink(name)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                count = self._conn.executemany("DELETE FROM results WHERE id = ?", [(r[0],) for r in rows])
                self._conn.execute("COMMIT")
            except BaseException:
                rollback(self._conn)
                raise
            deleted += count.rowcount
            self.deleted += count.rowcount
            if len(rows) < CHUNK:
                break
        return deleted

    def run(self) -> int:
        """Apply the policy once; returns the number of results deleted."""
        policy, deleted = self.policy, 0
        if policy.max_age_days > 0:
            deleted += self._delete("ts < ?", (time.time() - policy.max_age_days * DAY_S,))
        if policy.max_rows > 0:
            deleted += self._delete_upto("ORDER BY id DESC LIMIT 1 OFFSET ?", policy.max_rows)
        if policy.max_bytes > 0:
            deleted += self._trim_bytes(policy.max_bytes)
        if deleted:
            self.vacuum()
            logger.info("retention deleted %d results", deleted)
        return deleted

    def vacuum(self) -> None:
        """Hand free pages back to the filesystem (auto_vacuum = INCREMENTAL), a WAL's worth at a time."""
        try:
            for _ in range(VACUUM_ROUNDS):
                if self._conn.execute("PRAGMA freelist_count").fetchone()[0] == 0:
                    break
                # executescript steps the pragma to the end; execute() would free a single page
                self._conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
        except sqlite3.Error as err:
            logger.warning("incremental vacuum failed: %s", err)

    def _trim_bytes(self, limit: int) -> int:
        target = limit - limit // 20  # 5 % under the cap: a size-triggered run is not due every batch
        deleted = 0
        for _ in range(MAX_ROUNDS):
            used = self.disk_bytes()
            rows = self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            if used <= target or rows == 0:
                break
            excess = (used - target) / used
            count = max(1, int(rows * excess * 1.1) + 1)  # a little more than the share over the target
            deleted += self._delete_upto("ORDER BY id ASC LIMIT 1 OFFSET ?", min(count, rows) - 1)
        return deleted

    def _delete_upto(self, pick: str, offset: int) -> int:
        """Delete the rows up to the one `pick` finds, found once: each chunk must not move the bound."""
        row = self._conn.execute(f"SELECT id FROM results {pick}", (offset,)).fetchone()
        return self._delete("id <= ?", (row[0],)) if row else 0

    def unlink_oldest(self, need: int) -> tuple[int, bool]:
        """Unlink the oldest snapshot files until `need` bytes are free; no commit.

        Returns the bytes freed and whether snapshot files are left to unlink.
        """
        freed = 0
        while freed < need:
            rows = self._conn.execute(
                "SELECT id, snapshot FROM results WHERE id > ? AND snapshot IS NOT NULL ORDER BY id LIMIT ?",
                (self._unlinked_upto, CHUNK),
            ).fetchall()
            if not rows:
                return freed, False
            for row_id, name in rows:
                freed += self._files.unlink(name)
                self._unlinked_upto = row_id
                if freed >= need:
                    break
        if freed:
            logger.debug("disk low: unlinked the oldest snapshots up to result %d", self._unlinked_upto)
        return freed, True

    def clear_unlinked(self) -> int:
        """Inside the caller's transaction: rows whose snapshot was unlinked stop naming it."""
        upto = self._unlinked_upto
        if upto > self._cleared_upto:
            self._conn.execute(
                "UPDATE results SET snapshot = NULL, snapshot_bytes = 0 "
                "WHERE id > ? AND id <= ? AND snapshot IS NOT NULL",
                (self._cleared_upto, upto),
            )
        return upto

    def cleared(self, upto: int) -> None:
        """The transaction that ran `clear_unlinked` committed."""
        self._cleared_upto = max(self._cleared_upto, upto)

    def evict_oldest(self, count: int) -> int:
        """Inside the caller's transaction: delete the `count` oldest rows (and any snapshot left)."""
        rows = self._conn.execute("SELECT id, snapshot FROM results ORDER BY id LIMIT ?", (count,)).fetchall()
        for _, name in rows:
            if name:
                self._files.unlink(name)
        self._conn.executemany("DELETE FROM results WHERE id = ?", [(r[0],) for r in rows])
        return len(rows)
