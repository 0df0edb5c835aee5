"""Read access to results: latest, filtered pages (keyset pagination), export. Read-only connections."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.store.database import connect
from appliance.store.rows import COMPACT, CSV_FIELDS, JSON_COLUMNS, from_row

MAX_PAGE = 1000
EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class Query:
    since: float | None = None
    until: float | None = None
    label: str | None = None
    model: str | None = None
    min_score: float | None = None
    limit: int = 100
    cursor: int | None = None  # id of the last row of the previous page

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("ts", ">=", self.since),
            ("ts", "<", self.until),
            ("label", "=", self.label),
            ("model", "=", self.model),
            ("score", ">=", self.min_score),
            ("id", "<", self.cursor),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class ResultReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path, readonly=True)
        conn.row_factory = sqlite3.Row
        return conn

    def latest(self) -> dict[str, Any] | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT * FROM results ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            conn.close()
        return from_row(dict(row)) if row else None

    def page(self, query: Query) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; returns the rows and the cursor of the next page (None at the end)."""
        limit = max(1, min(query.limit, MAX_PAGE))
        where, params = query.where()
        conn = self._connect()
        try:
            rows = conn.execute(
                f"SELECT * FROM results{where} ORDER BY id DESC LIMIT ?", [*params, limit + 1]
            ).fetchall()
        finally:
            conn.close()
        items = [from_row(dict(r)) for r in rows[:limit]]
        return items, (items[-1]["id"] if len(rows) > limit else None)

    def iter_rows(self, query: Query) -> Iterator[dict[str, Any]]:
        """Every matching row, oldest first, in chunks (for export)."""
        where, params = query.where()
        conn = self._connect()
        try:
            cursor = conn.execute(f"SELECT * FROM results{where} ORDER BY id ASC", params)
            while chunk := cursor.fetchmany(EXPORT_CHUNK):
                for row in chunk:
                    yield from_row(dict(row))
        finally:
            conn.close()


def export_lines(rows: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """CSV (JSON columns as JSON text) or JSONL, line by line."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, separators=COMPACT) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    json_fields = [c.name for c in JSON_COLUMNS if c.name in CSV_FIELDS]
    for row in rows:
        writer.writerow({**row, **{c: json.dumps(row[c], separators=COMPACT) for c in json_fields}})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
