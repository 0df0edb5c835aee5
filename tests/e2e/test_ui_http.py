"""The admin panel without a browser: access rules, CSRF, login backoff, snapshot paths, viewer cap.

Fast checks with httpx against a real uvicorn server, plus the pure helpers (charts, redaction,
form fields, backoff).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.datastructures import ImmutableMultiDict

from appliance.api.ui import charts, diagnostics, fields
from appliance.api.ui.overlays import draw, jpeg
from appliance.api.ui.state import MAX_VIEWERS
from appliance.api.ui.throttle import LoginBackoff
from appliance.config import parse_config
from tests.conftest import ADMIN_PASSWORD, LiveServer, start_server
from tests.e2e.browser import csrf_of, logged_in_client

PAGES = (
    "/",
    "/live",
    "/results",
    "/models",
    "/config",
    "/tokens",
    "/system",
    "/results/1",
    "/snapshots/x.jpg",
)


def test_first_boot_every_page_leads_to_setup_then_login(fresh_server: LiveServer) -> None:
    client = httpx.Client(timeout=60, base_url=fresh_server.url)
    for path in PAGES:
        reply = client.get(path)
        assert (reply.status_code, reply.headers["location"]) == (303, "/setup"), path
    assert client.get("/login").headers["location"] == "/setup"
    assert client.get("/dashboard/panel").status_code == 401
    token = csrf_of(client.get("/setup").text)
    weak = client.post("/setup", data={"csrf": token, "password": "weak", "confirm": "weak"})
    assert weak.status_code == 400 and "too short" in weak.text
    done = client.post("/setup", data={"csrf": token, "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD})
    assert (done.status_code, done.headers["location"]) == (303, "/setup")  # post/redirect/get
    assert "eat_" in client.get("/setup").text
    assert client.get("/").status_code == 200  # setup logged this browser in
    stranger = httpx.Client(timeout=60, base_url=fresh_server.url)
    for path in PAGES:
        reply = stranger.get(path)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login?next="), path
    assert stranger.get("/setup").headers["location"] == "/login"


def test_session_cookie_and_security_headers(live_server: LiveServer) -> None:
    client = httpx.Client(timeout=60, base_url=live_server.url)
    page = client.get("/login")
    cookie = page.headers["set-cookie"].lower()
    assert "appliance_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "cdn" not in page.text.lower() and "https://" not in page.text


def test_posts_without_the_csrf_token_are_refused(live_server: LiveServer) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    token = client.headers.pop("x-csrf-token")
    form = {"present.inspection": "1", "inspection.min_score": "0.7"}
    for data in (form, {**form, "csrf": "forged"}):
        reply = client.post("/config", data=data)
        assert reply.status_code == 403 and "security token" in reply.text
    assert client.post("/tokens", data={"name": "x", "scope": "admin"}).status_code == 403
    assert client.post("/logout").status_code == 403
    upload = client.post("/models/upload?filename=m.tflite&task=detect", content=b"x")
    assert upload.status_code == 403 and "security token" in upload.json()["error"]
    assert live_server.services.config.inspection.min_score == 0.0
    assert [t.name for t in live_server.services.auth.tokens()] == ["setup"]
    ok = client.post("/config", data={**form, "csrf": token})
    assert ok.status_code == 303 and live_server.services.config.inspection.min_score == 0.7
    stale = httpx.Client(timeout=60, base_url=live_server.url)  # a login form from another session's token
    reply = stale.post("/login", data={"csrf": token, "password": ADMIN_PASSWORD})
    assert reply.status_code == 403


def test_failed_logins_back_off_per_client(live_server: LiveServer) -> None:
    client = httpx.Client(timeout=60, base_url=live_server.url)
    token = csrf_of(client.get("/login").text)
    for _ in range(3):
        wrong = client.post("/login", data={"csrf": token, "password": "Wrong-password-1"})
        assert wrong.status_code == 401
    assert "Wait 1 s" in wrong.text
    refused = client.post("/login", data={"csrf": token, "password": ADMIN_PASSWORD})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    time.sleep(1.05)
    assert client.post("/login", data={"csrf": token, "password": ADMIN_PASSWORD}).status_code == 303


def test_login_redirects_only_to_local_pages(live_server: LiveServer) -> None:
    for target, expected in (
        ("/models", "/models"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
    ):
        client = httpx.Client(timeout=60, base_url=live_server.url)
        token = csrf_of(client.get("/login").text)
        reply = client.post("/login", data={"csrf": token, "password": ADMIN_PASSWORD, "next": target})
        assert reply.headers["location"] == expected


def test_snapshot_route_refuses_paths_outside_the_snapshot_folder(live_server: LiveServer) -> None:
    data = live_server.services.config.data_dir
    folder = data / "snapshots" / "20261125"
    folder.mkdir(parents=True)
    (folder / "1-1.jpg").write_bytes(jpeg(np.full((48, 64, 3), 128, np.uint8)))
    (data / "secret.jpg").write_bytes(b"outside")
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    good = client.get("/snapshots/20261125/1-1.jpg")
    assert good.status_code == 200 and good.headers["content-type"] == "image/jpeg"
    assert client.get("/snapshots/20261125/1-1.jpg?thumb=1").status_code == 200
    for path in (
        "/snapshots/../secret.jpg",
        "/snapshots/%2e%2e/secret.jpg",
        "/snapshots/..%2fsecret.jpg",
        "/snapshots/20261125/..%2F..%2Fsecret.jpg",
        "/snapshots/%2Fetc%2Fpasswd",
        "/snapshots//etc/hostname",
        "/snapshots/../auth.json",
        "/snapshots/20261125/missing.jpg",
    ):
        reply = client.get(path)
        assert reply.status_code == 404 or (reply.status_code == 200 and reply.content != b"outside"), path
        assert b"outside" not in reply.content and b"secret" not in reply.content, path


def test_live_view_caps_viewers_and_keeps_frames_only_while_watched(live_server: LiveServer) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    pipeline = live_server.services.pipeline
    assert pipeline.image_watchers == 0
    readers: list[Iterator[bytes]] = []
    with ExitStack() as stack:
        for _ in range(MAX_VIEWERS):
            stream = stack.enter_context(client.stream("GET", "/live/stream"))
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
            chunks = stream.iter_bytes()
            readers.append(chunks)  # an abandoned iterator would close its connection
            first = next(chunks)  # the "waiting for frames" picture: no source here
            assert first.startswith(b"--frame\r\nContent-Type: image/jpeg")
        assert pipeline.image_watchers == MAX_VIEWERS
        refused = client.get("/live/stream")
        assert refused.status_code == 503 and f"{MAX_VIEWERS} live views are open already" in refused.text
        assert "live views are open already" in client.get("/live").text
        readers.clear()
    deadline = time.monotonic() + 5
    while (
        pipeline.image_watchers or client.get("/live/status").json()["viewers"]
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pipeline.image_watchers == 0 and client.get("/live/status").json()["viewers"] == 0


def test_restart_needs_serve_and_answers_before_stopping(live_server: LiveServer) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    services = live_server.services
    reply = client.post("/restart", data={"csrf": client.headers["x-csrf-token"]}, follow_redirects=True)
    assert "only available" in reply.text and not services.restart_requested
    stops: list[bool] = []
    services.request_stop = lambda: stops.append(True)
    reply = client.post("/restart", data={"csrf": client.headers["x-csrf-token"]})
    assert reply.status_code == 202 and "Restarting" in reply.text
    deadline = time.monotonic() + 5
    while not stops and time.monotonic() < deadline:  # the stop runs after the answer is sent
        time.sleep(0.02)
    assert services.restart_requested and stops == [True]
    services.restart_requested = False
    again = client.get("/restarting")  # where restart.js leaves the address bar: a refresh restarts nothing
    assert again.status_code == 200 and "Restarting" in again.text and stops == [True]
    assert not services.restart_requested


def test_backoff_doubles_after_the_free_failures() -> None:
    backoff = LoginBackoff(free=3, base_s=1.0, cap_s=8.0)
    waits = [backoff.failed("ip", now=0.0) for _ in range(7)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.wait("ip", now=5.0) == 3.0 and backoff.wait("other", now=5.0) == 0.0
    backoff.succeeded("ip")
    assert backoff.wait("ip", now=5.0) == 0.0


def test_charts_scale_to_round_numbers() -> None:
    chart = charts.timeline("t", [(0, 0), (37, 12), (5, 0)], 10.0)
    assert [t.text for t in chart.y_ticks] == ["0", "20", "40"]
    tallest = max(chart.bars, key=lambda b: b.h)
    assert tallest.title == "37 results, 20 s ago" and chart.empty == ""
    histogram = charts.histogram("h", ["1", "2"], {"infer": [3, 1], "post": [0, 0]})
    assert histogram.y_ticks[-1].text == "80 %" and "infer ≤1 ms: 3 frames (75 %)" in {
        b.title for b in histogram.bars
    }
    assert charts.histogram("h", ["1"], {"infer": [0]}).empty


def test_diagnostics_redact_secrets() -> None:
    plc = {
        "mqtt_password": "hunter2",
        "mqtt_password_file": "/etc/pw",
        "webhook_urls": ["https://h/x?token=abc&a=1"],
    }
    redacted = diagnostics.redact({"plc": plc, "source": {"url": "rtsp://admin:pw123@cam/stream"}})
    assert (
        redacted["plc"]["mqtt_password"] == "(redacted)"
        and redacted["plc"]["mqtt_password_file"] == "/etc/pw"
    )
    assert redacted["plc"]["webhook_urls"] == ["https://h/x?token=(redacted)&a=1"]
    assert redacted["source"]["url"] == "rtsp://admin:(redacted)@cam/stream"


def test_form_fields_convert_or_pass_the_text_to_the_validator() -> None:
    sent = {"min_score": "0.25", "min_count": "two", "pass_labels": "ok, good ,", "max_count": "9"}
    form = ImmutableMultiDict(
        [("present.inspection", "1"), *((f"inspection.{k}", v) for k, v in sent.items())]
    )
    updates = fields.updates_from(form)
    assert set(updates) == {"inspection"}
    values = updates["inspection"]
    assert set(values) == set(sent)  # keys the form did not carry keep their values
    assert (
        values["min_score"] == 0.25
        and values["min_count"] == "two"
        and values["pass_labels"] == ["ok", "good"]
    )
    labels = {f.key: f.label for f in fields.fields_of("source")}
    assert labels["reconnect_max_s"] == "Reconnect max (s)" and labels["url"] == "URL"


def test_overlays_draw_on_a_copy(tmp_path: Path) -> None:
    image = np.zeros((100, 120, 3), np.uint8)
    drawn = draw(
        image, [{"label": "face", "score": 0.9, "box": [10, 10, 60, 60], "keypoints": [[30, 30]]}], "cap"
    )
    assert image.sum() == 0 and drawn.sum() > 0 and drawn.shape == image.shape


@pytest.mark.parametrize("path", ["/results/99999999999999999999999", "/results/0"])
def test_unknown_results_are_404_pages(live_server: LiveServer, path: str) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    reply = client.get(path)
    assert reply.status_code == 404 and "No stored result" in reply.text


def test_pages_work_with_result_logging_off(data_dir: Path) -> None:
    server = start_server(parse_config(f'[data]\ndir = "{data_dir}"\n[store]\nenabled = false\n'))
    try:
        server.setup()
        client = logged_in_client(server.url, ADMIN_PASSWORD)
        for path in ("/", "/dashboard/panel", "/results", "/results/export.csv", "/system"):
            assert client.get(path).status_code == 200, path
        assert "Result logging is off" in client.get("/results").text
        assert client.get("/results/1").status_code == 404
    finally:
        server.stop()


def test_api_writes_with_a_browser_session_need_the_csrf_header(live_server: LiveServer) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    token = client.headers.pop("x-csrf-token")
    assert client.get("/api/v1/status").status_code == 200  # reads need no CSRF token
    forged = client.post("/api/v1/tokens", json={"name": "x", "scope": "read"})
    assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
    sent = client.post("/api/v1/tokens", json={"name": "x", "scope": "read"}, headers={"X-CSRF-Token": token})
    assert sent.status_code == 201
    client.close()
