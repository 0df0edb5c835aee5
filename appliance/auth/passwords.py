"""Password hashing (scrypt from the standard library) and the strength rule for the admin password.

Cost: OWASP's minimum for scrypt (Password Storage Cheat Sheet): N=2^17, r=8, p=1, i.e. 128 MiB and
a few tenths of a second per hash on a board; a hash stored with a lower cost is replaced at the next
successful login (`needs_rehash`). Strength: zxcvbn (Dropbox's estimator; its dictionaries hold the
30,000 most common passwords, names, words and keyboard patterns) must score the password at least
MIN_SCORE of 4, on top of a minimum length.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from zxcvbn import zxcvbn

from appliance.errors import BadRequest

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
SCRYPT_MAXMEM = 256 * 1024 * 1024  # 128 * N * r = 128 MiB, plus headroom (the default cap is 32 MiB)
SALT_BYTES = 16
MIN_LENGTH = 10
MAX_LENGTH = 256  # zxcvbn's time grows with the length; nobody types more
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline slow-hash attacks"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=SCRYPT_MAXMEM)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encoded[0]}${encoded[1]}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return None
        return int(n), int(r), int(p), base64.b64decode(salt), base64.b64decode(digest)
    except ValueError:
        return None


def verify_password(password: str, stored: str) -> bool:
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    try:
        candidate = _scrypt(password, salt, n, r, p)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, digest)


def needs_rehash(stored: str) -> bool:
    """True when the stored hash was made with less than today's cost."""
    parsed = _parse(stored)
    return parsed is not None and parsed[:3] < (SCRYPT_N, SCRYPT_R, SCRYPT_P)


def check_strength(password: str) -> None:
    """Raise BadRequest saying what is wrong when a password is too weak."""
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"password too short: use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"password too long: at most {MAX_LENGTH} characters")
    verdict = zxcvbn(password, user_inputs=["appliance", "admin", "edge"])
    if verdict["score"] < MIN_SCORE:
        feedback = verdict["feedback"]
        hint = feedback.get("warning") or " ".join(feedback.get("suggestions", [])) or "add more words"
        raise BadRequest(f"password too easy to guess ({hint.rstrip('.')})")
