"""The admin panel in real headless Chromium against a real server running the demo video.

One server and one browser for the module; the tests follow a technician's first day in order
(first boot, login, dashboard, live view, results, models, configuration, access, system, logout).
Each saves a screenshot of its page to build/screenshots/ (`make screenshots`: docs/screenshots/).
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import httpx
import numpy as np
import pytest
from skimage import data as samples

from appliance.config import parse_config
from appliance.models.manifest import Thresholds
from appliance.models.registry import AddRequest
from appliance_tools.demo.video import write_demo_video
from tests.conftest import ADMIN_PASSWORD, LiveServer, start_server
from tests.e2e.browser import VIEWPORT, chromium, require_browser, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

WAIT_MS = 15_000
CONSOLE_ERRORS: list[str] = []  # browser console errors of the whole run (CSP violations, script errors)


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, seeded_registry_dir: Path) -> Iterator[LiveServer]:
    """First boot of an appliance whose source is the demo video (a face most of the time)."""
    require_browser()
    root = tmp_path_factory.mktemp("ui")
    data = root / "data"
    shutil.copytree(seeded_registry_dir, data)
    video = write_demo_video(root / "demo.mp4")
    config = parse_config(
        f'[data]\ndir = "{data}"\n'
        f'[source]\nkind = "video"\nname = "line-1"\npath = "{video}"\nrate = 15.0\n'
        '[store]\nflush_interval_ms = 20\nsnapshots = "detections"\n'
    )
    server = start_server(config)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(appliance: LiveServer) -> Iterator[Page]:
    with chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT, base_url=appliance.url, accept_downloads=True)
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        tab.on(
            "console",
            lambda message: CONSOLE_ERRORS.append(message.text) if message.type == "error" else None,
        )
        yield tab
        tab.goto("about:blank")  # closes any live stream before the server stops
        context.close()


def log_in(page: Page, appliance: LiveServer) -> None:
    """Make sure the browser has an admin session (tests can run on their own)."""
    if not appliance.services.auth.has_password:
        appliance.services.auth.set_first_password(ADMIN_PASSWORD)
    page.goto("/")
    if "/login" in page.url:
        page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")


def active_ref(appliance: LiveServer) -> str | None:
    runtime = appliance.services.manager.current()
    return runtime.manifest.ref if runtime is not None else None


def wait_for_a_face(appliance: LiveServer) -> None:
    """Until the newest result found a face (the demo video shows a rocket a quarter of the time)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        latest = appliance.services.bus.latest
        if latest is not None and latest.count > 0:
            time.sleep(0.2)  # the frame reaches the browser
            latest = appliance.services.bus.latest
            if latest is not None and latest.count > 0:
                return
        time.sleep(0.05)


def test_first_boot_leads_every_page_to_setup(page: Page, appliance: LiveServer) -> None:
    page.goto("/results")
    assert page.url.endswith("/setup")
    page.get_by_label("New admin password").fill("Password1!")  # long enough, but very common
    page.get_by_label("Repeat the password").fill("Password1!")
    page.get_by_role("button", name="Set password and continue").click()
    assert "too easy to guess" in page.locator("#form-error").inner_text()
    page.get_by_label("New admin password").fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
    screenshot(page, "setup")
    page.get_by_role("button", name="Set password and continue").click()
    page.wait_for_url("**/setup")  # post/redirect/get: the token is on the page after the redirect
    token = page.get_by_label("Admin API token").input_value()
    assert token.startswith("eat_") and appliance.services.auth.lookup(token) is not None
    assert appliance.services.auth.has_password


