"""Snapshot files under DATA/snapshots/YYYYMMDD/: written, removed and swept by the writer thread.

A file is written before its row commits, so a kill in between leaves a file no row names (an
orphan), and a free-space cleanup unlinks files before their rows are updated (a row naming a
missing file). `sweep` settles both at start-up. Files are not fsynced (see docs/config.md,
"Power loss").
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.store.database import DIR_MODE, FILE_MODE

logger = logging.getLogger(__name__)

DAY_S = 86_400
DAY_DIR = re.compile(r"^\d{8}$")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a short write is not an error)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True)
class Sweep:
    orphans: int  # files no row names, removed
    missing: int  # rows naming a file that is gone, cleared


class SnapshotFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._days: set[str] = set()

    def prepare(self) -> None:
        self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # not ours to change
            os.chmod(self.root, DIR_MODE)

    def write(self, ts: float, seq: int, data: bytes) -> str:
        """Write one JPEG; returns its name relative to the root. A failed write leaves no file."""
        day = time.strftime("%Y%m%d", time.gmtime(ts))
        if day not in self._days:
            (self.root / day).mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            self._days.add(day)
        name = f"{day}/{int(ts * 1000)}-{seq}.jpg"
        path = self.root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            write_all(fd, data)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        try:
            os.close(fd)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        return name

    def unlink(self, name: str) -> int:
        """Remove one snapshot; returns the bytes it held on disk (0 if it was already gone)."""
        path = self.root / name
        try:
            blocks = path.stat().st_blocks * 512
            path.unlink()
        except FileNotFoundError:
            return 0
        return int(blocks)

    def sweep(self, conn: sqlite3.Connection) -> Sweep:
        """Remove files no row names; clear rows whose file is gone. Run before the first write."""
        self._days.clear()
        on_disk = {e.name for e in os.scandir(self.root) if e.is_dir() and DAY_DIR.match(e.name)}
        days = "SELECT DISTINCT substr(snapshot, 1, 8) FROM results WHERE snapshot IS NOT NULL"
        in_db = {r[0] for r in conn.execute(days)}
        orphans = missing = 0
        for day in sorted(on_disk | in_db):
            o, m = self._sweep_day(conn, day)
            orphans, missing = orphans + o, missing + m
        if orphans or missing:
            logger.warning("snapshot sweep: removed %d orphan files, cleared %d missing", orphans, missing)
        return Sweep(orphans, missing)

    def _sweep_day(self, conn: sqlite3.Connection, day: str) -> tuple[int, int]:
        folder = self.root / day
        files = {f"{day}/{e.name}" for e in os.scandir(folder) if e.is_file()} if folder.is_dir() else set()
        try:
            start = calendar.timegm(time.strptime(day, "%Y%m%d"))
        except ValueError:
            start = None
        if start is None:
            rows = conn.execute(
                "SELECT id, snapshot FROM results WHERE substr(snapshot, 1, 9) = ?", (f"{day}/",)
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT id, snapshot FROM results WHERE ts >= ? AND ts < ? AND snapshot IS NOT NULL",
                (start - 1, start + DAY_S + 1),
            ).fetchall()
        named = {name: row_id for row_id, name in rows if name.startswith(f"{day}/")}
        orphans = files - named.keys()
        for name in orphans:
            self.unlink(name)
        gone = [(named[name],) for name in named.keys() - files]
        if gone:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("UPDATE results SET snapshot = NULL, snapshot_bytes = 0 WHERE id = ?", gone)
            conn.execute("COMMIT")
        if folder.is_dir() and not (files - orphans):
            with contextlib.suppress(OSError):
                folder.rmdir()
        elif folder.is_dir():
            with contextlib.suppress(PermissionError):
                os.chmod(folder, DIR_MODE)
        return len(orphans), len(gone)
