"""Helpers for the UI tests: headless Debian Chromium through Playwright, screenshots, logged-in clients.

Playwright's own browser download does not work here; the tests drive the system's Chromium
(`apt-get install chromium`). Without it (or without the playwright package) the browser tests are
skipped on a developer machine and fail under CI=true, so a missing install step cannot hide.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FloatRect, Locator, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("APPLIANCE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# build/screenshots by default, so a test run leaves the tree clean; `make screenshots` sets
# APPLIANCE_SCREENSHOTS=docs/screenshots to refresh the documentation's copies.
SCREENSHOTS = ROOT / os.environ.get("APPLIANCE_SCREENSHOTS", "build/screenshots")
VIEWPORT = {"width": 1024, "height": 768}  # a 10-inch tablet in landscape
MAX_SHOT_HEIGHT = 1500
START_MARGIN = 140
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def require_browser() -> None:
    """Fail when Playwright or Chromium is missing: `make test` installs both (never a silent skip)."""
    problem = ""
    try:
        import playwright.sync_api  # noqa: F401, PLC0415 the check itself: fail clearly when absent
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if not problem and not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    if problem:
        pytest.fail(problem)


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 after require_browser's clear failure

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str, start: Locator | None = None, height: int = MAX_SHOT_HEIGHT) -> Path:
    """SCREENSHOTS/<name>.png: the page from the top (or from a bit above `start`), at most
    `height` px tall, recompressed."""
    total = int(page.evaluate("() => document.documentElement.scrollHeight"))
    top = 0
    if start is not None:
        box = start.bounding_box()
        assert box is not None
        top = max(0, int(box["y"] + page.evaluate("() => window.scrollY")) - START_MARGIN)
    shown = max(min(total - top, height), VIEWPORT["height"])
    clip: FloatRect = {"x": 0, "y": top, "width": VIEWPORT["width"], "height": shown}
    png = page.screenshot(full_page=True, clip=clip)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # 256-colour palette PNG: a third of the size, text stays sharp (Pillow comes with scikit-image)
    with Image.open(io.BytesIO(png)) as shot:
        shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


def logged_in_client(url: str, password: str) -> httpx.Client:
    """An httpx client holding an admin session cookie (and the session's CSRF token in .headers)."""
    client = httpx.Client(base_url=url, timeout=60)
    token = csrf_of(client.get("/login").text)
    reply = client.post("/login", data={"csrf": token, "password": password, "next": "/"})
    assert reply.status_code == 303 and reply.headers["location"] == "/", reply.text
    client.headers["x-csrf-token"] = csrf_of(client.get("/tokens").text)
    return client
