"""Stored results: latest and filtered, paginated lists."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import requires
from appliance.api.bodies import JSONResponse
from appliance.api.context import results_view
from appliance.api.params import float_param, int_param, time_param
from appliance.errors import NotFound
from appliance.store.reader import MAX_PAGE, Query


@requires("read")
async def latest(request: Request) -> Response:
    row = await run_in_threadpool(results_view(request).reader.latest)
    if row is None:
        raise NotFound("no results stored yet")
    return JSONResponse(row)


def query_of(request: Request) -> Query:
    params = request.query_params
    return Query(
        since=time_param(params, "since"),
        until=time_param(params, "until"),
        label=params.get("label") or None,
        model=params.get("model") or None,
        min_score=float_param(params, "min_score"),
        limit=int_param(params, "limit", 100, 1, MAX_PAGE) or 100,
        cursor=int_param(params, "cursor", None, 1, 2**62),
    )


@requires("read")
async def listing(request: Request) -> Response:
    query = query_of(request)
    items, cursor = await run_in_threadpool(results_view(request).reader.page, query)
    return JSONResponse({"items": items, "next_cursor": cursor, "count": len(items)})
