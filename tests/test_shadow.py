"""Shadow runs on a real appliance: real uvicorn, a real looping video source, the demo LiteRT models.

A candidate identical to the active model agrees fully and is promoted on that evidence; one with a
different score threshold disagrees, keeps thumbnails of where, and is refused without an override;
an override is recorded in the manifest; activating something else ends the run with a clear status.
The same through the command line (request files) and the models page (CSRF like every form).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from appliance.cli import main
from appliance.models.manifest import Manifest, Thresholds
from appliance.models.registry import MANIFEST, AddRequest, Registry
from appliance_tools.demo.video import write_demo_video
from tests.conftest import ADMIN_PASSWORD, LiveServer, config_for, start_server, wait_for
from tests.e2e.browser import logged_in_client

MIN_FRAMES = 20


def _copy_as_next_version(registry: Registry, name: str, **thresholds: float) -> int:
    """The active model's own file again as the next version of its name (optionally other thresholds)."""
    original = registry.get(name, 1)
    folder = registry.version_dir(name, 1)
    request = _request_of(original, folder / original.file)
    if thresholds:
        request = dataclasses.replace(request, thresholds=Thresholds(**thresholds))
    return registry.add(request).version


def _request_of(manifest: Manifest, path: Path) -> AddRequest:
    return AddRequest(
        path,
        manifest.task,
        manifest.name,
        manifest.labels,
        manifest.input,
        manifest.thresholds,
        manifest.decoder,
    )


