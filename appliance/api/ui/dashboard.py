"""The dashboard: source, model and backend, throughput, queues, storage, and two live SVG charts.

The page includes `_dashboard_panel.html`; a small script fetches /dashboard/panel every few seconds
and swaps it in, so numbers and charts stay current without a reload.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.context import panel_view
from appliance.api.status import status_document
from appliance.api.ui import charts, machine, timeline
from appliance.api.ui.guard import page, xhr
from appliance.api.ui.views import fragment, render
from appliance.control import PanelView
from appliance.pipeline.metrics import HISTOGRAM_BOUNDS_MS

REFRESH_MS = 2000
CHART_STAGES = ("preprocess", "infer", "postprocess")


def bucket_labels() -> list[str]:
    """Upper bound of each latency bucket in ms; the last bucket has none."""
    return [_ms(b) for b in HISTOGRAM_BOUNDS_MS] + [">" + _ms(HISTOGRAM_BOUNDS_MS[-1])]


def _ms(bound: float) -> str:
    return f"{bound / 1000:g}k" if bound >= 1000 else f"{bound:g}"


def latency_chart(services: PanelView) -> charts.Chart:
    metrics = services.pipeline.metrics
    series = {name: list(metrics[name].snapshot().histogram) for name in CHART_STAGES if name in metrics}
    return charts.histogram("Latency per stage, ms (share of frames since start)", bucket_labels(), series)


def results_chart(services: PanelView) -> charts.Chart:
    counts = timeline.counts(services.reader.path)
    minutes = timeline.WINDOW_S / 60
    title = f"Stored results per {timeline.BUCKET_S:g} s, last {minutes:g} minutes"
    return charts.timeline(title, counts, timeline.BUCKET_S)


def storage(services: PanelView) -> dict[str, Any]:
    config = services.config
    db = services.reader.path
    return {
        "disk": machine.disk(config.data_dir),
        "db_bytes": machine.file_bytes(db, db.with_name(db.name + "-wal")),
        "retention": config.store,
    }


def panel_context(services: PanelView) -> dict[str, Any]:
    """Everything the panel shows (reads the database: call it in a worker thread)."""
    status = status_document(services)
    stages = status["pipeline"]["stages"]
    return {
        "status": status,
        "stage_drops": sum(int(s["dropped"]) for s in stages.values()),
        "queue_size": services.config.pipeline.queue_size,
        "storage": storage(services),
        "latency_chart": latency_chart(services),
        "results_chart": results_chart(services),
        "refreshed": status["uptime_s"],
        "inspection": production(services),
    }


def production(services: PanelView) -> dict[str, Any]:
    """The production counters' total and the active job, for the Production card."""
    return {"active_job": services.switch.number(), "total": services.counters.read().to_json()}


@page
async def dashboard(request: Request) -> Response:
    context = await run_in_threadpool(panel_context, panel_view(request))
    return render(request, "dashboard.html", {**context, "refresh_ms": REFRESH_MS})


@xhr
async def panel(request: Request) -> Response:
    context = await run_in_threadpool(panel_context, panel_view(request))
    return fragment(request, "_dashboard_panel.html", context)
