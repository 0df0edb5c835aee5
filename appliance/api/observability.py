"""/metrics in Prometheus text format, and an admin-only profiler.

The profiler is py-spy: it samples every thread of the running process (pipeline stages, writer,
HTTP, native frames inside LiteRT and OpenCV) from outside, at low overhead, without instrumenting the
code; pyinstrument would see only the thread that starts it. The answer is a flame graph SVG that
opens in any browser offline (or speedscope JSON).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import requires
from appliance.api.params import int_param
from appliance.api.status import services_of, status_document
from appliance.errors import BadRequest, Busy
from appliance.pipeline.metrics import HISTOGRAM_BOUNDS_MS
from appliance.services import Services

PR_SET_PTRACER, PR_SET_PTRACER_ANY = 0x59616D61, 0xFFFFFFFFFFFFFFFF
PROFILE_FORMATS = {"flamegraph": ("image/svg+xml", "svg"), "speedscope": ("application/json", "json")}


def _line(name: str, value: float | int | None, labels: str = "") -> str:
    return f"{name}{{{labels}}} {0 if value is None else value}" if labels else f"{name} {value or 0}"


def metrics_text(services: Services) -> str:
    doc = status_document(services)
    out = ["# TYPE appliance_results_total counter", _line("appliance_results_total", doc["results"])]
    source = doc["source"] or {}
    out += [
        "# TYPE appliance_frames_total counter",
        _line("appliance_frames_total", source.get("frames", 0)),
        "# TYPE appliance_frames_dropped_total counter",
        _line("appliance_frames_dropped_total", doc["drops"]),
        "# TYPE appliance_source_connected gauge",
        _line("appliance_source_connected", int(source.get("state") == "connected")),
    ]
    backend = doc["backend"] or "none"
    out += ["# TYPE appliance_backend_info gauge", _line("appliance_backend_info", 1, f'backend="{backend}"')]
    out += health_lines(doc)
    out += ["# TYPE appliance_queue_depth gauge"]
    out += [_line("appliance_queue_depth", d, f'queue="{q}"') for q, d in doc["pipeline"]["queues"].items()]
    out += ["# TYPE appliance_stage_errors_total counter"]
    stages = services.pipeline.metrics
    out += [_line("appliance_stage_errors_total", m.errors, f'stage="{name}"') for name, m in stages.items()]
    out += ["# TYPE appliance_stage_latency_ms histogram"]
    for name, metric in stages.items():
        snap = metric.snapshot()
        running = 0
        for bound, count in zip((*HISTOGRAM_BOUNDS_MS, "+Inf"), snap.histogram, strict=True):
            running += count
            out.append(_line("appliance_stage_latency_ms_bucket", running, f'stage="{name}",le="{bound}"'))
        out.append(_line("appliance_stage_latency_ms_count", snap.processed, f'stage="{name}"'))
    store = doc["store"]
    out += [
        "# TYPE appliance_db_rows gauge",
        _line("appliance_db_rows", store.get("rows", 0)),
        "# TYPE appliance_db_pending gauge",
        _line("appliance_db_pending", store.get("pending", 0)),
        "# TYPE appliance_db_errors_total counter",
        _line("appliance_db_errors_total", store.get("errors", 0)),
        "# TYPE appliance_db_degraded gauge",
        _line("appliance_db_degraded", 1 if store.get("degraded") else 0),
        "# TYPE appliance_db_snapshots_dropped_total counter",
        _line("appliance_db_snapshots_dropped_total", store.get("snapshots_dropped", 0)),
    ]
    out += delivery_lines(doc["plc"])
    cache = services.cache.status()
    out += [
        "# TYPE appliance_cache_hits_total counter",
        _line("appliance_cache_hits_total", cache["hits"]),
        "# TYPE appliance_cache_misses_total counter",
        _line("appliance_cache_misses_total", cache["misses"]),
        "# TYPE appliance_triggers_total counter",
        _line("appliance_triggers_total", services.inspector.triggers),
        "# TYPE appliance_rss_megabytes gauge",
        _line("appliance_rss_megabytes", doc["rss_mb"]),
    ]
    return "\n".join(out) + "\n"


def health_lines(doc: dict[str, Any]) -> list[str]:
    """Health as numbers: ok or not, reasons and warnings counted, each context's state and hangs."""
    health = doc["health"]
    contexts = (doc["model"] or {}).get("context_health", [])
    out = [
        "# TYPE appliance_healthy gauge",
        _line("appliance_healthy", int(health["status"] == "ok")),
        "# TYPE appliance_health_reasons gauge",
        _line("appliance_health_reasons", len(health["reasons"])),
        "# TYPE appliance_health_warnings gauge",
        _line("appliance_health_warnings", len(health.get("warnings", []))),
        "# TYPE appliance_context_healthy gauge",
    ]
    out += [
        _line("appliance_context_healthy", int(bool(c.get("healthy"))), f'context="{c["label"]}"')
        for c in contexts
    ]
    out.append("# TYPE appliance_context_hangs_total counter")
    out += [
        _line("appliance_context_hangs_total", c.get("hangs", 0), f'context="{c["label"]}"') for c in contexts
    ]
    return out


DELIVERY_OUTPUTS = ("mqtt", "webhooks")


def delivery_lines(plc: dict[str, dict[str, Any]]) -> list[str]:
    """sent / retried / dropped of the MQTT and webhook outputs that are on."""
    out: list[str] = []
    on = [name for name in DELIVERY_OUTPUTS if plc.get(name, {}).get("enabled")]
    for counter in ("sent", "retried", "dropped"):
        name = f"appliance_delivery_{counter}_total"
        out.append(f"# TYPE {name} counter")
        out += [_line(name, plc[o].get(counter, 0), f'output="{o}"') for o in on]
    return out


@requires("read")
async def metrics(request: Request) -> Response:
    text = await run_in_threadpool(metrics_text, services_of(request))
    return Response(text, media_type="text/plain; version=0.0.4")


def _allow_tracing_by_children() -> None:
    """With Yama ptrace_scope 1, let our py-spy child attach to us (Linux; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PTRACER, ctypes.c_ulong(PR_SET_PTRACER_ANY), 0, 0, 0)


def record_profile(seconds: int, fmt: str) -> bytes:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise Busy("profiling needs py-spy, which this install lacks: pip install 'edge-appliance[profile]'")
    _allow_tracing_by_children()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"profile.{PROFILE_FORMATS[fmt][1]}"
        command = [
            spy,
            "record",
            "--pid",
            str(os.getpid()),
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            fmt,
            "--output",
            str(out),
            "--nonblocking",
            "--threads",
            "--idle",  # idle threads too: an idle appliance still gives a profile
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
        if done.returncode != 0 or not out.exists():
            raise Busy(f"py-spy could not sample the process: {done.stderr.strip()[-300:]}")
        return out.read_bytes()


@requires("admin")
async def profile(request: Request) -> Response:
    seconds = int_param(request.query_params, "seconds", 5, 1, 60) or 5
    fmt = request.query_params.get("format", "flamegraph")
    if fmt not in PROFILE_FORMATS:
        raise BadRequest(f"format: one of {', '.join(PROFILE_FORMATS)}")
    data = await run_in_threadpool(record_profile, seconds, fmt)
    media, suffix = PROFILE_FORMATS[fmt]
    headers = {"Content-Disposition": f'attachment; filename="appliance-profile.{suffix}"'}
    return Response(data, media_type=media, headers=headers)
