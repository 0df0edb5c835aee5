"""Who may see a UI page: nobody before first-boot setup, then only a logged-in admin session.

`page` guards pages (redirects to /setup or /login), `xhr` guards the small endpoints scripts call
(answers 401/403 JSON). Both check the CSRF token on every POST and leave the parsed form on
`request.state.form`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from appliance.api import csrf
from appliance.api.auth import SCOPE_ATTRIBUTE
from appliance.api.ui.views import error_page, json_error, logged_in, redirect
from appliance.auth.store import AuthStore

Endpoint = Callable[[Request], Awaitable[Response]]
FORGED = (
    "This form was not sent by this appliance's pages (missing or stale security token). "
    "Reload the page and try again."
)


def _auth(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.auth
    return store


async def _refusal(request: Request, as_json: bool) -> Response | None:
    """The response refusing this request, or None when it may go ahead."""
    if not _auth(request).has_password:
        return json_error(401, "set the admin password first") if as_json else redirect("/setup")
    if not logged_in(request):
        if as_json:
            return json_error(401, "log in again")
        target = request.url.path if request.method == "GET" else "/"
        query = f"?{request.url.query}" if request.url.query and request.method == "GET" else ""
        return redirect("/login?next=" + quote(target + query, safe=""))
    return await check_post(request, as_json)


async def check_post(request: Request, as_json: bool) -> Response | None:
    """For a POST: parse the form onto request.state.form and refuse it (403) without a valid token."""
    form = await csrf.read_form(request)
    request.state.form = form
    if request.method == "POST" and not csrf.valid(request, form):
        return json_error(403, FORGED) if as_json else error_page(request, 403, FORGED)
    return None


def _guard(as_json: bool) -> Callable[[Endpoint], Endpoint]:
    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            refusal = await _refusal(request, as_json)
            return refusal if refusal is not None else await endpoint(request)

        setattr(guarded, SCOPE_ATTRIBUTE, "admin")
        return guarded

    return decorate


page = _guard(as_json=False)
xhr = _guard(as_json=True)
