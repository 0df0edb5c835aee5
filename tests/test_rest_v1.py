"""REST v1 for PLCs and integrators: trigger, jobs, cache, models, config, OpenAPI — on a real server."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.api.app import API_ROUTES
from appliance.config import load_config
from appliance.services import Services
from appliance_tools.demo.video import write_demo_video
from tests.conftest import ADMIN_PASSWORD, LiveServer, config_for, start_server

FLAT_FIELDS = {
    "seq",
    "ok",
    "label",
    "label_id",
    "score",
    "count",
    "latency_ms",
    "model",
    "model_version",
    "backend",
    "ts",
    "error_code",
    "detections",
    "source",
    # the inspection job's verdict (job 0 and empty lists without an active job)
    "job",
    "job_version",
    "pass_bits",
    "reason_code",
    "ng_region",
    "reasons",
    "regions",
}


@pytest.fixture
def triggered_server(data_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    video = write_demo_video(tmp_path / "line.mp4", frames=20)
    extra = (
        f'[source]\nkind = "video"\npath = "{video}"\nmode = "triggered"\n'
        '[inspection]\npass_labels = ["face"]\nmin_count = 1\n'
    )
    server = start_server(config_for(data_dir, extra))
    server.setup()
    yield server
    server.stop()


def test_trigger_in_triggered_mode_runs_one_frame_and_stores_it(triggered_server: LiveServer) -> None:
    api = triggered_server.client()
    time.sleep(0.3)
    assert triggered_server.services.pipeline.published == 0  # nothing runs until triggered
    first = api.post("/api/v1/trigger")
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == FLAT_FIELDS
    assert body["ok"] is True and body["label"] == "face" and body["count"] == 1 and body["error_code"] == 0
    second = api.post("/api/v1/trigger").json()
    assert second["seq"] == body["seq"] + 1
    writer = triggered_server.services.writer
    assert writer is not None and writer.flush()
    conn = sqlite3.connect(triggered_server.services.config.data_dir / "results.db")
    assert [r[0] for r in conn.execute("SELECT seq FROM results ORDER BY id")] == [body["seq"], second["seq"]]


def test_trigger_with_an_image_and_a_failing_rule(live_server: LiveServer, astronaut_png: bytes) -> None:
    api = live_server.client()
    reply = api.post("/api/v1/trigger", content=astronaut_png, headers={"content-type": "image/png"})
    assert reply.json()["ok"] is True  # default rule: anything passes
    change = api.patch("/api/v1/config", json={"inspection": {"pass_labels": ["scratch"]}})
    assert change.status_code == 200 and change.json()["restart_needed"] == []
    failed = api.post("/api/v1/trigger", content=astronaut_png, headers={"content-type": "image/png"}).json()
    assert failed["ok"] is False and failed["label"] == "face"


def test_trigger_without_a_source_says_so(live_server: LiveServer) -> None:
    reply = live_server.client().post("/api/v1/trigger")
    assert reply.status_code == 409
    assert reply.json()["error_code"] == 2 and "no source" in reply.json()["error"]


def test_async_job(live_server: LiveServer, astronaut_png: bytes) -> None:
    api = live_server.client()
    created = api.post("/api/v1/jobs", content=astronaut_png, headers={"content-type": "image/png"})
    assert created.status_code == 202
    job_id = created.json()["job_id"]
    assert created.headers["location"] == f"/api/v1/jobs/{job_id}"
    deadline = time.monotonic() + 20
    while (job := api.get(f"/api/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job["state"] == "done" and job["result"]["count"] == 1
    failing = api.post("/api/v1/jobs").json()  # no source: the job fails with a code
    while (job := api.get(f"/api/v1/jobs/{failing['job_id']}").json())["state"] in ("queued", "running"):
        time.sleep(0.02)
    assert job["state"] == "failed" and job["error_code"] == 2
    assert api.get("/api/v1/jobs/unknown").status_code == 404


def test_result_cache_for_repeated_inputs(live_server: LiveServer, astronaut_png: bytes) -> None:
    api = live_server.client()
    first = api.post("/api/v1/infer", content=astronaut_png, headers={"content-type": "image/png"}).json()
    second = api.post("/api/v1/infer", content=astronaut_png, headers={"content-type": "image/png"}).json()
    assert "cached" not in first and second["cached"] is True and second["seq"] == first["seq"]
    cache = live_server.services.cache.status()
    assert cache["hits"] == 1 and cache["misses"] == 1
    api.post("/api/v1/models/stripes/activate")  # another model: a new key, no stale answer
    third = api.post("/api/v1/infer", content=astronaut_png, headers={"content-type": "image/png"}).json()
    assert third["model"] == "stripes" and "cached" not in third


def test_models_over_http(live_server: LiveServer, model_files: dict[str, Path]) -> None:
    api = live_server.client()
    listed = api.get("/api/v1/models").json()
    assert listed["active"] == "face:1" and {m["name"] for m in listed["models"]} >= {
        "face",
        "selfie",
        "stripes",
    }
    face = model_files["face_detection_short_range.tflite"].read_bytes()
    uploaded = api.post(
        "/api/v1/models",
        params={"task": "detect", "name": "face", "labels": "face", "mean": "127.5", "std": "127.5"},
        content=face,
    )
    assert uploaded.status_code == 201 and uploaded.json()["version"] == 2
    bad = api.post("/api/v1/models", params={"task": "classify", "name": "nope"}, content=face)
    assert bad.status_code == 400 and "one output" in bad.json()["error"]
    garbage = api.post("/api/v1/models", params={"task": "classify"}, content=b"not a model")
    assert garbage.status_code == 400
    assert api.post("/api/v1/models/face/activate", json={"version": 2}).json() == {"active": "face:2"}
    assert live_server.services.manager.current().manifest.ref == "face:2"  # type: ignore[union-attr]
    assert api.delete("/api/v1/models/face/versions/2").status_code == 409  # active
    assert api.post("/api/v1/models/rollback").json() == {"active": "face:1"}
    assert api.delete("/api/v1/models/face/versions/2").status_code == 204
    assert {m["name"] for m in api.get("/api/v1/models").json()["models"]} == {
        "face",
        "selfie",
        "stripes",
        "stripes_uint8",
        "vibration",
    }


def test_config_read_and_validated_update(live_server: LiveServer, tmp_path: Path) -> None:
    api = live_server.client()
    config = api.get("/api/v1/config").json()["config"]
    assert config["server"]["host"] == "127.0.0.1"
    assert ADMIN_PASSWORD not in str(config) and live_server.token not in str(config)
    bad = api.patch("/api/v1/config", json={"store": {"max_rows": -1}, "server": {"port": "http"}})
    assert bad.status_code == 400
    assert {p["key"] for p in bad.json()["problems"]} == {"store.max_rows", "server.port"}
    assert api.get("/api/v1/config").json()["config"]["store"]["max_rows"] == 1_000_000  # unchanged
    unknown = api.patch("/api/v1/config", json={"store": {"max_rowz": 5}})
    assert unknown.status_code == 400 and "unknown key" in unknown.text
    ok = api.patch("/api/v1/config", json={"store": {"max_rows": 500}, "server": {"port": 8099}})
    assert ok.status_code == 200
    assert set(ok.json()["changed"]) == {"store.max_rows", "server.port"}
    assert ok.json()["restart_needed"] == ["server.port"]
    assert api.post("/api/v1/restart").status_code == 503  # not started by `appliance serve`


def test_config_change_switches_the_source_live(live_server: LiveServer, tmp_path: Path) -> None:
    video = write_demo_video(tmp_path / "new.mp4", frames=10)
    api = live_server.client()
    reply = api.patch(
        "/api/v1/config", json={"source": {"kind": "video", "path": str(video), "name": "cam2"}}
    )
    assert reply.status_code == 200 and reply.json()["restart_needed"] == []
    deadline = time.monotonic() + 20
    while live_server.services.pipeline.published < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get("/api/v1/status").json()["source"]["name"] == "cam2"


def test_config_file_is_rewritten(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[data]\ndir = "{data_dir}"\n')
    services = Services.build(load_config(path), path)
    change = services.settings.propose({"store": {"max_rows": 42}, "inspection": {"pass_labels": ['a"b\nc']}})
    services.settings.commit(change)
    reloaded = load_config(path)
    assert reloaded.store.max_rows == 42 and reloaded.inspection.pass_labels == ('a"b\nc',)
    assert reloaded.data.dir == str(data_dir)


def test_openapi_lists_every_route(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.url}/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    for route in API_ROUTES:
        for method in (getattr(route, "methods", None) or set()) - {"HEAD"}:
            path = getattr(route, "path", "")
            assert method.lower() in spec["paths"].get(path, {}), f"{method} {path} missing from OpenAPI"
    assert spec["paths"]["/api/v1/trigger"]["post"]["x-scope"] == "operate"
