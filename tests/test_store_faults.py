"""Faults on the store's write paths: ENOSPC and EIO from snapshot writes, commits and retention.

The connection is the real SQLite connection behind a proxy that raises on chosen statements, the
snapshot writes go through the real os.open/os.write with the final write failing: no crash, no
committed row lost, the degradation visible, and recovery once the fault is gone.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.store import snapshots
from appliance.store import writer as writer_module
from appliance.store.retention import RetentionPolicy
from appliance.store.writer import ResultWriter, WriterOptions
from tests.conftest import wait_for
from tests.test_store import record


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    err = sqlite3.OperationalError(message)
    err.sqlite_errorcode = code  # as SQLite sets it: 13 SQLITE_FULL, 10 SQLITE_IOERR
    return err


class FaultyConnection:
    """A real connection; statements starting with a key of `faults` raise its error (`times` times)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.faults: dict[str, tuple[Exception, int]] = {}

    def _check(self, sql: str) -> None:
        for prefix, (err, times) in list(self.faults.items()):
            if sql.lstrip().upper().startswith(prefix) and times:
                self.faults[prefix] = (err, times - 1)
                raise err

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> list[FaultyConnection]:
    made: list[FaultyConnection] = []
    real = writer_module.open_database

    def open_database(data_dir: Path) -> tuple[Path, FaultyConnection]:
        path, conn = real(data_dir)  # migrations on the real connection
        made.append(FaultyConnection(conn))
        return path, made[-1]

    monkeypatch.setattr(writer_module, "open_database", open_database)
    return made


class FailingWrites:
    """Makes the snapshot file writes fail with `err` (after os.open created the file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.err: OSError | None = None
        real = snapshots.write_all

        def write_all(fd: int, data: bytes) -> None:
            real(fd, data[: len(data) // 2])  # half a file is on disk when the fault hits
            if self.err is not None:
                raise self.err
            real(fd, data[len(data) // 2 :])

        monkeypatch.setattr(snapshots, "write_all", write_all)


def seqs(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT seq FROM results ORDER BY seq")]
    finally:
        conn.close()


def consistent(data: Path) -> bool:
    """Every snapshot file has its row and every row's file exists."""
    conn = sqlite3.connect(data / "results.db")
    try:
        named = {r[0] for r in conn.execute("SELECT snapshot FROM results WHERE snapshot IS NOT NULL")}
    finally:
        conn.close()
    files = {str(p.relative_to(data / "snapshots")) for p in (data / "snapshots").rglob("*") if p.is_file()}
    return named == files


IMAGE = np.full((32, 32, 3), 128, np.uint8)
RESERVE = RetentionPolicy(min_free_bytes=1024**2)


def test_faults_on_snapshot_writes_and_commits(
    tmp_path: Path, faulty: list[FaultyConnection], monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = FailingWrites(monkeypatch)
    writer = ResultWriter(tmp_path, WriterOptions(flush_interval_s=0.01, retention=RESERVE))
    writer.start()
    conn = faulty[0]
    seq = 0

    def submit(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            writer.submit(record(seq, image=IMAGE))
        assert writer.flush()

    submit(50)
    assert writer.degraded is None

    for err in (OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EIO, "Input/output error")):
        writes.err = err
        submit(10)  # stored, without their snapshots; no half-written file left behind
        assert writer.degraded == f"snapshots not saved: {err}"
        assert writer.rows_written == seq and writer.errors == 0
        assert consistent(tmp_path)
        writes.err = None
        submit(1)
        assert writer.degraded is None

    committed = seqs(writer.path)
    conn.faults["COMMIT"] = (sqlite_error("disk I/O error", 10), 10**6)
    submit(10)
    assert writer.errors == 10 and writer.alive()
    assert writer.degraded == "cannot write results (disk I/O error); dropping results"
    assert consistent(tmp_path)  # the dropped batch's snapshot files are gone too
    assert writer.status()["dropped"] == 10

    conn.faults["COMMIT"] = (sqlite_error("database or disk is full", 13), 10**6)
    submit(10)
    assert writer.degraded is not None and writer.degraded.startswith("disk full: ")
    assert writer.degraded.endswith("free, reserve 1.0 MB; dropping results")
    assert writer.errors == 20

    conn.faults["COMMIT"] = (sqlite_error("database or disk is full", 13), 1)
    submit(10)  # a single SQLITE_FULL: space is freed and the commit retried, nothing dropped
    assert writer.errors == 20 and writer.degraded is None
    assert seqs(writer.path) == committed + list(range(seq - 9, seq + 1))  # nothing committed was lost
    writer.close()
    assert consistent(tmp_path)


def test_faults_in_retention(tmp_path: Path, faulty: list[FaultyConnection]) -> None:
    options = WriterOptions(flush_interval_s=0.01, retention_interval_s=0.05, retention=RESERVE)
    writer = ResultWriter(tmp_path, options)
    writer.start()
    conn = faulty[0]
    for i in range(1, 101):
        writer.submit(record(i, image=IMAGE))
    assert writer.flush()
    conn.faults["DELETE"] = (sqlite_error("disk I/O error", 10), 10**6)
    writer.set_retention(RetentionPolicy(max_rows=40, min_free_bytes=1024**2))
    wait_for(lambda: writer.degraded == "retention failed: disk I/O error")
    assert seqs(writer.path) == list(range(1, 101))  # the failed delete rolled back: every row is there
    for i in range(101, 111):  # results still flow while retention fails
        writer.submit(record(i))
    assert writer.flush() and writer.errors == 0 and writer.alive()

    conn.faults["DELETE"] = (OSError(errno.EIO, "Input/output error"), 10**6)
    wait_for(lambda: writer.degraded == "retention failed: [Errno 5] Input/output error")
    assert writer.alive()

    conn.faults["COMMIT"] = (sqlite_error("database or disk is full", 13), 1)
    conn.faults.pop("DELETE")
    wait_for(lambda: writer.degraded is None)  # retried after freeing space, then recovered
    assert seqs(writer.path) == list(range(71, 111))
    assert writer.rows == 40
    writer.close()
    assert consistent(tmp_path)