@pytest.fixture
def video_server(data_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    video = write_demo_video(tmp_path / "v.mp4", frames=60)
    extra = (
        f'[source]\nkind = "video"\npath = "{video}"\nloop = true\nrate = 15.0\n[backend]\nthreads = 1\n'
        f"[model]\nshadow_every = 1\nshadow_min_frames = {MIN_FRAMES}\nshadow_examples = 5\n"
    )
    server = start_server(config_for(data_dir, extra))
    server.setup()
    yield server
    server.stop()


def _shadow(client: httpx.Client) -> dict[str, Any]:
    reply = client.get("/api/v1/models/shadow")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def _compared(client: httpx.Client, frames: int = MIN_FRAMES) -> dict[str, Any]:
    wait_for(lambda: _shadow(client)["stats"]["frames"]["compared"] >= frames, timeout=120)
    return _shadow(client)


def _stored_manifest(registry: Registry, name: str, version: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((registry.version_dir(name, version) / MANIFEST).read_text())
    return data


def test_identical_detector_agrees_fully_and_is_promoted(
    video_server: LiveServer, registry: Registry
) -> None:
    version = _copy_as_next_version(registry, "face")
    client = video_server.client()
    assert _shadow(client)["state"] == "none"
    started = client.post("/api/v1/models/shadow", json={"name": "face", "version": version})
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running" and started.json()["candidate"] == f"face:{version}"
    status = _compared(client)
    stats = status["stats"]
    assert stats["boxes"]["active"] > 0  # the video shows faces: there was something to agree on
    assert (
        stats["agreement"] == 1.0 and stats["boxes"]["recall"] == 1.0 and stats["boxes"]["precision"] == 1.0
    )
    assert stats["frames"]["disagreed"] == 0 and status["examples"] == [] and status["shortfall"] is None
    assert stats["latency_ms"]["candidate"]["p50"] > 0 and stats["latency_ms"]["active"]["p95"] > 0
    promoted = client.post("/api/v1/models/face/promote", json={"version": version})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["active"] == f"face:{version}"
    record = _stored_manifest(registry, "face", version)["promotion"]
    assert record["override"] is False and record["agreement"] == 1.0 and record["frames"] >= MIN_FRAMES
    assert record["against"] == "face:1" and record["by"] == "api:setup"
    assert video_server.services.manager.current().manifest.ref == f"face:{version}"  # type: ignore[union-attr]
    after = _shadow(client)
    assert after["state"] == "stopped" and after["reason"].startswith("promoted")
    assert "promotion" not in _stored_manifest(registry, "face", 1)  # never promoted: no record at all


def test_other_threshold_disagrees_is_refused_then_overridden(
    video_server: LiveServer, registry: Registry
) -> None:
    version = _copy_as_next_version(registry, "face", score=0.2)  # many more, weaker boxes
    client = video_server.client()
    assert client.post("/api/v1/models/shadow", json={"name": "face", "version": version}).status_code == 200
    status = _compared(client)
    stats = status["stats"]
    assert stats["boxes"]["precision"] < 0.9 and stats["agreement"] < 0.9
    assert stats["frames"]["disagreed"] > 0
    assert "agrees" in status["shortfall"] and "model.shadow_min_agreement" in status["shortfall"]
    examples = status["examples"]
    assert 0 < len(examples) <= 5
    shown = [e for e in examples if e["thumbnail"]]
    assert shown, examples
    thumb = client.get(f"/api/v1/models/shadow/examples/{shown[0]['id']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and max(image.shape[:2]) <= 160
    assert client.get("/api/v1/models/shadow/examples/999999").status_code == 404

    refused = client.post("/api/v1/models/face/promote", json={"version": version})
    assert refused.status_code == 409
    assert "promotion refused" in refused.json()["error"] and "agrees" in refused.json()["error"]
    assert video_server.services.manager.current().manifest.ref == "face:1"  # type: ignore[union-attr]
    assert "promotion" not in _stored_manifest(registry, "face", version)

    forced = client.post("/api/v1/models/face/promote", json={"version": version, "override": True})
    assert forced.status_code == 200, forced.text
    record = _stored_manifest(registry, "face", version)["promotion"]
    assert record["override"] is True and record["agreement"] < 0.9 and "agrees" in record["shortfall"]
    assert record["by"] == "api:setup" and record["at"]
    assert video_server.services.manager.current().manifest.ref == f"face:{version}"  # type: ignore[union-attr]
    examples_dir = video_server.services.config.data_dir / "shadow" / "examples"
    assert not examples_dir.exists() or not any(examples_dir.iterdir())  # cleaned when the run ended


def test_activating_another_model_ends_the_run_clearly(video_server: LiveServer, registry: Registry) -> None:
    version = _copy_as_next_version(registry, "face")
    client = video_server.client()
    assert client.post("/api/v1/models/shadow", json={"name": "face", "version": version}).status_code == 200
    _compared(client, 3)
    assert client.post("/api/v1/models/stripes/activate").status_code == 200
    wait_for(lambda: _shadow(client)["state"] == "stopped", timeout=30)
    status = _shadow(client)
    assert "active model changed to stripes:1" in status["reason"]
    assert status["stats"]["frames"]["compared"] >= 3  # the statistics stay readable
    refused = client.post("/api/v1/models/face/promote", json={"version": version})
    assert refused.status_code == 409 and "against the active model stripes:1" in refused.json()["error"]
    assert client.delete("/api/v1/models/shadow").status_code == 409  # nothing running to stop
    wrong_task = client.post("/api/v1/models/shadow", json={"name": "face", "version": version})
    assert wrong_task.status_code == 409 and "same task" in wrong_task.json()["error"]
    for body, code in (({"name": "stripes"}, 409), ({"name": "nope"}, 404), ({"name": 3}, 400)):
        assert client.post("/api/v1/models/shadow", json=body).status_code == code, body
    assert video_server.services.pipeline.alive()


@pytest.mark.parametrize("name", ["stripes", "selfie"])
def test_identical_classifier_and_segmenter_agree_fully(
    video_server: LiveServer, registry: Registry, name: str
) -> None:
    client = video_server.client()
    assert client.post(f"/api/v1/models/{name}/activate").status_code == 200
    version = _copy_as_next_version(registry, name)
    assert client.post("/api/v1/models/shadow", json={"name": name, "version": version}).status_code == 200
    status = _compared(client)
    expected = "top-1 agreement" if name == "stripes" else "mean mask IoU"
    assert status["stats"]["metric"] == expected
    assert status["stats"]["agreement"] == 1.0 and status["shortfall"] is None
    stopped = client.delete("/api/v1/models/shadow")
    assert stopped.status_code == 200 and stopped.json()["reason"] == "stopped by request"


def test_command_line_reaches_the_running_appliance(
    video_server: LiveServer, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    version = _copy_as_next_version(registry, "face", score=0.2)
    data = str(video_server.services.config.data_dir)
    assert main(["models", "shadow", f"face:{version}", "--data-dir", data]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "running"
    _compared(video_server.client())
    assert main(["models", "shadow", "--status", "--data-dir", data]) == 0
    assert json.loads(capsys.readouterr().out)["candidate"] == f"face:{version}"
    assert main(["models", "promote", f"face:{version}", "--data-dir", data]) == 1
    assert "promotion refused" in capsys.readouterr().err
    assert (
        main(["models", "promote", f"face:{version}", "--override", "--by", "tester", "--data-dir", data])
        == 0
    )
    assert _stored_manifest(registry, "face", version)["promotion"]["by"] == "cli:tester"
    assert main(["models", "shadow", "--stop", "--data-dir", data]) == 1  # the promotion ended the run
    assert "no shadow run is going on" in capsys.readouterr().err


def test_command_line_without_a_server_says_so(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(registry.root.parent)
    assert main(["models", "shadow", "face", "--timeout", "0.3", "--data-dir", data]) == 1
    assert "no running appliance answered" in capsys.readouterr().err
    assert not list((registry.root.parent / "shadow").glob("request-*"))  # the request is withdrawn


def test_models_page_shows_the_run_and_promotes_with_csrf(
    video_server: LiveServer, registry: Registry
) -> None:
    version = _copy_as_next_version(registry, "face", score=0.2)
    browser = logged_in_client(video_server.url, ADMIN_PASSWORD)
    token = browser.headers.pop("x-csrf-token")
    assert browser.post(f"/models/face/{version}/shadow").status_code == 403  # no CSRF token
    assert browser.post(f"/models/face/{version}/shadow", data={"csrf": token}).status_code == 303
    _compared(video_server.client())
    page = browser.get("/models").text
    assert "Shadow run" in page and f"face:{version}" in page and "Not ready for promotion" in page
    assert "/api/v1/models/shadow/examples/" in page
    thumb = page.split('src="/api/v1/models/shadow/examples/')[1].split('"')[0]
    assert (
        browser.get(f"/api/v1/models/shadow/examples/{thumb}").status_code == 200
    )  # the session may read it
    refused = browser.post(f"/models/face/{version}/promote", data={"csrf": token}, follow_redirects=True)
    assert "promotion refused" in refused.text
    assert video_server.services.manager.current().manifest.ref == "face:1"  # type: ignore[union-attr]
    forced = browser.post(
        f"/models/face/{version}/promote", data={"csrf": token, "override": "1"}, follow_redirects=True
    )
    assert "override recorded" in forced.text
    assert _stored_manifest(registry, "face", version)["promotion"]["by"] == "ui:admin"


def test_observer_never_blocks_the_publish_stage(video_server: LiveServer, registry: Registry) -> None:
    """A shadow that is held up (its hand-off full) only counts drops: results keep flowing."""
    version = _copy_as_next_version(registry, "face")
    client = video_server.client()
    assert client.post("/api/v1/models/shadow", json={"name": "face", "version": version}).status_code == 200
    shadow = video_server.services.shadow
    hold = threading.Event()
    original = shadow._compare

    def held(*args: Any) -> None:
        hold.wait(60)
        original(*args)

    shadow._compare = held  # type: ignore[method-assign]
    try:
        before = video_server.services.pipeline.published
        wait_for(lambda: _shadow(client)["stats"]["frames"]["dropped"] >= 10, timeout=60)
        assert video_server.services.pipeline.published >= before + 10
    finally:
        hold.set()
        shadow._compare = original  # type: ignore[method-assign]


def test_a_restart_forgets_thumbnails_and_requests_of_the_last_process(data_dir: Path) -> None:
    folder = data_dir / "shadow"
    (folder / "examples").mkdir(parents=True)
    (folder / "examples" / "1.jpg").write_bytes(b"old thumbnail")
    (folder / "request-0123456789abcdef.json").write_text('{"id": "0123456789abcdef", "action": "stop"}')
    server = start_server(config_for(data_dir))
    try:
        assert not (folder / "examples").exists()
        assert not list(folder.glob("request-*"))
        assert server.services.shadow.status()["state"] == "none"
    finally:
        server.stop()
