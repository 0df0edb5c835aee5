"""/metrics in Prometheus text format (appliance/api/prometheus.py), and an admin-only profiler.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import requires
from appliance.api.params import int_param
from appliance.api.status import status_document
from appliance.control import MetricsView
from appliance.errors import BadRequest, Busy
from appliance.inspection.counters import CounterSnapshot
from appliance.pipeline.metrics import StageSnapshot

PR_SET_PTRACER, PR_SET_PTRACER_ANY = 0x59616D61, 0xFFFFFFFFFFFFFFFF
PROFILE_FORMATS = {"flamegraph": ("image/svg+xml", "svg"), "speedscope": ("application/json", "json")}


@dataclass(frozen=True)
class LiveMetrics:
    """The metrics' view of the running services (appliance/api/prometheus.py reads it per scrape)."""

    services: MetricsView

    def status_document(self) -> dict[str, Any]:
        return status_document(self.services)

    def stage_snapshots(self) -> list[StageSnapshot]:
        return [metric.snapshot() for metric in self.services.pipeline.metrics.values()]

    def cache_counts(self) -> tuple[int, int]:
        cache = self.services.cache.status()
        return int(cache["hits"]), int(cache["misses"])

    def triggers(self) -> int:
        return self.services.inspector.triggers

    def inspection(self) -> tuple[Sequence[CounterSnapshot], int, int]:
        feeder = self.services.feeder
        dropped = feeder.dropped if feeder is not None else 0
        return self.services.counters.read_all(), self.services.switch.number(), dropped


@requires("read")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    text = await run_in_threadpool(generate_latest, registry)
    return Response(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)  # the text format every scraper reads


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
