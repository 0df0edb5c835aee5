"""The HTTP API on a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import httpx
import numpy as np

from tests.conftest import LiveServer, config_for, start_server, wait_for


def test_health_status_and_page(live_server: LiveServer) -> None:
    health = httpx.get(f"{live_server.url}/api/v1/health")  # open: no token
    assert health.status_code == 200 and health.json()["status"] == "ok"
    status = live_server.client().get(f"{live_server.url}/api/v1/status").json()
    assert status["model"]["name"] == "face" and status["backend"] == "litert"
    assert status["source"] is None
    assert set(status["latency_ms"]) == {"capture", "preprocess", "infer", "postprocess"}
    page = httpx.get(f"{live_server.url}/")  # the UI wants a login once the password is set
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_infer_png_and_jpeg(live_server: LiveServer, astronaut_png: bytes, astronaut: np.ndarray) -> None:
    reply = live_server.client().post(
        f"{live_server.url}/api/v1/infer", content=astronaut_png, headers={"content-type": "image/png"}
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["label"] == "face" and body["count"] == 1 and body["backend"] == "litert"
    x1, y1, x2, y2 = body["detections"][0]["box"]
    assert abs((x1 + x2) / 2 - 227) < 8 and abs((y1 + y2) / 2 - 129) < 8
    ok, jpeg = cv2.imencode(".jpg", astronaut)
    assert ok
    reply = live_server.client().post(
        f"{live_server.url}/api/v1/infer", content=jpeg.tobytes(), headers={"content-type": "image/jpeg"}
    )
    assert reply.json()["count"] == 1
    # not stored without ?store=1
    assert live_server.client().get(f"{live_server.url}/api/v1/results/latest").status_code == 404


def test_infer_store_then_list(live_server: LiveServer, astronaut_png: bytes) -> None:
    for _ in range(3):
        reply = live_server.client().post(
            f"{live_server.url}/api/v1/infer?store=1",
            content=astronaut_png,
            headers={"content-type": "image/png"},
        )
        assert reply.status_code == 200
    assert live_server.services.writer is not None and live_server.services.writer.flush()
    latest = live_server.client().get(f"{live_server.url}/api/v1/results/latest").json()
    assert latest["label"] == "face" and latest["source"] == "api"
    listing = (
        live_server.client()
        .get(f"{live_server.url}/api/v1/results", params={"limit": 2, "label": "face"})
        .json()
    )
    assert listing["count"] == 2 and listing["next_cursor"] is not None
    rest = (
        live_server.client()
        .get(f"{live_server.url}/api/v1/results", params={"limit": 2, "cursor": listing["next_cursor"]})
        .json()
    )
    assert rest["count"] == 1 and rest["next_cursor"] is None
    since = (
        live_server.client()
        .get(f"{live_server.url}/api/v1/results", params={"since": time.time() + 60})
        .json()
    )
    assert since["count"] == 0


def test_bad_requests_get_clear_errors_and_change_nothing(
    live_server: LiveServer, astronaut_png: bytes
) -> None:
    url = f"{live_server.url}/api/v1/infer?store=1"
    cases = [
        (b"hello, not an image", "image/png", 400, "not a JPEG or PNG"),
        (astronaut_png[:300], "image/png", 400, "could not be decoded"),
        (b"", "image/jpeg", 400, "empty body"),
        (astronaut_png, "text/plain", 415, "image/jpeg or image/png"),
        (b"x" * (16 * 1024 * 1024 + 1), "image/png", 413, "limit"),
    ]
    for body, content_type, status, message in cases:
        reply = live_server.client().post(url, content=body, headers={"content-type": content_type})
        assert reply.status_code == status, (content_type, reply.text)
        assert message in reply.json()["error"]
    bad_query = live_server.client().get(f"{live_server.url}/api/v1/results", params={"since": "last week"})
    assert bad_query.status_code == 400 and "since" in bad_query.json()["error"]
    assert (
        live_server.client().get(f"{live_server.url}/api/v1/results", params={"limit": 0}).status_code == 400
    )
    assert (
        live_server.client().get(f"{live_server.url}/api/v1/results/latest").status_code == 404
    )  # nothing was stored
    ok = live_server.client().post(url, content=astronaut_png, headers={"content-type": "image/png"})
    assert ok.status_code == 200 and ok.json()["count"] == 1  # the pipeline and model survived
    status = live_server.client().get(f"{live_server.url}/api/v1/status").json()
    assert status["model"]["name"] == "face"


def test_frames_pushed_through_the_api_are_run(data_dir: Path, astronaut_png: bytes) -> None:
    server = start_server(config_for(data_dir, '[source]\nkind = "push"\nname = "gateway"\n'))
    try:
        api = server.client(server.setup())
        for _ in range(3):
            reply = api.post("/api/v1/frames", content=astronaut_png, headers={"content-type": "image/png"})
            assert reply.status_code == 202 and reply.json()["frame_id"] >= 1
        wait_for(lambda: server.services.bus.latest is not None)
        latest = server.services.bus.latest
        assert latest is not None and latest.source == "gateway" and latest.count == 1
        bad = api.post("/api/v1/frames", content=b"nope", headers={"content-type": "image/png"})
        assert bad.status_code == 400
    finally:
        server.stop()


def test_push_needs_the_push_source(live_server: LiveServer, astronaut_png: bytes) -> None:
    reply = live_server.client().post(
        "/api/v1/frames", content=astronaut_png, headers={"content-type": "image/png"}
    )
    assert reply.status_code == 409
