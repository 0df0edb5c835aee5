"""Credentials: the admin password, API tokens with scopes, and the key that signs UI sessions.

Kept in DATA/auth.json (mode 0600), written atomically. Tokens are 32 random bytes shown once; only
their SHA-256 is stored (a slow hash adds nothing for random secrets of that size).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.auth.passwords import check_strength, hash_password, verify_password
from appliance.errors import BadRequest, Conflict, NotFound

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


class AuthStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "auth.json"
        self._lock = threading.Lock()
        self._mtime = 0
        data_dir.mkdir(parents=True, exist_ok=True)
        self._data = self._load()
        self._mtime = self.path.stat().st_mtime_ns

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
            self._save(data)
            return data
        loaded: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return loaded

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime_ns

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
        with self._lock:
            if self._data.get("password"):
                raise Conflict("the admin password is already set; log in instead")
            self._data["password"] = hash_password(password)
            token = self._new_token("setup", "admin")
            self._save(self._data)
        return token

    def change_password(self, old: str, new: str) -> None:
        if not self.check_password(old):
            raise BadRequest("current password is wrong")
        check_strength(new)
        with self._lock:
            self._data["password"] = hash_password(new)
            self._save(self._data)

    def check_password(self, password: str) -> bool:
        stored = self._data.get("password")
        return bool(stored) and verify_password(password, str(stored))

    def _new_token(self, name: str, scope: str) -> str:
        if scope not in SCOPES:
            raise BadRequest(f"scope must be one of {', '.join(SCOPES)}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(secrets.token_hex(4), name, scope, time.time(), _digest(token))
        self._data["tokens"] = [*self._data["tokens"], asdict(info)]
        return token

    def create_token(self, name: str, scope: str) -> str:
        with self._lock:
            token = self._new_token(name, scope)
            self._save(self._data)
        return token

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo(**t) for t in self._data["tokens"]]

    def revoke(self, token_id: str) -> None:
        with self._lock:
            kept = [t for t in self._data["tokens"] if t["id"] != token_id]
            if len(kept) == len(self._data["tokens"]):
                raise NotFound(f"no token with id {token_id!r}")
            self._data["tokens"] = kept
            self._save(self._data)

    def lookup(self, token: str) -> TokenInfo | None:
        self._maybe_reload()
        digest = _digest(token)
        for info in self.tokens():
            if hmac.compare_digest(info.digest, digest):
                return info
        return None
