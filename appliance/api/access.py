"""First-boot setup and API tokens over HTTP."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appliance.api.auth import open_route, requires
from appliance.auth.store import AuthStore
from appliance.errors import BadRequest, UnsupportedMediaType

MAX_JSON_BYTES = 64 * 1024


async def json_body(request: Request) -> dict[str, Any]:
    """A small JSON object body, or a clear 4xx."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise UnsupportedMediaType("send application/json")
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise BadRequest("JSON body too large")
    try:
        data = json.loads(raw or b"{}")
    except json.JSONDecodeError as err:
        raise BadRequest(f"body is not valid JSON: {err.msg} at position {err.pos}") from err
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def auth_of(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.auth
    return store


@open_route
async def setup_state(request: Request) -> Response:
    return JSONResponse({"required": not auth_of(request).has_password})


@open_route
async def setup(request: Request) -> Response:
    data = await json_body(request)
    password = data.get("password")
    if not isinstance(password, str):
        raise BadRequest("password: a string is required")
    # scrypt at OWASP's cost takes a while: off the event loop
    token = await run_in_threadpool(auth_of(request).set_first_password, password)
    return JSONResponse({"token": token, "scope": "admin"}, status_code=201)


@requires("admin")
async def list_tokens(request: Request) -> Response:
    return JSONResponse({"tokens": [t.public() for t in auth_of(request).tokens()]})


@requires("admin")
async def create_token(request: Request) -> Response:
    data = await json_body(request)
    name, scope = data.get("name"), data.get("scope", "read")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name: a non-empty string is required")
    token = auth_of(request).create_token(name.strip()[:64], str(scope))
    info = auth_of(request).lookup(token)
    assert info is not None
    return JSONResponse({**info.public(), "token": token}, status_code=201)


@requires("admin")
async def revoke_token(request: Request) -> Response:
    auth_of(request).revoke(request.path_params["token_id"])
    return Response(status_code=204)
