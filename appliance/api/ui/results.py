"""Stored results: filter, page through, look at one with its frame, export what the filter selects."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from appliance.api.context import results_view
from appliance.api.ui.guard import page
from appliance.api.ui.overlays import caption_of, draw, jpeg
from appliance.api.ui.views import error_page, render
from appliance.control import ResultsView
from appliance.store.reader import Query, export_lines

PAGE_SIZE = 25
RANGES = {
    "": "any time",
    "900": "last 15 minutes",
    "3600": "last hour",
    "86400": "last 24 hours",
    "604800": "last 7 days",
}
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
FILTER_KEYS = ("range", "since", "until", "label", "model", "min_score")
logger = logging.getLogger(__name__)

THUMB_WIDTH = 160
MAX_ROW_ID = 2**62


@dataclass(frozen=True)
class Filter:
    """The filter form as submitted (strings), its problems, and the store query it means."""

    values: dict[str, str]
    problems: dict[str, str]
    query: Query

    def link(self, **extra: str) -> str:
        """Query string of this filter plus `extra` (pagination, export format)."""
        return urlencode({**{k: v for k, v in self.values.items() if v}, **extra})


def _time(raw: str, key: str, problems: dict[str, str]) -> float | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        problems[key] = "use a date and time like 2026-11-25T08:00"
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _score(raw: str, problems: dict[str, str]) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        problems["min_score"] = "a number from 0 to 1"
        return None
    return value


def parse_filter(params: QueryParams, limit: int = PAGE_SIZE) -> Filter:
    values = {key: params.get(key, "").strip() for key in FILTER_KEYS}
    problems: dict[str, str] = {}
    since = _time(values["since"], "since", problems)
    if values["range"] in RANGES and values["range"]:
        since = max(since or 0.0, time.time() - float(values["range"]))
    cursor = params.get("cursor", "")
    query = Query(
        since=since,
        until=_time(values["until"], "until", problems),
        label=values["label"] or None,
        model=values["model"] or None,
        min_score=_score(values["min_score"], problems),
        limit=limit,
        cursor=int(cursor) if cursor.isascii() and cursor.isdigit() and len(cursor) < 19 else None,
    )
    return Filter(values, problems, query)


def _choices(services: ResultsView) -> dict[str, list[str]]:
    manifests = services.registry.list()
    return {
        "models": sorted({m.name for m in manifests}),
        "labels": sorted({label for m in manifests for label in m.labels}),
    }


@page
async def listing(request: Request) -> Response:
    services = results_view(request)
    chosen = parse_filter(request.query_params)
    rows: list[dict[str, Any]] = []
    cursor = None
    if not chosen.problems:
        rows, cursor = await run_in_threadpool(read_page, services, chosen.query)
    context = {
        "filter": chosen,
        "rows": rows,
        "next_link": chosen.link(cursor=str(cursor)) if cursor else None,
        "first_link": chosen.link() if chosen.query.cursor else None,
        "ranges": RANGES,
        "choices": _choices(services),
        "store_enabled": services.writer is not None,
    }
    return render(request, "results.html", context, 400 if chosen.problems else 200)


def read_page(services: ResultsView, query: Query) -> tuple[list[dict[str, Any]], int | None]:
    """A page of results; none while the database does not exist yet (store off, nothing written)."""
    if not services.reader.path.exists():
        return [], None
    try:
        return services.reader.page(query)
    except sqlite3.OperationalError as err:  # a database created but not yet migrated
        logger.warning("results not readable: %s", err)
        return [], None


def find_row(services: ResultsView, row_id: int) -> dict[str, Any] | None:
    if not 0 < row_id < MAX_ROW_ID:
        return None
    rows, _ = read_page(services, Query(cursor=row_id + 1, limit=1))
    return rows[0] if rows and rows[0]["id"] == row_id else None


@page
async def detail(request: Request) -> Response:
    row_id = int(request.path_params["row_id"])
    row = await run_in_threadpool(find_row, results_view(request), row_id)
    if row is None:
        return error_page(request, 404, f"No stored result with id {row_id} (retention may have removed it).")
    return render(request, "result.html", {"row": row})


@page
async def export(request: Request) -> Response:
    fmt = request.path_params["fmt"]
    chosen = parse_filter(request.query_params)
    if fmt not in FORMATS or chosen.problems:
        return error_page(request, 400, "Choose CSV or JSONL and a valid filter.")
    reader = results_view(request).reader
    rows = reader.iter_rows(chosen.query) if reader.path.exists() else iter(())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    disposition = f'attachment; filename="results-{stamp}.{fmt}"'
    return StreamingResponse(
        export_lines(rows, fmt), media_type=FORMATS[fmt], headers={"content-disposition": disposition}
    )


def snapshot_path(services: ResultsView, name: str) -> Path | None:
    """The snapshot file `name` under DATA/snapshots, or None (missing, not a JPEG, or outside it)."""
    root = (services.config.data_dir / "snapshots").resolve()
    if "\x00" in name or not name.lower().endswith(".jpg"):
        return None
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _thumbnail(path: Path) -> bytes:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path.name}: not a readable JPEG")
    h, w = image.shape[:2]
    small = cv2.resize(image, (THUMB_WIDTH, max(1, h * THUMB_WIDTH // w)), interpolation=cv2.INTER_AREA)
    return jpeg(small, 70)


@page
async def snapshot(request: Request) -> Response:
    """DATA/snapshots/<path>; ?thumb=1 gives a small copy. Anything outside the folder is a 404."""
    path = snapshot_path(results_view(request), request.path_params["path"])
    if path is None:
        return Response("no such snapshot", status_code=404, media_type="text/plain")
    try:
        data = await run_in_threadpool(
            _thumbnail if request.query_params.get("thumb") else Path.read_bytes, path
        )
    except (OSError, ValueError):
        return Response("snapshot unreadable", status_code=404, media_type="text/plain")
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


def _overlay(path: Path, row: dict[str, Any]) -> bytes:
    image: np.ndarray | None = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path.name}: not a readable JPEG")
    caption = caption_of(
        row["label"], row["score"], row["count"], (f"{row['model']}:{row['model_version']}",)
    )
    return jpeg(draw(image, row["detections"], caption), 85)


@page
async def annotated(request: Request) -> Response:
    """The snapshot of one result with its detections drawn."""
    services = results_view(request)
    row = await run_in_threadpool(find_row, services, int(request.path_params["row_id"]))
    path = snapshot_path(services, row["snapshot"]) if row and row.get("snapshot") else None
    if row is None or path is None:
        return Response("this result has no snapshot", status_code=404, media_type="text/plain")
    try:
        data = await run_in_threadpool(_overlay, path, row)
    except (OSError, ValueError):
        return Response("snapshot unreadable", status_code=404, media_type="text/plain")
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})
