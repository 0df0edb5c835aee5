"""First-boot setup, login and logout: one admin, password only, the session in a signed cookie."""

from __future__ import annotations

import logging
import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api import csrf
from appliance.api.ui.guard import check_post, page
from appliance.api.ui.state import ui_state
from appliance.api.ui.views import flash, logged_in, redirect, render, safe_next
from appliance.auth.passwords import MIN_LENGTH
from appliance.auth.store import AuthStore
from appliance.errors import BadRequest, Conflict

logger = logging.getLogger(__name__)


def _auth(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.auth
    return store


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _start_session(request: Request) -> None:
    """A new session for the admin: nothing from before the login survives (no fixation)."""
    request.session.clear()
    request.session["user"] = "admin"
    csrf.renew(request)


async def setup_form(request: Request) -> Response:
    if _auth(request).has_password:
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
    except BadRequest as err:
        return render(request, "setup.html", {**context, "error": str(err).capitalize() + "."}, 400)
    except Conflict:
        return redirect("/login")
    logger.info("admin password set at first boot from %s", _client(request))
    _start_session(request)
    return render(request, "setup_done.html", {"token": token}, 201)


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
    logger.info("admin logged in from %s", client)
    _start_session(request)
    return redirect(target)


def _too_soon(request: Request, target: str, wait: float) -> Response:
    seconds = math.ceil(wait)
    message = f"Too many wrong passwords from this device. Try again in {seconds} s."
    response = render(request, "login.html", {"next": target, "error": message}, 429)
    response.headers["retry-after"] = str(seconds)
    return response


@page
async def logout(request: Request) -> Response:
    request.session.clear()
    flash(request, "Logged out.")
    return redirect("/login")
