"""Credentials: the admin password, API tokens with scopes, and the key that signs UI sessions.

Kept in DATA/auth.json (mode 0600), written atomically. Tokens are 32 random bytes shown once; only
their SHA-256 is stored (a slow hash adds nothing for random secrets of that size). Browser sessions
are listed here too: the signed cookie only names a session, so logout, a password change and "log
out everywhere" end it on the server, and a copied cookie stops working.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance import atomic
from appliance.auth.passwords import check_strength, hash_password, needs_rehash, verify_password
from appliance.errors import BadRequest, Busy, Conflict, NotFound

logger = logging.getLogger(__name__)

SCOPES = ("read", "operate", "admin")  # each includes the ones before it
TOKEN_PREFIX = "eat_"


def scope_allows(granted: str, needed: str) -> bool:
    return SCOPES.index(granted) >= SCOPES.index(needed)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    scope: str
    created: float
    digest: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scope": self.scope, "created": self.created}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthNotSaved(Busy):
    """auth.json could not be written (disk full, read-only): nothing was changed."""


class AuthStore:
    """Every change is a transaction: a new state is computed, written (temp file, fsync, rename,
    directory fsync), and only then becomes the state in memory. A failed write changes nothing."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "auth.json"
        self._lock = threading.Lock()
        self._kdf = threading.Lock()  # one scrypt at a time: each needs 128 MiB
        self._mtime = 0
        data_dir.mkdir(parents=True, exist_ok=True)
        self._data = self._load()

    def _maybe_reload(self) -> None:
        """Pick up changes made by another process (`appliance tokens create` beside a running server)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self.reload()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            data: dict[str, Any] = {"password": None, "tokens": [], "secret": secrets.token_hex(32)}
            try:
                self._save(data)
            except AuthNotSaved as err:  # the first change that can be saved writes it
                logger.error("%s", err)
            return data
        loaded: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        loaded.setdefault("sessions", {})
        self._mtime = self.path.stat().st_mtime_ns
        return loaded

    def _save(self, data: dict[str, Any]) -> None:
        try:
            atomic.write_bytes(self.path, json.dumps(data).encode("utf-8"), 0o600)
        except OSError as err:
            raise AuthNotSaved(
                f"cannot save {self.path.name}: {err.strerror or err}; nothing was changed"
            ) from err
        self._mtime = self.path.stat().st_mtime_ns

    def _commit(self, **changes: Any) -> None:
        """Write the state with `changes`, then adopt it (call with the lock held)."""
        new = {**self._data, **changes}
        self._save(new)
        self._data = new

    def reload(self) -> None:
        with self._lock:
            self._data = self._load()

    @property
    def secret(self) -> str:
        return str(self._data["secret"])

    @property
    def has_password(self) -> bool:
        self._maybe_reload()
        return bool(self._data.get("password"))

    def set_first_password(self, password: str) -> str:
        """First-boot setup: set the admin password and return a new admin token. Only once."""
        check_strength(password)
        with self._kdf:
            hashed = hash_password(password)
        with self._lock:
            if self._data.get("password"):
                raise Conflict("the admin password is already set; log in instead")
            token, info = _new_token("setup", "admin")
            self._commit(password=hashed, tokens=[*self._data["tokens"], info])
        return token

    def change_password(self, old: str, new: str) -> None:
        """Also ends every browser session (the caller starts a new one for whoever changed it)."""
        if not self.check_password(old):
            raise BadRequest("current password is wrong")
        check_strength(new)
        with self._kdf:
            hashed = hash_password(new)
        with self._lock:
            self._commit(password=hashed, sessions={})

    def check_password(self, password: str) -> bool:
        """Verify; a hash made with an older (cheaper) cost is replaced by one at today's cost."""
        stored = self._data.get("password")
        if not stored:
            return False
        with self._kdf:
            if not verify_password(password, str(stored)):
                return False
            hashed = hash_password(password) if needs_rehash(str(stored)) else None
        if hashed is not None:
            with self._lock, contextlib.suppress(AuthNotSaved):  # still a valid login
                if self._data.get("password") == stored:
                    self._commit(password=hashed)
                    logger.info("admin password re-hashed at the current scrypt cost")
        return True

    # --- browser sessions: the cookie names a session; only sessions listed here are valid ---

    def start_session(self, hours: float) -> str:
        sid = secrets.token_urlsafe(24)
        now = time.time()
        with self._lock:
            kept = {k: v for k, v in self._sessions().items() if v > now}
            self._commit(sessions={**kept, sid: now + hours * 3600})
        return sid

    def session_valid(self, sid: object) -> bool:
        if not isinstance(sid, str) or not sid:
            return False
        self._maybe_reload()
        expires = self._sessions().get(sid)
        return expires is not None and expires > time.time()

    def end_session(self, sid: object) -> None:
        with self._lock:
            sessions = self._sessions()
            if isinstance(sid, str) and sid in sessions:
                self._commit(sessions={k: v for k, v in sessions.items() if k != sid})

    def end_all_sessions(self) -> int:
        with self._lock:
            count = len(self._sessions())
            self._commit(sessions={})
        return count

    def _sessions(self) -> dict[str, float]:
        sessions: dict[str, float] = self._data.get("sessions", {})
        return sessions

    # --- API tokens ---

    def create_token(self, name: str, scope: str) -> str:
        name = name.strip()
        if not name:
            raise BadRequest("name: give the token a name (who or what uses it)")
        with self._lock:
            self._maybe_reload_locked()
            if any(t["name"] == name for t in self._data["tokens"]):
                raise Conflict(f"a token named {name!r} exists: pick another name or revoke it first")
            token, info = _new_token(name, scope)
            self._commit(tokens=[*self._data["tokens"], info])
        return token

    def _maybe_reload_locked(self) -> None:
        try:
            if self.path.stat().st_mtime_ns != self._mtime:
                self._data = self._load()
        except FileNotFoundError:
            pass

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo(**t) for t in self._data["tokens"]]

    def revoke(self, token_id: str) -> None:
        with self._lock:
            kept = [t for t in self._data["tokens"] if t["id"] != token_id]
            if len(kept) == len(self._data["tokens"]):
                raise NotFound(f"no token with id {token_id!r}")
            self._commit(tokens=kept)

    def lookup(self, token: str) -> TokenInfo | None:
        self._maybe_reload()
        digest = _digest(token)
        for info in self.tokens():
            if hmac.compare_digest(info.digest, digest):
                return info
        return None


def _new_token(name: str, scope: str) -> tuple[str, dict[str, Any]]:
    if scope not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    info = TokenInfo(secrets.token_hex(4), name, scope, time.time(), _digest(token))
    return token, asdict(info)
