"""The results database: schema, migrations, connection settings. Knows nothing of the pipeline."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

DB_NAME = "results.db"
BUSY_TIMEOUT_MS = 5000
FILE_MODE = 0o640  # results.db; SQLite gives -wal and -shm the mode of the database file
DIR_MODE = 0o750


def _v1(db: sqlite_utils.Database) -> None:
    db.table("results").create(
        {
            "id": int,
            "ts": float,
            "seq": int,
            "frame_id": int,
            "source": str,
            "model": str,
            "model_version": int,
            "task": str,
            "backend": str,
            "label": str,
            "label_id": int,
            "score": float,
            "count": int,
            "detections": str,
            "extra": str,
            "pre_ms": float,
            "infer_ms": float,
            "post_ms": float,
            "total_ms": float,
            "snapshot": str,
            "snapshot_bytes": int,
        },
        pk="id",
        not_null={"ts", "snapshot_bytes"},
        defaults={"snapshot_bytes": 0},
    )
    db.table("results").create_index(["ts"], index_name="results_ts")
    db.table("results").create_index(["label", "ts"], index_name="results_label_ts")


def _v2(db: sqlite_utils.Database) -> None:
    """The inspection job's verdict of a result (JSON, NULL when no job judged it)."""
    db.table("results").add_column("verdict", str)


# Append-only: migration N brings the schema from version N-1 to N.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v1, _v2)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the appliance's settings. Only the writer thread opens a writable one."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        _own(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # commits are batched, so an fsync each is cheap
        conn.execute("PRAGMA temp_store = MEMORY")  # no temp files on a data disk that may be full
        for suffix in ("-wal", "-shm"):  # from an older install that created them world-readable
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.chmod(f"{path}{suffix}", FILE_MODE)
    return conn


def _own(path: Path) -> None:
    """Create the database file 0640 (or bring an existing one to 0640) before SQLite opens it."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    with contextlib.suppress(PermissionError):  # not ours to change (the process does not own it)
        os.chmod(path, FILE_MODE)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failed rollback (SQLite may have done it) is not news."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def schema_version(db: sqlite_utils.Database) -> int:
    if "schema_version" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION, one migration per transaction. Returns the version."""
    if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # must precede the first table
        conn.execute("VACUUM")
    db = sqlite_utils.Database(conn)
    if "schema_version" not in db.table_names():
        db.table("schema_version").create({"version": int, "applied": str}, pk="version")
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {current} is newer than this appliance ({SCHEMA_VERSION})")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version - 1](db)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?)",
                (version, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def open_database(data_dir: Path) -> tuple[Path, sqlite3.Connection]:
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path = data_dir / DB_NAME
    conn = connect(path)
    migrate(conn)
    return path, conn
