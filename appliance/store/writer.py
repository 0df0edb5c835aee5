"""The one writer of results.db: a thread that drains a bounded queue in batched transactions.

Nobody else holds a write connection. A full queue makes `submit` wait (backpressure reaches the
pipeline, whose live sources then drop frames and count them). Snapshots are encoded and written
by this thread too, off the inference path.

Every batch first checks free space against the policy's `min_free_bytes`. Under it, the oldest snapshot files
are unlinked (no commit needed); if that is not enough, new results are stored without snapshots
and each batch deletes as many of the oldest rows as it inserts, so the table stops growing. A
commit that still fails for want of space releases the emergency file (space.py) and is retried
once; only then is the batch dropped, and counted. `degraded` names whatever is wrong, and clears
by itself once batches commit and the reserve is back.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from appliance.store.database import open_database, rollback
from appliance.store.retention import Retention, RetentionPolicy
from appliance.store.rows import INSERT_SQL, Record
from appliance.store.snapshots import SnapshotFiles, Sweep
from appliance.store.space import DiskSpace, disk_full, megabytes

logger = logging.getLogger(__name__)

SUBMIT_WAIT_S = 30.0
TICK_S = 1.0  # an idle writer still watches free space this often
SIZE_RETENTION_EVERY_S = 1.0  # a size-triggered retention run at most this often
ROW_BYTES = 512  # rough bytes a row adds to the database, for the size trigger
DUPLICATE_LOG_EVERY_S = 10.0  # skipped duplicates are logged at most this often (all are counted)
PROBLEMS = ("write", "space", "retention", "snapshot")  # most serious first


@dataclass(frozen=True)
class WriterOptions:
    queue_size: int = 10_000
    batch_size: int = 500
    flush_interval_s: float = 0.2
    snapshot_quality: int = 80
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_interval_s: float = 60.0


class ResultWriter:
    def __init__(self, data_dir: Path, options: WriterOptions) -> None:
        self.options = options
        self.path, self._conn = open_database(data_dir)
        # Kept up to date by this thread: status pages read it instead of a COUNT(*) scan per request.
        self.rows = int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        self.snapshot_dir = data_dir / "snapshots"
        self._files = SnapshotFiles(self.snapshot_dir)
        self._files.prepare()
        self._space = DiskSpace(data_dir, options.retention.min_free_bytes)
        self._queue: queue.Queue[Record | None] = queue.Queue(options.queue_size)
        self._retention = Retention(self._conn, self._files, options.retention)
        self.rows_written = 0
        self.commits = 0
        self.errors = 0  # results not stored (dropped), whatever the reason
        self.duplicates = 0  # results skipped: their seq was already stored
        self._duplicates_logged = float("-inf")
        self.snapshots_dropped = 0
        self.evicted = 0  # oldest rows deleted to keep the free-space reserve
        self.free_bytes: int | None = None
        self.last_error: str | None = None
        self.swept: Sweep | None = None
        self._problems: dict[str, str] = {}
        self._snapshots_left = True
        self._used: int | None = None  # disk bytes at the last retention run
        self._added = 0  # bytes written since
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._flushed = threading.Condition()
        self._submitted = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: Record) -> None:
        """Queue a record for writing; waits while the queue is full (never drops here)."""
        self._queue.put(record, timeout=SUBMIT_WAIT_S)
        self._submitted += 1

    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def degraded(self) -> str | None:
        """None while results are stored as configured; else what is wrong, in words."""
        for key in PROBLEMS:
            problem = self._problems.get(key)
            if problem:
                return problem
        return None

    @property
    def dropped(self) -> int:
        return self.errors

    def status(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "pending": self.pending(),
            "written": self.rows_written,
            "errors": self.errors,
            "dropped": self.errors,
            "duplicates": self.duplicates,
            "snapshots_dropped": self.snapshots_dropped,
            "evicted": self.evicted,
            "free_bytes": self.free_bytes,
            "min_free_bytes": self._space.min_free,
            "degraded": self.degraded,
            "last_error": self.last_error,
            "path": str(self.path),
        }

    def set_retention(self, policy: RetentionPolicy) -> None:
        """A new policy (and free-space reserve), from the next batch on."""
        self._retention.policy = policy
        self._space.set_reserve(policy.min_free_bytes)

    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed (or dropped)."""
        target = self._submitted
        with self._flushed:
            return self._flushed.wait_for(lambda: self._settled() >= target, timeout)

    def _settled(self) -> int:
        """Records submitted and done with: written, dropped or skipped."""
        return self.rows_written + self.errors + self.duplicates

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        self._conn.close()

    def _problem(self, key: str, message: str | None) -> None:
        if message is None:
            if self._problems.pop(key, None) is not None:
                logger.info("store recovered from: %s", key)
        else:
            if key not in self._problems:
                logger.error("store degraded: %s", message)
            self._problems[key] = message

    def _collect(self, first: Record) -> tuple[list[Record], bool]:
        batch = [first]
        deadline = time.monotonic() + self.options.flush_interval_s
        while len(batch) < self.options.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        try:
            self.swept = self._files.sweep(self._conn)
        except (OSError, sqlite3.Error) as err:
            rollback(self._conn)
            logger.error("snapshot sweep failed: %s", err)
        next_retention = time.monotonic() + self.options.retention_interval_s
        last_size_run = 0.0
        stopping = False
        while not stopping:
            timeout = max(0.01, min(TICK_S, next_retention - time.monotonic()))
            batch: list[Record] = []
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                if first is None:
                    break
                batch, stopping = self._collect(first)
            try:
                self._write(batch) if batch else self._check_space()
                now = time.monotonic()
                if now >= next_retention or (
                    now - last_size_run >= SIZE_RETENTION_EVERY_S and self._over_size()
                ):
                    last_size_run = now
                    self.run_retention()
                    next_retention = time.monotonic() + self.options.retention_interval_s
            except Exception as err:  # the writer thread must not die: health watches it
                logger.exception("store writer")
                self._problem("write", f"store writer error: {err}")

    def _over_size(self) -> bool:
        limit = self._retention.policy.max_bytes
        if limit <= 0:
            return False
        if self._used is None:
            self._used = self._retention.disk_bytes()
        return self._used + self._added > limit

    def run_retention(self) -> None:
        before = self._retention.deleted
        try:
            try:
                self._retention.run()
            except (OSError, sqlite3.Error) as err:
                if not (disk_full(err) and self._space.release()):
                    raise
                self._retention.run()  # the emergency file's blocks let the deletes commit
        except Exception as err:  # retention must never stop the writer
            logger.exception("retention failed")
            self.last_error = f"retention: {err}"
            self._problem("retention", f"retention failed: {err}")
        else:
            self._problem("retention", None)
            self._used, self._added = None, 0
        finally:
            self.rows -= self._retention.deleted - before

    def _check_space(self) -> bool:
        """Free space against the reserve, unlinking the oldest snapshots if under it. True: still low."""
        if self._space.min_free <= 0:
            self._problem("space", None)
            return False
        try:
            free = self._space.free()
            if self._space.low(free) and self._snapshots_left:  # once none is left, no scan per batch
                _, self._snapshots_left = self._retention.unlink_oldest(self._space.target() - free)
                free = self._space.free()
        except (OSError, sqlite3.Error) as err:
            logger.error("free-space check failed: %s", err)
            return False
        self.free_bytes = free
        if self._space.low(free):
            going = "snapshots" if self._snapshots_left else "results"
            self._problem(
                "space",
                f"disk low: {megabytes(free)} free, reserve {megabytes(self._space.min_free)}; "
                f"snapshots off, oldest {going} deleted",
            )
            return True
        self._problem("space", None)
        self._snapshots_left = True
        self._space.restore(free)
        return False

    def _encode(self, record: Record) -> bytes | None:
        assert record.image is not None
        ok, data = cv2.imencode(
            ".jpg", record.image, [cv2.IMWRITE_JPEG_QUALITY, self.options.snapshot_quality]
        )
        return data.tobytes() if ok else None

    def _rows(self, batch: list[Record], snapshots: bool) -> tuple[list[tuple[Any, ...]], list[str]]:
        """The batch's rows, writing their snapshots; a failed snapshot write stops them for the batch."""
        rows: list[tuple[Any, ...]] = []
        names: list[str] = []
        for record in batch:
            name, size = None, 0
            if record.image is not None and not snapshots:
                self.snapshots_dropped += 1
            elif record.image is not None and (data := self._encode(record)) is not None:
                try:
                    name, size = self._files.write(record.ts, record.seq, data), len(data)
                except OSError as err:
                    snapshots = False
                    self.snapshots_dropped += 1
                    self._problem("snapshot", f"snapshots not saved: {err}")
                else:
                    names.append(name)
                    self._problem("snapshot", None)
            rows.append((*record.values, name, size))
        return rows, names

    def _commit(self, rows: list[tuple[Any, ...]], evict: int) -> BaseException | int:
        """One transaction: evict the oldest rows (if asked), insert `rows`. Returns the error, or the
        number of rows skipped because their seq is already stored (the UNIQUE index on seq)."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            evicted = self._retention.evict_oldest(evict) if evict else 0
            inserted = self._conn.executemany(INSERT_SQL, rows).rowcount
            cleared = self._retention.clear_unlinked()
            self._conn.execute("COMMIT")
        except (OSError, sqlite3.Error) as err:
            rollback(self._conn)
            return err
        self._retention.cleared(cleared)
        self.evicted += evicted
        self.rows += inserted - evicted
        return len(rows) - inserted

    def _skipped(self, count: int, names: list[str]) -> None:
        """Rows whose seq was already stored: counted, logged, their snapshot files removed."""
        self.duplicates += count
        now = time.monotonic()
        if now - self._duplicates_logged >= DUPLICATE_LOG_EVERY_S:
            self._duplicates_logged = now
            logger.warning(
                "skipped %d results whose seq is already stored (%d so far)", count, self.duplicates
            )
        if names:
            marks = ", ".join("?" * len(names))
            query = f"SELECT snapshot FROM results WHERE snapshot IN ({marks})"
            kept = {r[0] for r in self._conn.execute(query, names)}
            for name in set(names) - kept:
                self._files.unlink(name)

    def _write(self, batch: list[Record]) -> None:
        low = self._check_space()
        rows, names = self._rows(batch, snapshots=not low)
        evict = len(rows) if low and not self._snapshots_left else 0
        err = self._commit(rows, evict)
        if isinstance(err, BaseException) and (disk_full(err) or low):  # a full disk may be "disk I/O error"
            released = self._space.release()
            if self._space.min_free > 0:
                self._retention.unlink_oldest(self._space.target())
            if released or self._space.min_free > 0:
                err = self._commit(rows, evict)
        if not isinstance(err, BaseException):
            if err:
                self._skipped(err, names)
            self.rows_written += len(rows) - err
            self.commits += 1
            self._added += sum(r[-1] for r in rows) + ROW_BYTES * len(rows)
            self._problem("write", None)
        else:
            for name in names:
                self._files.unlink(name)
            self.errors += len(rows)
            self.last_error = str(err)
            self._problem("write", self._failure(err))
            logger.error("could not store %d results: %s", len(rows), err)
        with self._flushed:
            self._flushed.notify_all()

    def _failure(self, err: BaseException) -> str:
        if disk_full(err):
            try:
                free = megabytes(self._space.free())
            except OSError:
                free = "unknown"
            return f"disk full: {free} free, reserve {megabytes(self._space.min_free)}; dropping results"
        return f"cannot write results ({err}); dropping results"
