"""First-boot setup, login and logout: one admin, password only, the session in a signed cookie.

The cookie only names a session that the auth store lists; logout ends it there. Every form answers
with a redirect (post/redirect/get): the setup token is shown by the GET that follows, once.
"""

from __future__ import annotations

import logging
import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api import csrf
from appliance.api.context import config_view
from appliance.api.ui.guard import check_post, page
from appliance.api.ui.state import ui_state
from appliance.api.ui.views import flash, logged_in, redirect, render, safe_next
from appliance.auth.passwords import MIN_LENGTH
from appliance.auth.store import AuthNotSaved, AuthStore
from appliance.errors import BadRequest, Conflict

logger = logging.getLogger(__name__)


def _auth(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.auth
    return store


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


REVEAL_KEY = "reveal"  # a secret shown once by the GET after the POST that made it


def start_session(request: Request) -> None:
    """A new session for the admin: nothing from before the login survives (no fixation)."""
    hours = config_view(request).config.auth.session_hours
    sid = _auth(request).start_session(hours)  # AuthNotSaved: the caller answers 503
    request.session.clear()
    request.session["user"] = "admin"
    request.session["sid"] = sid
    csrf.renew(request)


def end_session(request: Request) -> None:
    _auth(request).end_session(request.session.get("sid"))
    request.session.clear()


async def setup_form(request: Request) -> Response:
    if _auth(request).has_password:
        token = request.session.pop(REVEAL_KEY, None) if logged_in(request) else None
        if token:
            return render(request, "setup_done.html", {"token": token})
        return redirect("/" if logged_in(request) else "/login")
    return render(request, "setup.html", {"min_length": MIN_LENGTH})


async def setup(request: Request) -> Response:
    refusal = await check_post(request, as_json=False)
    if refusal is not None:
        return refusal
    if _auth(request).has_password:
        flash(request, "The admin password is already set: log in.", "error")
        return redirect("/login")
    form = request.state.form
    password, again = form.get("password", ""), form.get("confirm", "")
    context = {"min_length": MIN_LENGTH}
    if password != again:
        return render(request, "setup.html", {**context, "error": "The two passwords differ."}, 400)
    try:
        token = await run_in_threadpool(_auth(request).set_first_password, password)
    except (BadRequest, AuthNotSaved) as err:
        return render(request, "setup.html", {**context, "error": _sentence(err)}, err.status)
    except Conflict:
        return redirect("/login")
    logger.info("admin password set at first boot from %s", _client(request))
    return await _logged_in_after_setup(request, token)


async def _logged_in_after_setup(request: Request, token: str) -> Response:
    try:
        await run_in_threadpool(start_session, request)
    except AuthNotSaved as err:
        flash(request, f"The password is set, but {err}. Log in when there is space again.", "error")
        return redirect("/login")
    request.session[REVEAL_KEY] = token  # shown by the GET /setup that follows, once
    return redirect("/setup")


def _sentence(err: Exception) -> str:
    text = str(err)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def login_form(request: Request) -> Response:
    if not _auth(request).has_password:
        return redirect("/setup")
    if logged_in(request):
        return redirect(safe_next(request.query_params.get("next")))
    return render(request, "login.html", {"next": safe_next(request.query_params.get("next"))})


async def login(request: Request) -> Response:
    refusal = await check_post(request, as_json=False)
    if refusal is not None:
        return refusal
    if not _auth(request).has_password:
        return redirect("/setup")
    form, backoff, client = request.state.form, ui_state(request).backoff, _client(request)
    target = safe_next(form.get("next"))
    wait = backoff.wait(client)
    if wait > 0:
        return _too_soon(request, target, wait)
    if not await run_in_threadpool(_auth(request).check_password, form.get("password", "")):
        wait = backoff.failed(client)
        logger.warning("failed admin login from %s", client)
        message = "Wrong password." + (f" Wait {math.ceil(wait)} s before the next try." if wait else "")
        return render(request, "login.html", {"next": target, "error": message}, 401)
    backoff.succeeded(client)
    try:
        await run_in_threadpool(start_session, request)
    except AuthNotSaved as err:
        return render(request, "login.html", {"next": target, "error": _sentence(err)}, err.status)
    logger.info("admin logged in from %s", client)
    return redirect(target)


def _too_soon(request: Request, target: str, wait: float) -> Response:
    seconds = math.ceil(wait)
    message = f"Too many wrong passwords from this device. Try again in {seconds} s."
    response = render(request, "login.html", {"next": target, "error": message}, 429)
    response.headers["retry-after"] = str(seconds)
    return response


@page
async def logout(request: Request) -> Response:
    await run_in_threadpool(end_session, request)
    flash(request, "Logged out.")
    return redirect("/login")


@page
async def logout_everywhere(request: Request) -> Response:
    """Ends every browser session, this one included (API tokens are revoked one by one)."""
    count = await run_in_threadpool(_auth(request).end_all_sessions)
    request.session.clear()
    logger.info("all %d browser sessions ended from %s", count, _client(request))
    flash(request, f"Logged out everywhere ({count} session{'s' if count != 1 else ''} ended).")
    return redirect("/login")