def test_login_wrong_then_right(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.context.clear_cookies()
    page.goto("/models")
    assert "/login?next=%2Fmodels" in page.url
    page.get_by_label("Admin password").fill("Not-The-Password-1")
    page.get_by_role("button", name="Log in").click()
    assert "Wrong password" in page.get_by_role("alert").inner_text()
    screenshot(page, "login")
    page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/models")
    assert page.get_by_role("heading", name="Models", exact=True).is_visible()


def test_dashboard_numbers_change(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/")
    assert page.locator("#source-state").inner_text() == "connected"
    assert page.locator("#model-name").inner_text() == "face v1"
    assert "litert" in page.locator("#backend").inner_text()
    before = page.locator("#results-count").inner_text()
    page.wait_for_function(
        "before => document.getElementById('results-count').textContent !== before", arg=before
    )
    page.wait_for_function("() => document.querySelectorAll('#panel figure svg rect').length > 5")
    assert int(page.locator("#results-count").inner_text()) > int(before)
    assert page.locator("figure.chart").count() == 2
    screenshot(page, "dashboard")


def test_live_view_receives_frames(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/live")
    page.wait_for_function("() => document.getElementById('live-image').naturalWidth === 640")
    page.wait_for_function("() => parseFloat(document.getElementById('live-fps').textContent) > 0")
    sent = appliance.services.pipeline.image_watchers
    assert sent == 1
    first = page.evaluate("() => fetch('/live/status').then(r => r.json())")["frames_sent"]
    page.wait_for_timeout(600)
    assert page.evaluate("() => fetch('/live/status').then(r => r.json())")["frames_sent"] > first + 3
    wait_for_a_face(appliance)
    screenshot(page, "live")
    page.goto("/")
    deadline = time.monotonic() + 5
    while appliance.services.pipeline.image_watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert appliance.services.pipeline.image_watchers == 0  # nobody watches: no frames kept


def test_results_filter_detail_and_export(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/results")
    page.get_by_label("Label").fill("face")
    page.get_by_label("Lowest score (0 to 1)").fill("0.5")
    page.get_by_role("button", name="Apply filter").click()
    assert "label=face" in page.url and "min_score=0.5" in page.url
    labels = page.locator("td.label-cell").all_inner_texts()
    assert labels and set(labels) == {"face"}
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].some(i => i.naturalWidth > 0)")
    screenshot(page, "results")
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("id,time,ts,") and len(lines) > 1
    assert all(",face," in line for line in lines[1:])
    with page.expect_download() as download:
        page.locator("#export-jsonl").click()
    rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert rows and {r["label"] for r in rows} == {"face"} and min(r["score"] for r in rows) >= 0.5
    page.locator("tbody tr a:has(img.thumb)").first.click()
    page.wait_for_function("() => document.getElementById('result-frame').naturalWidth === 640")
    assert "face" in page.locator("table").inner_text()
    screenshot(page, "result")
    page.goto("/results?label=no-such-label")
    assert page.locator("#no-results").is_visible()


def test_models_upload_test_activate(
    page: Page, appliance: LiveServer, model_files: dict[str, Path], tmp_path: Path
) -> None:
    log_in(page, appliance)
    page.goto("/models")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"this is not a model" * 10)
    page.get_by_label("Model file").set_input_files(str(broken))
    page.get_by_role("button", name="Upload and validate").click()
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert "Not added: broken.tflite:" in error.inner_text()
    face = model_files["face_detection_short_range.tflite"]
    page.get_by_label("Model file").set_input_files(str(face))
    page.get_by_label("Name (empty: from the file name)").fill("face-upload")
    page.get_by_label("Task").select_option("detect")
    page.get_by_label("Labels, comma separated").fill("face")
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_selector("#version-face-upload-1")
    assert appliance.services.registry.get("face-upload", 1).task == "detect"
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), np.ascontiguousarray(samples.astronaut()[:, :, ::-1]))
    page.get_by_label("Model version").select_option("face:1")
    page.get_by_label("Image (JPEG or PNG)").set_input_files(str(image))
    page.get_by_role("button", name="Run the model").click()
    page.wait_for_function("() => document.getElementById('test-output').naturalWidth === 512")
    assert page.locator("#test-summary").inner_text().startswith("face ")
    page.get_by_label("Model file").set_input_files(str(broken))  # show the plain error in the screenshot
    page.get_by_role("button", name="Upload and validate").click()
    page.locator("#upload-error").wait_for(state="visible")
    screenshot(page, "models", height=1800)
    page.get_by_role("button", name="Activate face-upload:1").click()
    assert "face-upload:1 is now active" in page.get_by_role("status").first.inner_text()
    assert active_ref(appliance) == "face-upload:1"
    page.get_by_role("button", name="Roll back to the previous model").click()
    assert active_ref(appliance) == "face:1"
    page.get_by_role("button", name="Delete face-upload:1").click()
    assert "deleted" in page.get_by_role("status").first.inner_text()
    assert appliance.services.registry.versions("face-upload") == []


def test_models_shadow_run_and_promotion_with_override(page: Page, appliance: LiveServer) -> None:
    """Shadow a face detector with a lower score threshold; its disagreements are shown as thumbnails;
    promotion needs the override box, and the override lands in the manifest."""

    log_in(page, appliance)
    registry = appliance.services.registry
    face = registry.get("face", 1)
    file = registry.version_dir("face", 1) / face.file
    request = AddRequest(file, "detect", "face", face.labels, face.input, Thresholds(score=0.2))
    version = registry.add(request).version
    page.goto("/models")
    page.get_by_role("button", name=f"Shadow face:{version}", exact=True).click()
    assert f"Shadow run of face:{version} started" in page.get_by_role("status").first.inner_text()
    deadline = time.monotonic() + 60
    while appliance.services.shadow.status()["stats"]["frames"]["disagreed"] < 3:
        assert time.monotonic() < deadline, appliance.services.shadow.status()
        time.sleep(0.1)
    page.reload()  # the page after the POST shows the run as it started
    assert "%" in page.locator("#shadow-agreement").inner_text()
    assert "Not ready for promotion" in page.locator("#shadow-shortfall").inner_text()
    thumb = page.locator("ul.shadow-examples img").first
    thumb.wait_for()
    page.wait_for_function("() => document.querySelector('ul.shadow-examples img').naturalWidth > 0")
    screenshot(page, "models-shadow", start=page.locator("#shadow"), height=900)
    page.get_by_label("Promote anyway").check()
    page.get_by_role("button", name=f"Promote face:{version}").click()
    assert "override recorded" in page.get_by_role("status").first.inner_text()
    assert registry.get("face", version).promotion["override"] is True  # type: ignore[index]
    page.get_by_role("button", name="Roll back to the previous model").click()
    assert appliance.services.manager.current().manifest.ref == "face:1"  # type: ignore[union-attr]


