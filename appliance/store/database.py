"""The results database: schema (from the column table, store/rows.py), migrations, connection settings.

Knows nothing of the pipeline. See `COMPAT` and `FEATURES` for how a file stays usable by the previous
build after an additive migration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from appliance.store import rows

logger = logging.getLogger(__name__)

DB_NAME = "results.db"
BUSY_TIMEOUT_MS = 5000
FILE_MODE = 0o640  # results.db; SQLite gives -wal and -shm the mode of the database file
DIR_MODE = 0o750


def _v1(db: sqlite_utils.Database) -> None:
    """The results table as the column table declares it (store/rows.py), and its read indexes."""
    table = db.table("results")
    table.create(rows.schema(), pk=rows.PRIMARY_KEY, not_null=_not_null(), defaults=_defaults())
    table.create_index(["ts"], index_name="results_ts")
    table.create_index(["label", "ts"], index_name="results_label_ts")


def _not_null() -> set[str]:
    return {c.name for c in rows.TABLE if c.not_null}


def _defaults() -> dict[str, object]:
    return {c.name: c.default for c in rows.TABLE if c.default is not None}


def add_columns(db: sqlite_utils.Database) -> list[str]:
    """Add the columns the column table declares and the file lacks (nullable: additive, compatible)."""
    have = set(db.table("results").columns_dict)
    added = [c for c in rows.TABLE if c.name not in have]
    for column in added:
        db.table("results").add_column(column.name, column.kind)
    return [c.name for c in added]


def _seq_unique(db: sqlite_utils.Database) -> None:
    """A UNIQUE index on seq. Rows from builds whose seq restarted may repeat a seq: then the index
    covers the rows from here on (new seqs continue after the stored maximum, so they cannot collide)."""
    repeated = db.execute("SELECT 1 FROM results GROUP BY seq HAVING COUNT(*) > 1 LIMIT 1").fetchone()
    where = ""
    if repeated is not None:
        last = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM results").fetchone()[0])
        where = f" WHERE id > {last}"
        logger.warning(
            "results.db holds repeated seqs from an older build: seq is unique from row %d on", last
        )
    db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS results_seq ON results (seq){where}")


Migration = Callable[[sqlite_utils.Database], object]

# Two kinds of migration, both append-only.
# COMPAT: incompatible changes (a column renamed or dropped, a type changed: sqlite-utils' transform()).
#   Migration N brings the compatibility level, recorded in `schema_version` as it always was, from
#   N-1 to N; a build whose level is lower refuses the file ("database schema N is newer").
# FEATURES: additive changes an older build of the same level can read and write around (an index,
#   a nullable column). Recorded by name in `schema_features`; they never raise the level, so a
#   previous build keeps working on the file. Features a newer build recorded are simply kept.
COMPAT: tuple[Migration, ...] = (_v1,)
FEATURES: tuple[tuple[str, Migration], ...] = (("results_seq_unique", _seq_unique),)
SCHEMA_VERSION = len(COMPAT)


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
    """The compatibility level of the file (0: new)."""
    if "schema_version" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def schema_features(db: sqlite_utils.Database) -> set[str]:
    if "schema_features" not in db.table_names():
        return set()
    return {str(r[0]) for r in db.execute("SELECT name FROM schema_features")}


def _step(conn: sqlite3.Connection, migration: Migration, record: tuple[str, tuple[object, ...]]) -> None:
    """One migration and its record in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        migration(sqlite_utils.Database(conn))
        conn.execute(*record)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION and every feature, one migration per transaction, then
    add the columns the column table declares and the file lacks. Returns the compatibility level."""
    if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # must precede the first table
        conn.execute("VACUUM")
    db = sqlite_utils.Database(conn)
    if "schema_version" not in db.table_names():
        db.table("schema_version").create({"version": int, "applied": str}, pk="version")
    if "schema_features" not in db.table_names():
        db.table("schema_features").create({"name": str, "applied": str}, pk="name")
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {current} is newer than this appliance ({SCHEMA_VERSION})")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        _step(conn, COMPAT[version - 1], ("INSERT INTO schema_version VALUES (?, ?)", (version, _now())))
    done = schema_features(db)
    for name, migration in FEATURES:
        if name not in done:
            _step(conn, migration, ("INSERT INTO schema_features VALUES (?, ?)", (name, _now())))
    added = add_columns(db)
    if added:
        logger.info("results: added columns %s", ", ".join(added))
    return SCHEMA_VERSION


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_database(data_dir: Path) -> tuple[Path, sqlite3.Connection]:
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path = data_dir / DB_NAME
    conn = connect(path)
    migrate(conn)
    return path, conn
