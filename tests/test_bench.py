"""`appliance bench` end to end with small counts: every measurement present, the report written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.cli import main
from appliance_tools.loadgen import Target, with_httpx
from tests.conftest import CACHE, LiveServer


def test_bench_writes_a_report(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    notes = tmp_path / "notes.md"
    notes.write_text("- a note for readers\n")
    args = [
        "bench",
        "--model",
        "stripes",
        "--frames",
        "60",
        "--requests",
        "20",
        "--rows",
        "2000",
        "--concurrency",
        "1",
        "--cache-dir",
        str(CACHE),
        "--report",
        str(report),
        "--notes",
        str(notes),
    ]
    assert main(args) == 0
    text = report.read_text()
    for name in (
        "raw invoke()",
        "pipeline video→SQLite",
        "pipeline, logging off",
        "store rows/s",
        "REST infer, concurrency 1",
        "Modbus trigger round trip",
        "pipeline/raw",
        "RSS MB",
        "ready s",
    ):
        assert f"| {name} |" in text, name
    assert "a note for readers" in text and "## Model `stripes`" in text


def test_python_load_generator(live_server: LiveServer, astronaut: np.ndarray) -> None:
    ok, jpeg = cv2.imencode(".jpg", astronaut)
    assert ok
    target = Target(f"{live_server.url}/api/v1/infer", live_server.token, jpeg.tobytes())
    load = with_httpx(target, concurrency=2, requests=10)
    assert load.per_s > 0 and 0 < load.p50_ms <= load.p99_ms and load.tool == "httpx"
