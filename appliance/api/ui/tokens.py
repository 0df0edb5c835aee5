"""Access: API tokens (create — shown once —, list, revoke) and the admin password.

Post/redirect/get: a new token is put in the session for the one GET that follows, so reloading the
page never creates a second token. A password change ends every other browser session.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.ui.guard import page
from appliance.api.ui.logins import REVEAL_KEY, start_session
from appliance.api.ui.views import flash, redirect, render
from appliance.auth.passwords import MIN_LENGTH
from appliance.auth.store import SCOPES, AuthStore
from appliance.errors import ApplianceError

logger = logging.getLogger(__name__)
SCOPE_HELP = {
    "read": "status and results",
    "operate": "also inference, triggers and jobs (PLCs, line software)",
    "admin": "also models, configuration and tokens",
}


def _auth(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.auth
    return store


def _page(request: Request, status: int = 200, **extra: Any) -> Response:
    found = sorted(_auth(request).tokens(), key=lambda t: t.created, reverse=True)
    tokens = [(t, time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created))) for t in found]
    context = {"tokens": tokens, "scopes": SCOPES, "scope_help": SCOPE_HELP, "min_length": MIN_LENGTH}
    return render(request, "tokens.html", {**context, **extra}, status)


@page
async def listing(request: Request) -> Response:
    reveal = request.session.pop(REVEAL_KEY, None)
    if isinstance(reveal, dict):
        return _page(request, new_token=reveal.get("token"), new_name=reveal.get("name"))
    return _page(request)


@page
async def create(request: Request) -> Response:
    form = request.state.form
    name, scope = form.get("name", "").strip()[:64], form.get("scope", "read")
    if not name:
        return _page(request, 400, token_error="Give the token a name (who or what uses it).")
    try:
        token = await run_in_threadpool(_auth(request).create_token, name, scope)
    except ApplianceError as err:
        return _page(request, err.status, token_error=str(err))
    logger.info("API token %r (%s) created from the web UI", name, scope)
    request.session[REVEAL_KEY] = {"token": token, "name": name}
    return redirect("/tokens")


@page
async def revoke(request: Request) -> Response:
    token_id = request.path_params["token_id"]
    try:
        _auth(request).revoke(token_id)
    except ApplianceError as err:
        flash(request, str(err), "error")
    else:
        logger.info("API token %s revoked from the web UI", token_id)
        flash(request, "Token revoked: clients using it are refused from now on.")
    return redirect("/tokens")


@page
async def change_password(request: Request) -> Response:
    form = request.state.form
    new = form.get("new", "")
    if new != form.get("confirm", ""):
        return _page(request, 400, password_error="The two new passwords differ.")
    try:
        await run_in_threadpool(_auth(request).change_password, form.get("current", ""), new)
    except ApplianceError as err:
        return _page(request, err.status, password_error=str(err).capitalize() + ".")
    logger.info("admin password changed from the web UI: every other browser session ended")
    try:
        await run_in_threadpool(start_session, request)  # this browser stays logged in
    except ApplianceError as err:
        flash(request, f"Password changed, but {err}: log in again.", "error")
        return redirect("/login")
    flash(request, "Password changed. Every other browser session was logged out.")
    return redirect("/tokens")
