"""The results schema on real SQLite files: one column table, compatible migrations, a unique seq."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from appliance.models.manifest import Manifest
from appliance.pipeline.results import Origin, Result, Timings
from appliance.processing.inference import Detection, Inference
from appliance.sources.base import Frame
from appliance.store import rows
from appliance.store.database import SCHEMA_VERSION, migrate, schema_features
from appliance.store.reader import ResultReader, export_lines
from appliance.store.writer import ResultWriter, WriterOptions

# What the previous release (compatibility level 1, no schema_features) did when it opened results.db:
# appliance/store/database.py migrate() and rows.INSERT_SQL as released, reduced to what touches the file.
PREVIOUS_LEVEL = 1
PREVIOUS_COLUMNS = (
    "ts, seq, frame_id, source, model, model_version, task, backend, label, label_id, score, count, "
    "detections, extra, pre_ms, infer_ms, post_ms, total_ms, snapshot, snapshot_bytes"
)


def previous_release_opens(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    if "schema_version" not in db.table_names():
        db.table("schema_version").create({"version": int, "applied": str}, pk="version")
    current = int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
    if current > PREVIOUS_LEVEL:
        raise RuntimeError(f"database schema {current} is newer than this appliance ({PREVIOUS_LEVEL})")


def previous_release_inserts(conn: sqlite3.Connection, seq: int) -> None:
    values = (time.time(), seq, seq, "old", "m", 1, "detect", "litert", "face", 0, 0.9, 1, "[]", None)
    marks = ", ".join("?" * 20)
    conn.execute(f"INSERT INTO results ({PREVIOUS_COLUMNS}) VALUES ({marks})", (*values, 1, 1, 1, 3, None, 0))


def result(seq: int) -> Result:
    frame = Frame(seq, 1_700_000_000.25 + seq, "line1")
    detections = (Detection("face", 0, 0.875, (1.0, 2.0, 30.5, 40.0), ((3.0, 4.0),)),)
    inference = Inference("face", 0, 0.875, 1, detections, {"mask": [1, 2]})
    model = Manifest("face", 3, "detect", "model.tflite", "0" * 64, 1, "now", labels=("face",))
    return Result.from_inference(Origin(seq, frame), model, "litert", inference, Timings(1.0, 2.0, 0.5, 3.5))


def writer_for(data: Path) -> ResultWriter:
    writer = ResultWriter(data, WriterOptions(flush_interval_s=0.01, retention_interval_s=3600))
    writer.start()
    return writer


def test_a_result_goes_to_a_row_and_back_unchanged(tmp_path: Path) -> None:
    writer = writer_for(tmp_path)
    writer.submit(result(7).record(with_image=False))
    assert writer.flush()
    writer.close()
    row = ResultReader(writer.path).latest()
    assert row is not None
    conn = sqlite3.connect(writer.path)
    conn.row_factory = sqlite3.Row
    stored = dict(conn.execute("SELECT * FROM results").fetchone())
    assert Result.from_row(stored) == dataclasses.replace(result(7), store=False)
    assert row["detections"][0]["keypoints"] == [[3.0, 4.0]] and row["extra"] == {"mask": [1, 2]}
    header, line = csv.reader(io.StringIO("".join(export_lines(iter([row]), "csv"))))
    assert tuple(header) == rows.CSV_FIELDS
    assert json.loads(line[header.index("detections")]) == row["detections"]
    assert set(rows.CSV_FIELDS) - {"time"} <= {c.name for c in rows.TABLE}


def test_a_column_the_table_declares_is_added_to_an_existing_file(tmp_path: Path) -> None:
    writer_for(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    conn.execute("ALTER TABLE results DROP COLUMN extra")  # a file from before `extra` was declared
    assert migrate(conn) == SCHEMA_VERSION
    assert "extra" in {r[1] for r in conn.execute("PRAGMA table_info(results)")}
    previous_release_opens(conn)


def test_the_previous_release_opens_and_writes_an_upgraded_file(tmp_path: Path) -> None:
    writer = writer_for(tmp_path)
    for seq in (1, 2):
        writer.submit(result(seq).record(False))
    assert writer.flush()
    writer.close()
    conn = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    assert "results_seq_unique" in schema_features(sqlite_utils.Database(conn))
    previous_release_opens(conn)  # the unique index is a feature: the level stays 1
    previous_release_inserts(conn, 3)
    with pytest.raises(sqlite3.IntegrityError):  # the old writer would drop (and count) such a batch
        previous_release_inserts(conn, 2)
    conn.close()
    reader = ResultReader(tmp_path / "results.db")
    assert reader.latest() is not None and reader.latest()["seq"] == 3  # type: ignore[index]
    assert writer_for(tmp_path).rows == 3  # and this build opens it again


def test_an_incompatible_level_is_refused_by_both_releases(tmp_path: Path) -> None:
    writer_for(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    conn.execute("INSERT INTO schema_version VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match=f"database schema {SCHEMA_VERSION + 1} is newer"):
        migrate(conn)
    with pytest.raises(RuntimeError, match="is newer than this appliance"):
        previous_release_opens(conn)


def test_a_repeated_seq_is_skipped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(tmp_path)
    with caplog.at_level(logging.WARNING, "appliance.store.writer"):
        for seq in (1, 2, 2, 3, 1):
            writer.submit(result(seq).record(False))
        assert writer.flush()
    assert writer.alive()
    writer.close()
    assert (writer.rows_written, writer.duplicates, writer.errors, writer.rows) == (3, 2, 0, 3)
    assert "already stored" in caplog.text
    conn = sqlite3.connect(tmp_path / "results.db")
    assert [r[0] for r in conn.execute("SELECT seq FROM results ORDER BY id")] == [1, 2, 3]


def test_a_file_with_repeated_seqs_from_an_old_build_gets_a_unique_seq_from_then_on(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "results.db", isolation_level=None)
    conn.execute("BEGIN")
    sqlite_utils.Database(conn).table("results").create(
        rows.schema(), pk="id", not_null={"ts", "snapshot_bytes"}, defaults={"snapshot_bytes": 0}
    )
    sqlite_utils.Database(conn).table("schema_version").create({"version": int, "applied": str}, pk="version")
    conn.execute("INSERT INTO schema_version VALUES (1, 'then')")
    conn.execute("COMMIT")
    for seq in (1, 2, 1, 2):  # seq restarted with the source, as builds before seq.json did
        previous_release_inserts(conn, seq)
    migrate(conn)
    previous_release_inserts(conn, 3)
    with pytest.raises(sqlite3.IntegrityError):
        previous_release_inserts(conn, 3)
    assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 5


def test_the_snapshot_of_a_skipped_duplicate_is_not_left_behind(tmp_path: Path) -> None:
    writer = writer_for(tmp_path)
    image = np.full((32, 32, 3), 128, np.uint8)
    values = result(5).record(False).values
    later = tuple(v + 60.0 if i == rows.TS else v for i, v in enumerate(values))  # another snapshot name
    for row in (values, later):
        writer.submit(rows.Record(row, image))
    assert writer.flush()
    writer.close()
    files = [p for p in (tmp_path / "snapshots").rglob("*") if p.is_file()]
    conn = sqlite3.connect(tmp_path / "results.db")
    named = [r[0] for r in conn.execute("SELECT snapshot FROM results")]
    assert writer.duplicates == 1 and len(named) == 1 and named[0] is not None
    assert [str(p.relative_to(tmp_path / "snapshots")) for p in files] == named
