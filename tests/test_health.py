"""Health tells the truth: /api/v1/health and /v2/health/ready answer 503 with the reasons while
results cannot be produced, and 200 again once they can. Real server, real registry, real writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import appliance.services as services_module
from appliance.health import HealthState, Observation, assess
from appliance.services import Services
from appliance.sources.base import Frame, FrameCounter, SourceState, SourceStatus
from appliance_tools.demo.setup import demo_models, register_models
from tests.conftest import ADMIN_PASSWORD, CACHE, LiveServer, config_for, start_server, wait_for
from tests.e2e.browser import logged_in_client


def health(server: LiveServer) -> tuple[int, list[str], int, list[str]]:
    v1 = httpx.get(server.url + "/api/v1/health")
    v2 = httpx.get(server.url + "/v2/health/ready")
    assert v1.json()["status"] == ("ok" if v1.status_code == 200 else "unhealthy")
    assert v2.json()["ready"] is (v2.status_code == 200)
    return v1.status_code, v1.json()["reasons"], v2.status_code, v2.json()["reasons"]


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[LiveServer]:
    """An appliance whose data dir has no model at all."""
    server = start_server(config_for(tmp_path / "data", '[model]\nname = ""\n'))
    yield server
    server.stop()


def test_no_model_is_503_until_one_is_activated(empty_server: LiveServer) -> None:
    code, reasons, code2, reasons2 = health(empty_server)
    assert (code, code2) == (503, 503)
    assert reasons == reasons2 == ["model: no model is loaded"]
    empty_server.setup()
    client = logged_in_client(empty_server.url, ADMIN_PASSWORD)
    panel = client.get("/dashboard/panel").text
    assert 'id="health-reasons"' in panel and "model: no model is loaded" in panel
    services = empty_server.services
    register_models(services.registry, demo_models(CACHE))  # the face model, active
    services.manager.load_active()
    assert health(empty_server) == (200, [], 200, [])
    assert 'id="health-reasons"' not in client.get("/dashboard/panel").text


def test_dead_writer_thread_is_503_and_stops_the_watchdog(live_server: LiveServer) -> None:
    assert health(live_server)[0] == 200
    services = live_server.services
    assert services.writer is not None
    services.writer.close()  # the writer thread really ends
    wait_for(lambda: services.writer is not None and not services.writer.alive())
    code, reasons, code2, _ = health(live_server)
    assert (code, code2) == (503, 503)
    assert reasons == ["store: the writer thread is not running (results are not saved)"]
    assert not services.health().feed_watchdog
    status = live_server.client().get("/api/v1/status").json()
    assert status["health"] == {"status": "unhealthy", "reasons": reasons, "warnings": []}


class FreezableSource:
    """A live source whose frames stop (a frozen camera). It reports `stalled` the way the live
    sources do after the stall time; what is under test here is what health makes of it."""

    name, kind, live = "frozen-cam", "camera", True

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.frozen = threading.Event()
        self.counter = FrameCounter()
        self.last_frame = time.monotonic()

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        if self.frozen.wait(0.05 if not self.frozen.is_set() else timeout):
            return None
        self.last_frame = time.monotonic()
        return Frame(self.counter.frame(), time.time(), self.name, image=self.image)

    @property
    def ended(self) -> bool:
        return False

    def status(self) -> SourceStatus:
        state = SourceState.STALLED if self.frozen.is_set() else SourceState.CONNECTED
        c = self.counter
        return SourceStatus(
            self.name, self.kind, state.value, True, c.fps(), c.frames, c.dropped, c.errors, 0, None
        )

    def stop(self) -> None:
        self.frozen.set()


def test_stalled_live_source_is_503_then_200_when_frames_flow(data_dir: Path, astronaut: np.ndarray) -> None:
    source = FreezableSource(astronaut)

    real = services_module.create_source
    services_module.create_source = lambda config, link: source  # type: ignore[assignment]
    try:
        server = start_server(config_for(data_dir))
    finally:
        services_module.create_source = real
    try:
        wait_for(lambda: server.services.pipeline.published > 3)
        assert health(server)[0] == 200
        source.frozen.set()
        code, reasons, code2, _ = health(server)
        assert (code, code2) == (503, 503)
        assert reasons == ["source frozen-cam: stalled (no frames arriving)"]
        assert server.services.health().feed_watchdog  # a restart would not unfreeze a camera
        source.frozen.clear()
        published = server.services.pipeline.published
        wait_for(lambda: server.services.pipeline.published > published)
        assert health(server) == (200, [], 200, [])
    finally:
        server.stop()


def test_starting_is_503(data_dir: Path) -> None:
    services = Services.build(config_for(data_dir))
    health_now = services.health()
    assert not health_now.ok and health_now.state == "starting" and not health_now.feed_watchdog


def test_backend_problems_are_warnings_while_results_flow() -> None:
    hung = ("npu context rknn:core2 hung since 3.1 s",)
    seen = Observation(True, True, True, None, None, backend_problems=hung)
    health = assess(seen)
    assert health.state is HealthState.OK and health.feed_watchdog
    assert health.to_json()["warnings"] == list(hung)
    worse = assess(Observation(True, True, False, None, None, backend_problems=hung))
    assert not worse.ok and worse.warnings == hung and "model: no model is loaded" in worse.reasons
