"""`appliance bench` end to end with small counts: every measurement present, the report written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance_tools.bench import Measurement
from appliance_tools.bench_peers import PeerRun, existing_section, peers_markdown, tree_cpu_s, write_section
from appliance_tools.loadgen import KserveTarget, Load, Target, grpc_load, kserve_load, with_httpx
from tests.conftest import CACHE, LiveServer, config_for, free_port, start_server


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
        "pipeline, shadow running",
        "pipeline shadow on/off",
        "naive single-threaded loop",
        "pipeline/naive loop",
        "store rows/s",
        "REST infer, concurrency 1",
        "Modbus trigger round trip",
        "pipeline/raw",
        "RSS MB",
        "ready s",
    ):
        assert f"| {name} |" in text, name
    assert "a note for readers" in text and "## Model `stripes`" in text
    compared = re.search(r"; shadow compared (\d+),", text)
    assert compared and int(compared.group(1)) > 0  # the shadow really ran beside the measured pipeline


def test_python_load_generator(live_server: LiveServer, astronaut: np.ndarray) -> None:
    ok, jpeg = cv2.imencode(".jpg", astronaut)
    assert ok
    target = Target(f"{live_server.url}/api/v1/infer", live_server.token, jpeg.tobytes())
    load = with_httpx(target, concurrency=2, requests=10)
    assert load.per_s > 0 and 0 < load.p50_ms <= load.p99_ms and load.tool == "httpx"


def test_kserve_loads_over_rest_and_grpc(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The peers' load generator against a real server: JSON and binary (threads and wrk), and gRPC."""
    port = free_port()
    extra = f"[grpc]\nenabled = true\nport = {port}\n[auth]\nrate_per_s = 0\n"  # wrk sends thousands
    server = start_server(config_for(data_dir, extra))
    try:
        server.setup()
        tensor = np.zeros((1, 64, 64, 3), np.float32)
        target = KserveTarget(f"{server.url}/v2/models/stripes/infer", server.token, "image", tensor)
        before = tree_cpu_s(os.getpid())  # the server runs in this process
        loads = [kserve_load(target, 2, 6, binary) for binary in (False, True)]
        assert tree_cpu_s(os.getpid()) > before
        loads.append(grpc_load(target, port, "stripes", 2, 6))
        monkeypatch.setattr("shutil.which", lambda name: None)  # the Python load generator too
        loads.append(kserve_load(target, 2, 6, binary=True))
        assert all(load.per_s > 0 and 0 < load.p50_ms <= load.p99_ms for load in loads)
        assert loads[-1].tool == "threads" and all(load.count >= 6 for load in loads)
        wrong = KserveTarget(target.url, server.token, "pixels", tensor)  # a 400 is an error, not a figure
        with pytest.raises(RuntimeError):
            kserve_load(wrong, 1, 2, binary=False)
    finally:
        server.stop()


def test_peers_section_replaces_the_previous_one(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n## Model `face`\n\n| a | b |\n")
    raw = Measurement("raw invoke()", 500.0, 1.5, 2.0)
    loads = {
        ("mlserver", "json", 4): Load(20.0, 150.0, 200.0, "wrk"),
        ("appliance", "json", 4): Load(70.0, 50.0, 80.0, "wrk"),
        ("appliance", "binary", 4): Load(400.0, 9.0, 12.0, "wrk"),
        ("appliance", "binary", 1): Load(300.0, 3.0, 4.0, "wrk"),
        ("appliance", "grpc", 4): Load(450.0, 8.0, 11.0, "threads"),
    }
    for _ in range(2):
        cpu = {("mlserver", "json", 4): 40.0, ("appliance", "json", 4): 10.0, ("appliance", "binary", 4): 2.0}
        write_section(report, peers_markdown(PeerRun("face", raw, loads, cpu), "today", "1.7.1"))
        with report.open("a") as fh:
            fh.write("\n## Model `selfie`\n")  # appended after it by `make bench`: kept by the next run
    text = report.read_text()
    assert text.count("## Peers") == 1 and "## Model `face`" in text and text.count("## Model `selfie`") == 2
    assert existing_section(report).startswith("## Peers") and "selfie" not in existing_section(report)
    assert "| JSON c=4 req/s, appliance / MLServer | 3.5 | >= 3 | met |" in text
    assert "| JSON c=4 p99, appliance / MLServer | 0.4 | <= 0.5 | met |" in text
    assert "| binary c=4 req/s / MLServer JSON | 20.0 | >= 15 | met |" in text
    assert "| binary c=1 p50 - raw invoke p50, ms | 1.5 | <= 1 | MISSED |" in text
    assert "| JSON c=4 server CPU per request, MLServer / appliance | 4.0 | >= 3 | met |" in text
    assert "| server CPU per request, MLServer JSON / appliance binary (c=4) | 20.0 | >= 15 | met |" in text
