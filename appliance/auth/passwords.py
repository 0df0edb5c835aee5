"""Password hashing (scrypt from the standard library) and the strength rule for the admin password."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from appliance.errors import BadRequest

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
MIN_LENGTH = 10
MIN_CLASSES = 2
COMMON = frozenset({"password123", "1234567890", "qwertyuiop", "administrator", "changeme123", "letmein123"})


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encoded[0]}${encoded[1]}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def check_strength(password: str) -> None:
    """Raise BadRequest saying what is missing when a password is too weak."""
    classes = sum(
        any(test(c) for c in password)
        for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    )
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"password too short: use at least {MIN_LENGTH} characters")
    if classes < MIN_CLASSES:
        raise BadRequest("password too simple: mix letters with digits, capitals or symbols")
    if password.lower() in COMMON or len(set(password)) < 4:
        raise BadRequest("password too easy to guess")