def test_config_error_then_valid_change(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/config")
    page.locator("#f-inspection-min-score").fill("1.5")
    page.locator("#save-config").click()
    error = page.locator("#f-inspection-min-score-error")
    assert "must be at most 1.0" in error.inner_text()
    assert page.locator("#config-errors").is_visible()
    assert appliance.services.config.inspection.min_score == 0.0
    screenshot(page, "config", start=page.locator("#inspection"))
    page.locator("#f-inspection-min-score").fill("0.4")
    page.locator("#f-backend-threads").fill("3")
    page.locator("#save-config").click()
    assert "Saved and applied: inspection.min_score" in page.get_by_role("status").first.inner_text()
    assert "backend.threads" in page.locator("#restart-notice").inner_text()
    assert appliance.services.config.inspection.min_score == 0.4
    assert appliance.services.config.backend.threads == 3
    stops: list[bool] = []
    appliance.services.request_stop = lambda: stops.append(True)
    page.goto("/config")
    page.get_by_role("button", name="Restart now").click()
    page.get_by_role("heading", name="Restarting…").wait_for()
    deadline = time.monotonic() + 5
    while not stops and time.monotonic() < deadline:  # the stop runs after the answer is sent
        time.sleep(0.02)
    assert appliance.services.restart_requested and stops == [True]
    appliance.services.restart_requested = False


def test_tokens_create_once_and_revoke(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/tokens")
    page.get_by_label("Name (who uses it)").fill("line-3 PLC")
    page.get_by_label("Scope").select_option("operate")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token").input_value()
    reply = httpx.get(f"{appliance.url}/api/v1/status", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    screenshot(page, "access")
    page.goto("/tokens")
    assert page.locator("#new-token").count() == 0  # shown once
    page.get_by_role("button", name="Revoke line-3 PLC").click()
    reply = httpx.get(f"{appliance.url}/api/v1/status", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 401


def test_system_page_and_diagnostics(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/system?level=WARNING")
    assert page.locator("#sys-version").inner_text() == "0.1.0"
    assert "failed admin login" in page.locator("#log-lines").inner_text()
    screenshot(page, "system")
    with page.expect_download() as download:
        page.locator("#diagnostics").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert {"config.json", "status.json", "logs.txt", "models.json"} <= set(archive.namelist())
    assert json.loads(archive.read("status.json"))["model"]["name"] == "face"
    assert ADMIN_PASSWORD not in archive.read("logs.txt").decode()


def test_forged_posts_are_refused(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.goto("/config")
    status = page.evaluate(
        """() => fetch('/config', {method: 'POST', body: new URLSearchParams({'present.inspection': '1',
             'inspection.min_score': '0.9'})}).then(r => r.status)"""
    )
    assert status == 403
    forged = page.request.post("/tokens", form={"name": "intruder", "scope": "admin"})
    assert forged.status == 403
    assert appliance.services.config.inspection.min_score == 0.4
    assert "intruder" not in {t.name for t in appliance.services.auth.tokens()}


def test_logout(page: Page, appliance: LiveServer) -> None:
    log_in(page, appliance)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    assert "Logged out." in page.get_by_role("status").inner_text()
    page.goto("/results")
    assert "/login" in page.url
    assert page.request.get("/dashboard/panel").status == 401


def test_errors_are_pages_in_the_browser(page: Page, appliance: LiveServer) -> None:
    """A wrong address in the panel is the error page (with the navigation), not a JSON document."""
    log_in(page, appliance)
    answer = page.goto("/no-such-page")
    assert answer is not None and answer.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    assert "There is no such page" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url("**/")


def test_no_script_errors_or_csp_violations() -> None:
    """Every page's scripts and styles load from the appliance itself and run without errors."""
    unexpected = [e for e in CONSOLE_ERRORS if "status of 4" not in e and "status of 503" not in e]
    assert unexpected == []
