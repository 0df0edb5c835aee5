"""The one writer of results.db: a thread that drains a bounded queue in batched transactions.

Nobody else holds a write connection. A full queue makes `submit` wait (backpressure reaches the
pipeline, whose live sources then drop frames and count them): results are never thrown away here.
Snapshots are encoded and written by this thread too, off the inference path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from appliance.store.database import open_database
from appliance.store.retention import Retention, RetentionPolicy
from appliance.store.rows import INSERT_SQL, Record

logger = logging.getLogger(__name__)

SUBMIT_WAIT_S = 30.0


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
        self._queue: queue.Queue[Record | None] = queue.Queue(options.queue_size)
        self._retention = Retention(self._conn, self.snapshot_dir, options.retention)
        self.rows_written = 0
        self.commits = 0
        self.errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._flushed = threading.Condition()
        self._submitted = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, record: Record) -> None:
        """Queue a record for writing; waits while the queue is full (never drops)."""
        self._queue.put(record, timeout=SUBMIT_WAIT_S)
        self._submitted += 1

    def alive(self) -> bool:
        return self._thread.is_alive()

    def set_retention(self, policy: RetentionPolicy) -> None:
        self._retention.policy = policy

    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed."""
        target = self._submitted
        with self._flushed:
            return self._flushed.wait_for(lambda: self.rows_written + self.errors >= target, timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        self._conn.close()

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
        next_retention = time.monotonic() + self.options.retention_interval_s
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.options.retention_interval_s)
            except queue.Empty:
                first = None
                batch: list[Record] = []
            else:
                if first is None:
                    break
                batch, stopping = self._collect(first)
            if batch:
                self._write(batch)
            if time.monotonic() >= next_retention:
                self.run_retention()
                next_retention = time.monotonic() + self.options.retention_interval_s

    def run_retention(self) -> None:
        try:
            self.rows -= self._retention.run()
        except Exception as err:  # retention must never stop the writer
            logger.exception("retention failed")
            self.last_error = f"retention: {err}"

    def _snapshot(self, record: Record) -> tuple[str | None, int]:
        if record.image is None:
            return None, 0
        ts, seq = record.values[0], record.values[1]
        day = time.strftime("%Y%m%d", time.gmtime(ts))
        folder = self.snapshot_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(
            ".jpg", record.image, [cv2.IMWRITE_JPEG_QUALITY, self.options.snapshot_quality]
        )
        if not ok:
            return None, 0
        name = f"{day}/{int(ts * 1000)}-{seq}.jpg"
        (self.snapshot_dir / name).write_bytes(data.tobytes())
        return name, int(data.size)

    def _write(self, batch: list[Record]) -> None:
        rows = []
        for record in batch:
            try:
                rows.append((*record.values, *self._snapshot(record)))
            except OSError as err:
                logger.error("snapshot not saved: %s", err)
                rows.append((*record.values, None, 0))
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(INSERT_SQL, rows)
            self._conn.execute("COMMIT")
        except Exception as err:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self.errors += len(rows)
            self.last_error = str(err)
            logger.error("could not store %d results: %s", len(rows), err)
        else:
            self.rows_written += len(rows)
            self.rows += len(rows)
            self.commits += 1
        with self._flushed:
            self._flushed.notify_all()

    @property
    def degraded(self) -> str | None:
        """Why the store cannot keep up (None while it can); the store helper's version wins."""
        return None
