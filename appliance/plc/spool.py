"""A small SQLite file of messages waiting for delivery: the MQTT outbox, kept across restarts.

One file per output under the data directory (`outbox-mqtt.db`), never results.db (which has one
writer). A message is added before it is sent and removed when the receiver acknowledged it, so a
restart (or a broker that is away) loses nothing; a kill -9 between the acknowledgement and the
removal sends that message once more after the restart (receivers deduplicate by `event_id`).
Bounded: when more than `size` messages wait, the oldest are deleted and counted as dropped.
WAL with synchronous=NORMAL: a committed message survives a crash of the process; a power cut can
lose the last few commits. Only the delivering thread uses the connection.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ApplianceError

logger = logging.getLogger(__name__)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, body BLOB NOT NULL, created REAL NOT NULL)"
)


class SpoolError(ApplianceError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True)
class Message:
    id: int
    event_id: str
    body: bytes


class Spool:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.dropped = 0
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as err:  # a corrupt file: keep it aside, start empty, say so
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            logger.error("outbox %s unreadable (%s); moved to %s, starting empty", path, err, aside)
            path.rename(aside)
            self._db = self._open(path)
        self.count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self.last_id = int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])
        self._trim()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(SCHEMA)
        except OSError as err:
            raise SpoolError(f"cannot open the outbox {path}: {err.strerror}") from err
        except sqlite3.OperationalError as err:
            raise SpoolError(f"cannot open the outbox {path}: {err}") from err
        return db

    def add(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Store messages (event id, body) in one transaction; drop the oldest beyond `size`."""
        rows = [(event_id, body, time.time()) for event_id, body in messages]
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO outbox (event_id, body, created) VALUES (?, ?, ?)", rows)
            self.last_id = int(self._db.execute("SELECT MAX(id) FROM outbox").fetchone()[0])
        self.count += len(rows)
        self._trim()

    def _trim(self) -> None:
        excess = self.count - self.size
        if excess <= 0:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (excess,)
            )
        self.count -= excess
        self.dropped += excess
        logger.warning(
            "outbox %s full (%d): dropped the %d oldest message(s)", self.path.name, self.size, excess
        )

    def after(self, last_id: int, limit: int) -> list[Message]:
        """Up to `limit` waiting messages with an id above `last_id`, oldest first."""
        rows = self._db.execute(
            "SELECT id, event_id, body FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        ).fetchall()
        return [Message(int(i), str(e), bytes(b)) for i, e, b in rows]

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._db:
            self._db.execute("BEGIN")
            removed = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids]).rowcount
        self.count = max(0, self.count - max(removed, 0))

    def close(self) -> None:
        self._db.close()
