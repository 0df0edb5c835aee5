"""CSRF protection: one random token per session, sent back in a hidden field (or a header for XHR).

Every POST the UI accepts carries it; a POST without the session's token is refused with 403, so a
page on another site cannot make a logged-in browser change anything (SameSite=Strict is the second
line of defence).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request

from appliance.api.bodies import read_body
from appliance.errors import BadRequest

FIELD = "csrf"
HEADER = "x-csrf-token"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024

Form = ImmutableMultiDict[str, str]


def token(request: Request) -> str:
    """The session's token, created on first use."""
    value = request.session.get(FIELD)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        request.session[FIELD] = value
    return value


def renew(request: Request) -> str:
    """A fresh token (after login: a session never keeps a token it had before)."""
    request.session[FIELD] = secrets.token_urlsafe(32)
    return str(request.session[FIELD])


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE


async def read_form(request: Request) -> Form:
    """A url-encoded form body (what every UI form sends), at most MAX_FORM_BYTES."""
    if not is_form(request):
        return ImmutableMultiDict()
    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as err:
        raise BadRequest("form is not UTF-8") from err
    return ImmutableMultiDict(pairs)


def valid(request: Request, form: Form) -> bool:
    """True when the form field (or the X-CSRF-Token header) matches the session's token."""
    expected = request.session.get(FIELD)
    sent = form.get(FIELD) or request.headers.get(HEADER) or ""
    return (
        isinstance(expected, str) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())
    )
