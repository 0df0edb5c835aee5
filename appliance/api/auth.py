"""Who is asking, and may they: bearer tokens with scopes, UI sessions, rate limits.

Every API endpoint declares the scope it needs with `@requires(scope)`; `open_route` marks the few
that need none (health, first-boot setup). A test walks every route and checks it has one of the two.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appliance.api import csrf
from appliance.api.context import config_view
from appliance.auth.store import AuthStore, scope_allows

Endpoint = Callable[[Request], Awaitable[Response]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EMPTY: csrf.Form = ImmutableMultiDict()

SCOPE_ATTRIBUTE = "required_scope"  # what an endpoint needs; openapi.py and tests read it


@dataclass(frozen=True)
class Principal:
    kind: str  # "token", "session" or "anonymous"
    scope: str
    name: str
    key: str  # rate-limit key


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authenticate(request: Request) -> Principal | None:
    store: AuthStore = request.app.state.auth
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        info = store.lookup(header[7:].strip())
        return Principal("token", info.scope, info.name, f"token:{info.id}") if info else None
    session = request.session if "session" in request.scope else {}
    if session.get("user") == "admin" and store.session_valid(session.get("sid")):
        return Principal("session", "admin", "admin", f"ip:{_client_ip(request)}")
    return None


def _deny(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def identify(request: Request, scope: str) -> Response | Principal:
    """Who is asking (token, session or anonymous reader), or the 401 answer."""
    principal = authenticate(request)
    if principal is not None:
        return principal
    if request.headers.get("authorization"):
        return _deny(401, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
    if scope == "read" and config_view(request).config.auth.anonymous_read:
        return Principal("anonymous", "read", "anonymous", f"ip:{_client_ip(request)}")
    store: AuthStore = request.app.state.auth
    if not store.has_password:
        return _deny(401, "set the admin password first: open the web UI or POST /api/v1/setup")
    return _deny(401, f"this needs a token with scope '{scope}'", {"WWW-Authenticate": "Bearer"})


def check(request: Request, scope: str) -> Response | Principal:
    """The principal allowed to do `scope`, or the response refusing it (401, 403, 429)."""
    principal = identify(request, scope)
    if isinstance(principal, Response):
        return principal
    if not scope_allows(principal.scope, scope):
        return _deny(403, f"token scope '{principal.scope}' does not allow '{scope}'")
    if principal.kind == "session" and request.method not in SAFE_METHODS and not csrf.valid(request, EMPTY):
        return _deny(403, "browser session without a CSRF token: send the X-CSRF-Token header")
    wait = request.app.state.limiter.take(principal.key)
    if wait > 0:
        return _deny(429, "too many requests", {"Retry-After": str(math.ceil(wait))})
    return principal


def requires(scope: str) -> Callable[[Endpoint], Endpoint]:
    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            outcome = check(request, scope)
            if isinstance(outcome, Response):
                return outcome
            request.state.principal = outcome
            return await endpoint(request)

        setattr(guarded, SCOPE_ATTRIBUTE, scope)
        return guarded

    return decorate


def open_route(endpoint: Endpoint) -> Endpoint:
    """Marks an endpoint that needs no credentials (health, setup)."""
    setattr(endpoint, SCOPE_ATTRIBUTE, None)
    return endpoint
