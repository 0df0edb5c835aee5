"""Result sequence numbers that never go back: across source changes, restarts and kill -9.

The pipeline owns one `Sequence` for the life of the process. At start it continues after the
larger of the highest seq in results.db and the block reserved in DATA/seq.json by the previous run;
numbers are reserved in blocks of BLOCK (one small atomic write per block), so results that were
published but never stored (store = false, or in flight at a crash) are never numbered again.
After a restart the numbers jump by less than BLOCK, which is below 65,536: a PLC watching the
16-bit register of seq always sees it change.

`Intake` is the pipeline's entry queue, which hands the numbers out as frames enter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from appliance import atomic
from appliance.errors import Busy

logger = logging.getLogger(__name__)

BLOCK = 10_000
FILE = "seq.json"
WAKE_S = 0.05  # a waiting put looks at its stop event this often
T = TypeVar("T")


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


class Intake(Generic[T]):
    """The pipeline's entry queue. A frame gets its seq as it enters, under the queue's lock: a number
    is never taken by a frame that did not get in, and numbers enter in order. Bounded; thread-safe."""

    def __init__(self, sequence: Sequence, size: int) -> None:
        self.sequence = sequence
        self._size = max(size, 1)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def qsize(self) -> int:
        return len(self._items)

    def _enter(self, make: Callable[[int], T]) -> T:
        item = make(self.sequence.next())
        self._items.append(item)
        self._cond.notify_all()
        return item

    def put_nowait(self, make: Callable[[int], T]) -> T:
        """Number and queue `make(seq)` at once, or raise Busy (nothing numbered) when full or closed."""
        with self._cond:
            if self._closed or len(self._items) >= self._size:
                raise Busy("pipeline is busy: try again")
            return self._enter(make)

    def put(self, make: Callable[[int], T], timeout: float, stop: threading.Event | None = None) -> T | None:
        """Wait up to `timeout` (or until `stop` is set) for room; None if none came (nothing numbered)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed and len(self._items) >= self._size:
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return None
                self._cond.wait(min(left, WAKE_S))
            return None if self._closed else self._enter(make)

    def get(self) -> T | None:
        """The oldest item; waits for one. None once closed and drained (to every caller)."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more entries; what is queued is still handed out."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
