"""Rendering pages: the shared template context, flash messages, security headers, error pages."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from appliance import __version__
from appliance.api import csrf
from appliance.api.bodies import JSONResponse

NAV = (
    ("/", "Dashboard"),
    ("/live", "Live view"),
    ("/inspection", "Inspection"),
    ("/results", "Results"),
    ("/models", "Models"),
    ("/config", "Configuration"),
    ("/tokens", "Access"),
    ("/system", "System"),
)


def content_security_policy(script: str = "", style: str = "") -> str:
    """The pages' policy: everything from this server only; `script`/`style` add sources (hashes)."""
    return (
        f"default-src 'self'; img-src 'self' data: blob:; style-src 'self'{style and ' ' + style}; "
        f"script-src 'self'{script and ' ' + script}; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


CSP = content_security_policy()
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
FLASH_KEY = "flash"
MAX_FLASHES = 5


def logged_in(request: Request) -> bool:
    """An admin session the server still lists (ended by logout, password change, log out everywhere)."""
    return request.session.get("user") == "admin" and request.app.state.auth.session_valid(
        request.session.get("sid")
    )


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A message shown once on the next page (kind: ok or error)."""
    queued = list(request.session.get(FLASH_KEY, []))[-(MAX_FLASHES - 1) :]
    request.session[FLASH_KEY] = [*queued, {"text": text, "kind": kind}]


def _active(path: str) -> str:
    matches = [href for href, _ in NAV if href != "/" and (path == href or path.startswith(href + "/"))]
    return matches[0] if matches else "/"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    csp: str = CSP,
) -> Response:
    """A full page from `name` (which extends base.html); `csp` for a page that embeds its files."""
    templates: Jinja2Templates = request.app.state.templates
    base = {
        "version": __version__,
        "csrf": csrf.token(request),
        "user": logged_in(request),
        "nav": NAV,
        "active": _active(request.url.path),
        "flashes": request.session.pop(FLASH_KEY, []),
    }
    return templates.TemplateResponse(
        request,
        name,
        {**base, **(context or {})},
        status_code=status,
        headers={**SECURITY_HEADERS, "content-security-policy": csp},
    )


def fragment(request: Request, name: str, context: dict[str, Any]) -> Response:
    """A partial (`_name.html`) for a page that refreshes part of itself."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def json_error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers={"cache-control": "no-store"})


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, //x, \\x) goes to /."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target
