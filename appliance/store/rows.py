"""The results table, written once: every column with its type and how it is stored, exported, shown.

`TABLE` is the one place a result column is declared. The DDL (database.py), the migration that adds
columns a newer build declares, the INSERT, the CSV export fields, the decoding of a stored row for the
API and the Result -> row mapping (pipeline/results.py) are all derived from it. Adding a nullable
column is one line here (and, if results carry it, the field of that name on Result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

COMPACT = (",", ":")


@dataclass(frozen=True)
class Column:
    """One column of `results`.

    `kind`: the Python type SQLite stores (int, float, str). `path`: where a Result holds the value
    (dotted; the column name when empty). `json`: stored as compact JSON text (an empty value as NULL),
    decoded on read; `empty` is the JSON a NULL is shown as. `record`: filled from a Result (False:
    the id, and the snapshot columns the writer fills). `csv`: a field of the CSV export.
    """

    name: str
    kind: type
    path: str = ""
    json: bool = False
    empty: str = "null"
    record: bool = True
    csv: bool = True
    not_null: bool = False
    default: Any = None


TABLE: tuple[Column, ...] = (
    Column("id", int, record=False),
    Column("ts", float, not_null=True),
    Column("seq", int),
    Column("frame_id", int),
    Column("source", str),
    Column("model", str),
    Column("model_version", int),
    Column("task", str),
    Column("backend", str),
    Column("label", str),
    Column("label_id", int),
    Column("score", float),
    Column("count", int),
    Column("detections", str, json=True, empty="[]"),
    Column("extra", str, json=True, empty="{}", csv=False),
    Column("pre_ms", float, path="timings.pre_ms"),
    Column("infer_ms", float, path="timings.infer_ms"),
    Column("post_ms", float, path="timings.post_ms"),
    Column("total_ms", float, path="timings.total_ms"),
    Column("verdict", str, json=True, csv=False),  # the inspection job's verdict (NULL: no job judged it)
    Column("snapshot", str, record=False),
    Column("snapshot_bytes", int, record=False, csv=False, not_null=True, default=0),
)
PRIMARY_KEY = "id"

RECORD: tuple[Column, ...] = tuple(c for c in TABLE if c.record)
COLUMNS: tuple[str, ...] = tuple(c.name for c in RECORD)  # a Record's values, in this order
JSON_COLUMNS: tuple[Column, ...] = tuple(c for c in TABLE if c.json)
# the CSV export: the row id and a readable time first, then the table's order
CSV_FIELDS: tuple[str, ...] = ("id", "time", *(c.name for c in TABLE if c.csv and c.name != "id"))
# the writer appends the snapshot's file name and size to a Record's values
INSERT_SQL = (
    f"INSERT OR IGNORE INTO results ({', '.join(COLUMNS)}, snapshot, snapshot_bytes) "
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)
TS, SEQ = COLUMNS.index("ts"), COLUMNS.index("seq")


def schema() -> dict[str, type]:
    """Column name -> type, for sqlite-utils' create() and add_column()."""
    return {c.name: c.kind for c in TABLE}


def encode(column: Column, value: Any) -> Any:
    """A Result's value as the column stores it."""
    if not column.json:
        return value
    if not value:
        return None
    return json.dumps(value, separators=COMPACT, default=_to_json)


def _to_json(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if to_json is None:
        raise TypeError(f"{type(value).__name__} cannot be stored as JSON")
    return to_json()


@dataclass(frozen=True)
class Record:
    """One result to store: values for COLUMNS, and the frame if a snapshot is wanted."""

    values: tuple[Any, ...]
    image: np.ndarray | None = None

    @property
    def ts(self) -> float:
        return float(self.values[TS])

    @property
    def seq(self) -> int:
        return int(self.values[SEQ])


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it: JSON columns decoded, and the time in ISO 8601."""
    out = dict(row)
    out["time"] = datetime.fromtimestamp(row["ts"], UTC).isoformat(timespec="milliseconds")
    for column in JSON_COLUMNS:
        text = row.get(column.name)
        out[column.name] = json.loads(text or column.empty)
    return out
