"""The inspection screen in real headless Chromium: draw a region on a captured frame in the job
editor, save, activate, trigger, and see the NG verdict with its reason and the counters."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect

from appliance.config import parse_config
from tests.conftest import ADMIN_PASSWORD, LiveServer, start_server, wait_for
from tests.e2e.browser import VIEWPORT, chromium, require_browser, screenshot
from tests.test_inspection_rules import SLOT, frame, job_spec

if TYPE_CHECKING:
    from playwright.sync_api import Page

WAIT_MS = 15_000


@pytest.fixture(scope="module")
def appliance(
    tmp_path_factory: pytest.TempPathFactory, seeded_registry_dir: Path, astronaut: np.ndarray
) -> Iterator[LiveServer]:
    """A triggered line whose camera (a folder) shows a part with a face in region 1 and in region 2."""
    require_browser()
    root = tmp_path_factory.mktemp("ui-inspection")
    data = root / "data"
    shutil.copytree(seeded_registry_dir, data)
    folder = root / "frames"
    folder.mkdir()
    crop = np.ascontiguousarray(astronaut[20:260, 110:350])
    cv2.imwrite(str(folder / "part.png"), frame(crop, 0, 3))
    config = parse_config(
        f'[data]\ndir = "{data}"\n[source]\nkind = "folder"\npath = "{folder}"\nmode = "triggered"\n'
        '[store]\nflush_interval_ms = 20\nsnapshots = "all"\n'
    )
    server = start_server(config)
    server.services.auth.set_first_password(ADMIN_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(appliance: LiveServer) -> Iterator[Page]:
    with chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT, base_url=appliance.url, accept_downloads=True)
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        yield tab
        context.close()


def log_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")


def test_draw_a_region_save_activate_and_see_the_verdict(page: Page, appliance: LiveServer) -> None:
    log_in(page)
    appliance.services.trigger()  # captures a frame for the editor (no job yet: the global rule)
    page.goto("/inspection")
    page.wait_for_selector("#editor-canvas[data-ready='1']")

    spec = job_spec()
    regions = spec["regions"]
    assert isinstance(regions, list)
    regions[1] = {**regions[1], "shape": "rect", "points": [[0, 0], [10, 10]]}  # to be drawn
    page.fill("#job-text", json.dumps(spec))
    page.fill("#editor-region", "2")
    canvas = page.locator("#editor-canvas")
    box = canvas.bounding_box()
    assert box is not None
    scale = box["width"] / (2 * SLOT)
    page.mouse.move(box["x"] + SLOT * scale, box["y"] + SLOT * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 2 * SLOT * scale - 1, box["y"] + 2 * SLOT * scale - 1, steps=5)
    page.mouse.up()
    drawn = json.loads(page.input_value("#job-text"))["regions"][1]
    assert drawn["shape"] == "rect"
    page.get_by_role("button", name="Save job").click()
    page.wait_for_selector("text=Job 7 (cap check) saved as version 1.")

    saved = appliance.services.recipes.get(7).region(2)
    (x1, y1), (x2, y2) = saved.points
    assert abs(x1 - SLOT) <= 3 and abs(y1 - SLOT) <= 3 and abs(x2 - 2 * SLOT) <= 3 and abs(y2 - 2 * SLOT) <= 3

    page.get_by_role("button", name="Activate job 7").click()
    page.wait_for_selector("text=Job 7 is now active.")
    assert appliance.services.switch.number() == 7
    outcome = appliance.services.trigger()
    assert not outcome.ok
    expect(page.locator("#verdict")).to_have_text("NG")  # the screen refreshes itself
    expect(page.locator("#verdict-reasons")).to_contain_text("region 2: forbidden label face")
    expect(page.locator("#counters-0 td").first).to_have_text("2")  # the capture trigger and this one
    screenshot(page, "inspection")

    feeder = appliance.services.feeder
    wait_for(lambda: feeder is not None and feeder.examples == 1)
    writer = appliance.services.writer
    assert writer is not None and writer.flush()
    page.reload()  # the NG part is a hard example now: download it as COCO from the page
    assert "1 judged" in page.inner_html("#h-yield + figure svg")  # the yield chart counts it
    with page.expect_download() as download:
        page.get_by_role("link", name="download COCO").click()
    with zipfile.ZipFile(download.value.path()) as bundle:
        coco = json.loads(bundle.read("annotations.json"))
    assert len(coco["images"]) == 1 and {c["name"] for c in coco["categories"]} == {"face"}

    page.get_by_role("button", name="Reset counters").click()
    page.wait_for_selector("text=Counters reset.")
    assert appliance.services.counters.read().triggers == 0
