"""Browser sessions end on the server: logout, password change and "log out everywhere"; every UI
form of the Access page and setup answers with a redirect, so a reload repeats nothing."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.e2e.browser import csrf_of, logged_in_client

NEW_PASSWORD = "Another-Horse-Battery-77"


def copy_of(client: httpx.Client, url: str) -> httpx.Client:
    """A second client with the same cookies: a stolen or copied session cookie."""
    return httpx.Client(timeout=60, base_url=url, cookies=dict(client.cookies))


def test_a_copied_cookie_is_refused_after_logout(live_server: LiveServer) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    thief = copy_of(client, live_server.url)
    assert thief.get("/").status_code == 200 and thief.get("/api/v1/status").status_code == 200
    out = client.post("/logout", data={"csrf": client.headers["x-csrf-token"]})
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert thief.get("/").status_code == 303  # back to the login page
    assert thief.get("/api/v1/status").status_code == 401


def test_password_change_ends_the_other_sessions_only(live_server: LiveServer) -> None:
    here = logged_in_client(live_server.url, ADMIN_PASSWORD)
    elsewhere = logged_in_client(live_server.url, ADMIN_PASSWORD)
    form = {"csrf": here.headers["x-csrf-token"], "current": ADMIN_PASSWORD, "new": NEW_PASSWORD}
    changed = here.post("/password", data={**form, "confirm": NEW_PASSWORD})
    assert (changed.status_code, changed.headers["location"]) == (303, "/tokens")
    assert here.get("/tokens").status_code == 200
    assert elsewhere.get("/tokens").status_code == 303
    assert logged_in_client(live_server.url, NEW_PASSWORD).get("/").status_code == 200


def test_log_out_everywhere(live_server: LiveServer) -> None:
    clients = [logged_in_client(live_server.url, ADMIN_PASSWORD) for _ in range(3)]
    first = clients[0]
    done = first.post("/logout/everywhere", data={"csrf": first.headers["x-csrf-token"]})
    assert (done.status_code, done.headers["location"]) == (303, "/login")
    assert all(c.get("/").status_code == 303 for c in clients)
    assert live_server.client().get("/api/v1/status").status_code == 200  # tokens are not sessions


def test_reloading_after_create_token_creates_no_second_token(live_server: LiveServer) -> None:
    client = logged_in_client(live_server.url, ADMIN_PASSWORD)
    form = {"csrf": client.headers["x-csrf-token"], "name": "line-3", "scope": "read"}
    created = client.post("/tokens", data=form)
    assert (created.status_code, created.headers["location"]) == (303, "/tokens")
    shown = client.get("/tokens")
    assert shown.status_code == 200 and 'id="new-token"' in shown.text
    assert "eat_" in shown.text
    reload = client.get("/tokens")  # what a browser's reload does after the redirect
    assert 'id="new-token"' not in reload.text
    assert [t.name for t in live_server.services.auth.tokens()].count("line-3") == 1
    twice = client.post("/tokens", data=form)  # a deliberate resubmit: refused, not duplicated
    assert twice.status_code == 409 and "exists" in twice.text


def test_setup_is_post_redirect_get(fresh_server: LiveServer) -> None:
    client = httpx.Client(timeout=60, base_url=fresh_server.url)
    token = csrf_of(client.get("/setup").text)
    form = {"csrf": token, "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD}
    done = client.post("/setup", data=form)
    assert (done.status_code, done.headers["location"]) == (303, "/setup")
    shown = client.get("/setup")
    assert shown.status_code == 200 and "eat_" in shown.text
    secret = shown.text.split('value="eat_')[1].split('"')[0]
    reply = httpx.get(fresh_server.url + "/api/v1/status", headers={"authorization": f"Bearer eat_{secret}"})
    assert reply.status_code == 200
    assert client.get("/setup").headers["location"] == "/"  # shown once
    assert len(fresh_server.services.auth.tokens()) == 1
