"""The error handlers on a tiny app: domain errors keep their status, a bug is a logged 500 JSON."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.api.errors import HANDLERS
from appliance.errors import Conflict
from tests.conftest import LiveServer


async def buggy(request: Request) -> Response:
    raise RuntimeError("a bug")


async def conflict(request: Request) -> Response:
    raise Conflict("not now")


def app() -> Starlette:
    routes = [
        Route("/bug", buggy, methods=["GET"]),
        Route("/conflict", conflict, methods=["GET"]),
        Route("/conflict", conflict, methods=["DELETE"]),
    ]
    return Starlette(routes=routes, exception_handlers=HANDLERS)


def call(method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)

    return asyncio.run(go())


def test_a_bug_is_a_logged_500_json(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="appliance.api.errors"):
        reply = call("GET", "/bug")
    assert reply.status_code == 500 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": "internal error (logged on the appliance)"}
    assert "GET /bug failed: RuntimeError: a bug" in caplog.text


def test_domain_errors_and_405_allow() -> None:
    reply = call("GET", "/conflict")
    assert reply.status_code == 409 and reply.json() == {"error": "not now"}
    reply = call("POST", "/conflict")
    assert reply.status_code == 405 and reply.headers["allow"] == "DELETE, GET, HEAD"
    assert call("GET", "/nowhere").json() == {"error": "Not Found"}


HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_gets_error_pages_the_api_keeps_json(live_server: LiveServer) -> None:
    """UI paths asked for as HTML answer the error page; API paths stay JSON whatever Accept says."""
    with live_server.client(token="") as browser:
        missing = browser.get("/no-such-page", headers=HTML)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("text/html")
        assert "There is no such page on this appliance." in missing.text
        assert "<h1>Not found</h1>" in missing.text
        wrong = browser.get("/logout", headers=HTML)
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        assert "<!doctype html>" in wrong.text
        assert browser.get("/no-such-page").json() == {"error": "Not Found"}  # no Accept: text/html
        api = browser.get("/api/v1/no-such-route", headers=HTML)
        assert api.status_code == 404
        assert api.json() == {"error": "Not Found"}
        assert (
            browser.get("/v2/models/nope", headers=HTML)
            .headers["content-type"]
            .startswith("application/json")
        )
