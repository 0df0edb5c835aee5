"""The result store on a real SQLite file: batching, retention, migrations, export."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from appliance.cli import main
from appliance.pipeline.results import Result, Timings
from appliance.store.database import SCHEMA_VERSION, migrate, schema_version
from appliance.store.reader import Query, ResultReader
from appliance.store.retention import RetentionPolicy
from appliance.store.rows import COLUMNS, Record
from appliance.store.writer import ResultWriter, WriterOptions
from tests.conftest import wait_for


def record(seq: int, ts: float | None = None, label: str = "face", image: np.ndarray | None = None) -> Record:
    values = {
        "ts": ts or time.time(),
        "seq": seq,
        "frame_id": seq,
        "source": "test",
        "model": "m",
        "model_version": 1,
        "task": "detect",
        "backend": "litert",
        "label": label,
        "label_id": 0,
        "score": 0.9,
        "count": 1,
        "detections": json.dumps([{"box": [1, 2, 3, 4]}]),
        "extra": None,
        "pre_ms": 1.0,
        "infer_ms": 2.0,
        "post_ms": 0.5,
        "total_ms": 3.5,
        "verdict": None,
    }
    return Record(tuple(values[c] for c in COLUMNS), image)


def writer_for(path: Path, **options: object) -> ResultWriter:
    writer = ResultWriter(path, WriterOptions(flush_interval_s=0.01, retention_interval_s=3600, **options))  # type: ignore[arg-type]
    writer.start()
    return writer


def test_rows_are_written_in_batches(tmp_path: Path) -> None:
    writer = writer_for(tmp_path, batch_size=100)
    for i in range(1, 1001):
        writer.submit(record(i))
    assert writer.flush()
    writer.close()
    assert writer.rows_written == 1000
    assert 10 <= writer.commits < 1000  # batched, not one transaction per row
    conn = sqlite3.connect(tmp_path / "results.db")
    assert conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM results").fetchone() == (1000, 1, 1000)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_version_and_rerun_migrations(tmp_path: Path) -> None:
    writer_for(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    assert schema_version(sqlite_utils.Database(conn)) == SCHEMA_VERSION
    assert migrate(conn) == SCHEMA_VERSION  # idempotent
    conn.execute("INSERT INTO schema_version VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer than this appliance"):
        migrate(conn)


def test_retention_by_rows_and_age(tmp_path: Path) -> None:
    writer = writer_for(tmp_path, retention=RetentionPolicy(max_age_days=1, max_rows=50))
    old = time.time() - 3 * 86400
    for i in range(1, 21):
        writer.submit(record(i, ts=old))
    for i in range(21, 121):
        writer.submit(record(i))
    assert writer.flush()
    writer.run_retention()
    writer.close()
    conn = sqlite3.connect(tmp_path / "results.db")
    assert conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM results").fetchone() == (50, 71, 120)
    assert writer.rows == 50  # the count the status pages show, kept without a COUNT(*) per request


def test_retention_keeps_rows_and_snapshots_under_max_bytes(tmp_path: Path) -> None:
    limit = 600_000
    writer = writer_for(tmp_path, retention=RetentionPolicy(max_bytes=limit), batch_size=50)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)  # noise compresses badly: big JPEGs
    for i in range(1, 201):
        writer.submit(record(i, image=noise))
    assert writer.flush()
    snapshots = tmp_path / "snapshots"
    before = sum(f.stat().st_size for f in snapshots.rglob("*.jpg"))
    assert before > limit  # the test must actually exceed the limit
    writer.run_retention()
    conn = sqlite3.connect(tmp_path / "results.db")
    rows, stored = conn.execute("SELECT COUNT(*), SUM(snapshot_bytes) FROM results").fetchone()
    files = sorted(snapshots.rglob("*.jpg"))
    on_disk = sum(f.stat().st_size for f in files)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    used_pages = (
        conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    )
    writer.close()
    assert 0 < rows < 200
    assert len(files) == rows and on_disk == stored  # snapshots of deleted rows are gone too
    assert on_disk + used_pages * page <= limit
    newest = conn.execute("SELECT MAX(seq) FROM results").fetchone()[0]
    assert newest == 200  # the oldest go first


def test_reader_filters_and_pages(tmp_path: Path) -> None:
    writer = writer_for(tmp_path)
    base = 1_700_000_000.0
    for i in range(1, 31):
        writer.submit(record(i, ts=base + i, label="face" if i % 2 else "none"))
    assert writer.flush()
    writer.close()
    reader = ResultReader(tmp_path / "results.db")
    page, cursor = reader.page(Query(label="face", limit=10))
    assert [r["seq"] for r in page] == list(range(29, 10, -2))
    page2, cursor2 = reader.page(Query(label="face", limit=10, cursor=cursor))
    assert [r["seq"] for r in page2] == [9, 7, 5, 3, 1] and cursor2 is None
    window, _ = reader.page(Query(since=base + 5, until=base + 8))
    assert [r["seq"] for r in window] == [7, 6, 5]
    assert page[0]["detections"] == [{"box": [1, 2, 3, 4]}]


def test_export_cli_csv_and_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    writer = writer_for(tmp_path)
    for i in range(1, 6):
        writer.submit(record(i, ts=1_700_000_000.0 + i))
    assert writer.flush()
    writer.close()
    assert (
        main(["db", "export", "--format", "jsonl", "--data-dir", str(tmp_path), "--since", "1700000003"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [3, 4, 5]
    out = tmp_path / "all.csv"
    assert (
        main(["db", "export", "--data-dir", str(tmp_path), "-o", str(out), "--since", "2023-11-14T22:13:22Z"])
        == 0
    )
    text = out.read_text().splitlines()
    assert text[0].startswith("id,time,ts,seq")
    assert len(text) == 1 + 4
    assert main(["db", "export", "--data-dir", str(tmp_path), "--since", "yesterday"]) == 1
    assert "since" in capsys.readouterr().err


def test_retention_deletes_in_chunks_and_only_what_it_must(tmp_path: Path) -> None:
    writer = writer_for(tmp_path, batch_size=1000)
    for i in range(1, 3001):
        writer.submit(record(i))
    assert writer.flush()
    writer.set_retention(RetentionPolicy(max_rows=1700))  # 1300 to delete: three chunks of at most 500
    writer.run_retention()
    assert writer.rows == 1700
    limit = 200_000  # the 1700 rows take ~300 KB: a third of them have to go, more than one chunk
    writer.set_retention(RetentionPolicy(max_bytes=limit))
    writer.run_retention()
    writer.close()
    conn = sqlite3.connect(tmp_path / "results.db")
    rows, oldest, newest = conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM results").fetchone()
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    used = pages - conn.execute("PRAGMA freelist_count").fetchone()[0]
    assert limit // 2 < used * page <= limit  # trimmed to the cap, no further
    assert newest == 3000 and oldest == 3001 - rows
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # freed pages went back to the disk


def test_retention_runs_as_soon_as_max_bytes_is_exceeded(tmp_path: Path) -> None:
    limit = 400_000
    writer = writer_for(tmp_path, retention=RetentionPolicy(max_bytes=limit), batch_size=20)  # interval: 1 h
    noise = np.random.default_rng(1).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    for i in range(1, 201):
        writer.submit(record(i, image=noise))
    assert writer.flush()

    def on_disk() -> int:
        total = 0
        for f in (tmp_path / "snapshots").rglob("*.jpg"):
            with contextlib.suppress(FileNotFoundError):  # the writer's retention is at work meanwhile
                total += f.stat().st_size
        return total

    wait_for(lambda: 0 < on_disk() <= limit)  # nobody called run_retention: the size trigger did
    writer.close()
    assert writer.rows < 200 and writer.rows_written == 200


def test_a_verdict_is_stored_and_read_back(tmp_path: Path) -> None:
    """Migration 2 adds the optional `verdict` column; a result's job verdict round-trips as JSON."""
    verdict = {"job": 7, "ok": False, "pass_bits": 1, "reason_code": 1, "regions": []}
    result = Result(
        1,
        1,
        time.time(),
        "s",
        "face",
        1,
        "detect",
        "litert",
        None,
        None,
        None,
        0,
        (),
        Timings(1, 1, 1, 3),
        verdict=verdict,
    )
    writer = ResultWriter(tmp_path, WriterOptions(flush_interval_s=0.01))
    writer.start()
    writer.submit(result.record(False))
    writer.submit(dataclasses.replace(result, seq=2, verdict=None).record(False))
    assert writer.flush()
    writer.close()
    rows, _ = ResultReader(tmp_path / "results.db").page(Query(limit=10))
    assert {r["seq"]: r["verdict"] for r in rows} == {1: verdict, 2: None}
