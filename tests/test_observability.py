"""/metrics and the profiler on a running appliance."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from appliance.api.app import create_app
from appliance.api.observability import record_profile
from appliance.api.prometheus import inspection_families
from appliance.errors import Busy
from appliance.inspection.counters import CounterSnapshot
from appliance.services import Services
from tests.conftest import LiveServer, config_for

DOCS_API = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_prometheus_metrics(live_server: LiveServer, astronaut_png: bytes) -> None:
    api = live_server.client()
    for _ in range(3):
        api.post("/api/v1/infer", content=astronaut_png, headers={"content-type": "image/png"})
    answer = api.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    found = samples(text)
    assert value(found, "appliance_results_total") == 1  # one run, then two cache hits
    assert value(found, "appliance_cache_hits_total") == 2
    assert value(found, "appliance_backend_info", backend="litert") == 1
    assert value(found, "appliance_stage_latency_ms_count", stage="infer") == 1
    assert value(found, "appliance_stage_latency_ms_bucket", stage="infer", le="+Inf") == 1
    assert value(found, "appliance_stage_latency_ms_sum", stage="infer") > 0
    buckets = [
        v for (n, labels), v in found.items() if n.endswith("_bucket") and ("stage", "infer") in labels
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert "# TYPE appliance_stage_latency_ms histogram" in text
    assert "# HELP appliance_results_total " in text
    assert "# TYPE appliance_results_total counter" in text
    assert value(found, "process_resident_memory_bytes") > 0  # the process collector
    assert value(found, "process_cpu_seconds_total") > 0
    healthy = api.get("/api/v1/health").status_code == 200
    assert value(found, "appliance_healthy") == int(healthy)
    assert value(found, "appliance_health_warnings") == 0
    contexts = api.get("/api/v1/status").json()["model"]["context_health"]
    for context in contexts:  # one line per context of the active model, none hung
        assert value(found, "appliance_context_healthy", context=context["label"]) == 1
        assert value(found, "appliance_context_hangs_total", context=context["label"]) == 0
    for name in re.findall(r"`(appliance_[a-z_]+)", DOCS_API.read_text(encoding="utf-8")):
        assert f"# TYPE {re.sub('_(bucket|sum|count)$', '', name)}" in text or name.startswith(
            "appliance_delivery"
        ), name


def test_two_apps_have_their_own_registries(data_dir: Path) -> None:
    """No global default registry: two apps in one process each count their own services."""
    first, second = (
        create_app(Services.build(config_for(data_dir)), manage_lifecycle=False) for _ in range(2)
    )
    assert first.state.metrics is not second.state.metrics
    assert first.state.metrics is not REGISTRY
    assert "appliance_results_total" in generate_latest(first.state.metrics).decode()


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


def test_inspection_families_keep_main_s_names_and_labels() -> None:
    """The inspection counters as prometheus_client families (wired to the services at merge)."""
    total = CounterSnapshot(0, 10, 7, 2, 1, 3, 1.0, 2.0, 3.0, 0.0)
    job = CounterSnapshot(4, 0, 0, 0, 0, 0, None, None, None, 0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(lambda: inspection_families([total, job], 4, 5)))
    found = samples(generate_latest(registry).decode())
    assert value(found, "appliance_inspection_ok_total", job="0") == 7
    assert value(found, "appliance_inspection_missed_total", job="4") == 0
    assert value(found, "appliance_inspection_yield_percent", job="0") == pytest.approx(77.778)
    assert ("appliance_inspection_yield_percent", frozenset({("job", "4")})) not in found  # nothing judged
    assert value(found, "appliance_inspection_active_job") == 4
    assert value(found, "appliance_archive_dropped_total") == 5


@dataclass(frozen=True)
class Families:
    build: Callable[[], Iterable[Metric]]

    def collect(self) -> Iterable[Metric]:
        return self.build()
