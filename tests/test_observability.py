"""/metrics and the profiler on a running appliance."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from appliance.api.observability import record_profile
from appliance.errors import Busy
from tests.conftest import LiveServer


def test_prometheus_metrics(live_server: LiveServer, astronaut_png: bytes) -> None:
    api = live_server.client()
    for _ in range(3):
        api.post("/api/v1/infer", content=astronaut_png, headers={"content-type": "image/png"})
    text = api.get("/metrics").text
    values = dict(re.findall(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.MULTILINE))
    assert values["appliance_results_total"] == "1"  # one run, then two cache hits
    assert values["appliance_cache_hits_total"] == "2"
    assert values['appliance_backend_info{backend="litert"}'] == "1"
    assert values['appliance_stage_latency_ms_count{stage="infer"}'] == "1"
    assert values['appliance_stage_latency_ms_bucket{stage="infer",le="+Inf"}'] == "1"
    assert "# TYPE appliance_stage_latency_ms histogram" in text
    healthy = api.get("/api/v1/health").status_code == 200
    assert values["appliance_healthy"] == str(int(healthy))
    assert values["appliance_health_warnings"] == "0"
    contexts = api.get("/api/v1/status").json()["model"]["context_health"]
    for context in contexts:  # one line per context of the active model, none hung
        assert values[f'appliance_context_healthy{{context="{context["label"]}"}}'] == "1"
        assert values[f'appliance_context_hangs_total{{context="{context["label"]}"}}'] == "0"
    assert contexts
    assert live_server.client("").get("/metrics").status_code == 401


def test_profile_samples_the_running_process(live_server: LiveServer) -> None:
    api = live_server.client()
    svg = api.get("/api/v1/debug/profile", params={"seconds": 1})
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content[:2000]
    speedscope = api.get("/api/v1/debug/profile", params={"seconds": 1, "format": "speedscope"})
    profile = json.loads(speedscope.content)
    assert profile["$schema"].startswith("https://www.speedscope.app")
    frames = {f["name"] for f in profile["shared"]["frames"]}
    assert any("uvicorn" in (f or "") or "run" in (f or "") for f in frames)
    assert api.get("/api/v1/debug/profile", params={"format": "pdf"}).status_code == 400


def test_profile_without_py_spy_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The device image has no py-spy (the optional extra `profile`): a 503 that names it, no traceback."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(Busy, match=r"edge-appliance\[profile\]") as err:
        record_profile(1, "svg")
    assert err.value.status == 503
