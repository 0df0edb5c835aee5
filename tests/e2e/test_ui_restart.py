"""The UI's "Restart now" on a real `appliance serve`: the restarting page waits by itself and returns
to the dashboard once the new server process answers, even when no /static file can be loaded after the
restart answer; the browser session survives the restart."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ADMIN_PASSWORD
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, require_browser
from tests.test_restart import START_TIMEOUT_S, serve, write_config


def test_restart_page_reconnects_by_itself(tmp_path: Path, data_dir: Path) -> None:
    require_browser()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 after require_browser's clear failure

    with serve(tmp_path, write_config(tmp_path, data_dir)) as served, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(base_url=served.url, viewport=VIEWPORT)  # type: ignore[arg-type]
            page.set_default_timeout(START_TIMEOUT_S * 1000)
            page.on("dialog", lambda dialog: dialog.accept())  # "Restart the appliance now?"
            page.goto("/login")
            page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/")
            before = served.status()
            assert before is not None
            page.goto("/config")
            page.locator("#f-backend-threads").fill("2")  # a key that takes effect after a restart
            page.locator("#save-config").click()
            # the worst case: the old server is gone before the browser asks for any /static file
            # (the answer's own script and style are inside it), and the new one is not up yet
            page.route("**/static/**", lambda route: route.abort("connectionrefused"))
            page.get_by_role("button", name="Restart now").click()
            page.get_by_role("heading", name="Restarting…").wait_for()
            # restart.js (deferred) puts the GET page in the address bar: a refresh never POSTs again
            page.wait_for_url(served.url + "/restarting", wait_until="commit")
            assert page.get_by_role("heading", name="Restarting…").count() == 1
            page.unroute("**/static/**")
            # restart.js: back on the dashboard by itself
            page.wait_for_url(served.url + "/", wait_until="domcontentloaded")
            assert page.get_by_role("heading", name="Restarting…").count() == 0
            after = served.status()
            assert after is not None and after["pid"] != before["pid"]
            assert "/login" not in page.url  # the session is kept on the server across restarts
        finally:
            browser.close()
