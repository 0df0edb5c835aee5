"""Result sequence numbers that never go back: across source changes, restarts and kill -9.

The pipeline owns one `Sequence` for the life of the process. At start it continues after the
larger of the highest seq in results.db and the block reserved in DATA/seq.json by the previous run;
numbers are reserved in blocks of BLOCK (one small atomic write per block), so results that were
published but never stored (store = false, or in flight at a crash) are never numbered again.
After a restart the numbers jump by less than BLOCK, which is below 65,536: a PLC watching the
16-bit register of seq always sees it change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from pathlib import Path

from appliance import atomic

logger = logging.getLogger(__name__)

BLOCK = 10_000
FILE = "seq.json"


MAX_SEQ = "SELECT MAX(seq) FROM results"  # a full scan: only when there is no seq.json yet
LAST_SEQ = "SELECT seq FROM results ORDER BY id DESC LIMIT 1"  # seq grows with id once seq.json exists


def stored_max_seq(db: Path, query: str = MAX_SEQ) -> int:
    """The highest seq in results.db (0 if there is no database or no row)."""
    if not db.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute(query).fetchone()
    except sqlite3.Error as err:
        logger.error("cannot read the highest seq from %s: %s", db, err)
        return 0
    return int(row[0] or 0) if row else 0


def _read_reserved(path: Path) -> int:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("reserved", 0)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, AttributeError) as err:
        logger.error("%s is damaged (%s): continuing from the store", path, err)
        return 0
    return value if isinstance(value, int) and value >= 0 else 0


def _write(path: Path, reserved: int) -> None:
    atomic.write_bytes(path, json.dumps({"reserved": reserved}).encode("utf-8"))


class Sequence:
    """Hands out 1, 2, 3, ... (or continues a previous run); thread-safe."""

    def __init__(self, path: Path | None = None, floor: int = 0) -> None:
        self.path = path
        start = max(floor, _read_reserved(path) if path is not None else 0)
        self.first = start + 1
        self._next = self.first
        self._reserved = start
        self._lock = threading.Lock()

    @classmethod
    def for_data_dir(cls, data_dir: Path, db: Path) -> Sequence:
        """Continue after the store and the reserved block. With seq.json present every stored seq
        was numbered by this class, so the newest row holds the highest (a primary-key lookup);
        without it (first start, or a database from a build whose seq restarted) the table is scanned."""
        path = data_dir / FILE
        query = LAST_SEQ if _read_reserved(path) > 0 else MAX_SEQ
        return cls(path, stored_max_seq(db, query))

    def peek(self) -> int:
        """The number the next result will get."""
        with self._lock:
            return self._next

    def next(self) -> int:
        with self._lock:
            if self._next > self._reserved:
                self._reserve(self._next + BLOCK - 1)
            value = self._next
            self._next += 1
            return value

    def _reserve(self, upto: int) -> None:
        self._reserved = upto  # numbers keep coming even when the file cannot be written
        if self.path is None:
            return
        try:
            _write(self.path, upto)
        except OSError as err:
            logger.error("cannot reserve seq numbers in %s: %s (may repeat after a restart)", self.path, err)
