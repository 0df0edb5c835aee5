"""First-boot setup and API tokens over HTTP."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import open_route, requires
from appliance.api.bodies import JSONResponse, json_object
from appliance.auth.store import SCOPES, AuthStore
from appliance.errors import BadRequest, Conflict

MAX_TOKEN_NAME = 64


def auth_of(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.auth
    return store


@open_route
async def setup_state(request: Request) -> Response:
    return JSONResponse({"required": not auth_of(request).has_password})


@open_route
async def setup(request: Request) -> Response:
    if auth_of(request).has_password:  # before the body is judged: once set, setup is over
        raise Conflict("the admin password is already set; log in instead")
    data = await json_object(request)
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
    data = await json_object(request)
    name, scope = data.get("name"), data.get("scope", "read")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TOKEN_NAME:
        raise BadRequest(f"name: a non-empty string of at most {MAX_TOKEN_NAME} characters is required")
    if scope not in SCOPES:
        raise BadRequest(f"scope: one of {', '.join(SCOPES)}")
    token = auth_of(request).create_token(name.strip(), scope)
    info = auth_of(request).lookup(token)
    assert info is not None
    return JSONResponse({**info.public(), "token": token}, status_code=201)


@requires("admin")
async def revoke_token(request: Request) -> Response:
    token_id = request.path_params["token_id"]
    if request.state.principal.key == f"token:{token_id}":
        raise Conflict("this request is made with that token: revoke it with another admin token")
    auth_of(request).revoke(token_id)
    return Response(status_code=204)
