"""Auth: first-boot setup, scopes on every route, tokens, rate limits — on a real server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from appliance.api.app import API_ROUTES
from appliance.auth.passwords import check_strength, hash_password, verify_password
from appliance.auth.ratelimit import RateLimiter
from appliance.auth.store import AuthNotSaved, AuthStore
from appliance.cli import main
from appliance.config import parse_config
from appliance.errors import BadRequest
from tests.conftest import ADMIN_PASSWORD, LiveServer, config_for, start_server, tmpfs

OPEN = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/setup"),
    ("POST", "/api/v1/setup"),
    ("GET", "/api/openapi.json"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
}


def routes() -> list[tuple[str, str, str | None]]:
    found = []
    for route in API_ROUTES:
        assert isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            assert hasattr(route.endpoint, "required_scope"), f"{method} {route.path} declares no scope"
            found.append((method, route.path, route.endpoint.required_scope))
    return found


def test_every_route_declares_a_scope_and_only_the_known_ones_are_open() -> None:
    table = routes()
    assert {(m, p) for m, p, scope in table if scope is None} == OPEN


SKIP_IN_MATRIX = {"/api/v1/debug/profile"}  # samples for seconds; covered in test_observability


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    for name in ("{token_id}", "{job_id}", "{name}", "{model}", "{version}"):
        path = path.replace(name, "1" if name == "{version}" else "nope")
    return client.request(method, path, content=b"{}", headers={"content-type": "application/json"})


def test_scope_matrix(live_server: LiveServer, data_dir: Path) -> None:
    store = AuthStore(data_dir)  # a second handle, like the CLI beside a running server
    tokens = {scope: store.create_token(f"t-{scope}", scope) for scope in ("read", "operate", "admin")}
    order = ("read", "operate", "admin")
    for method, path, needed in routes():
        if needed is None:
            continue
        anonymous = call(live_server.client(""), method, path)
        assert anonymous.status_code == 401, (method, path)
        wrong = call(live_server.client("eat_not-a-real-token"), method, path)
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        for scope, token in tokens.items():
            allowed = order.index(scope) >= order.index(needed)
            if allowed and path in SKIP_IN_MATRIX:
                continue
            reply = call(live_server.client(token), method, path)
            if allowed:
                assert reply.status_code not in (401, 403), (method, path, scope, reply.text)
            else:
                assert reply.status_code == 403, (method, path, scope)
                assert needed in reply.json()["error"]


def test_first_boot_setup(fresh_server: LiveServer) -> None:
    url = fresh_server.url
    assert httpx.get(f"{url}/api/v1/setup").json() == {"required": True}
    before = httpx.post(f"{url}/api/v1/infer", content=b"x", headers={"content-type": "image/png"})
    assert before.status_code == 401 and "set the admin password first" in before.json()["error"]
    weak = httpx.post(f"{url}/api/v1/setup", json={"password": "short"}, timeout=60)
    assert weak.status_code == 400 and "too short" in weak.json()["error"]
    wrong_type = httpx.post(f"{url}/api/v1/setup", content=b"password=x", timeout=60)
    assert wrong_type.status_code == 415
    done = httpx.post(f"{url}/api/v1/setup", json={"password": ADMIN_PASSWORD}, timeout=60)
    assert done.status_code == 201 and done.json()["scope"] == "admin"
    assert httpx.get(f"{url}/api/v1/setup").json() == {"required": False}
    again = httpx.post(f"{url}/api/v1/setup", json={"password": "Another-Pass-99"}, timeout=60)
    assert again.status_code == 409
    token = done.json()["token"]
    listed = httpx.get(f"{url}/api/v1/tokens", headers={"authorization": f"Bearer {token}"}).json()
    assert [t["name"] for t in listed["tokens"]] == ["setup"]
    stored = json.loads((fresh_server.services.config.data_dir / "auth.json").read_text())
    assert token not in json.dumps(stored) and ADMIN_PASSWORD not in json.dumps(stored)


def test_token_lifecycle_over_http(live_server: LiveServer) -> None:
    admin = live_server.client()
    created = admin.post("/api/v1/tokens", json={"name": "PLC line 3", "scope": "operate"})
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    assert live_server.client(token).get("/api/v1/status").status_code == 200
    assert admin.post("/api/v1/tokens", json={"name": "x", "scope": "root"}).status_code == 400
    assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    assert live_server.client(token).get("/api/v1/status").status_code == 401
    assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 404


def test_rate_limit_answers_429_with_retry_after(data_dir: Path) -> None:
    # one token per 100 s: however slow the machine, the 4th request finds the bucket empty
    limits = "[auth]\nrate_per_s = 0.01\nburst = 3\nanonymous_read = true\n"
    server = start_server(config_for(data_dir, limits))
    try:
        codes = [httpx.get(f"{server.url}/api/v1/status") for _ in range(5)]
        assert [c.status_code for c in codes[:3]] == [200, 200, 200]
        assert codes[3].status_code == 429 and int(codes[3].headers["retry-after"]) >= 1
        assert httpx.get(f"{server.url}/api/v1/health").status_code == 200  # health is never limited
    finally:
        server.stop()


def test_token_bucket_refills() -> None:
    limiter = RateLimiter(rate_per_s=2, burst=2)
    assert limiter.take("a", now=0) == 0 and limiter.take("a", now=0) == 0
    assert limiter.take("a", now=0) == pytest.approx(0.5)
    assert limiter.take("b", now=0) == 0  # per key
    assert limiter.take("a", now=0.5) == 0


def test_passwords() -> None:
    stored = hash_password(ADMIN_PASSWORD)
    assert verify_password(ADMIN_PASSWORD, stored) and not verify_password("wrong", stored)
    assert stored.startswith("scrypt$") and ADMIN_PASSWORD not in stored
    assert stored.split("$")[1:4] == ["131072", "8", "1"]  # OWASP's minimum: N=2^17, r=8, p=1
    for weak, why in (("abc", "too short"), ("abcdefghijkl", "too easy"), ("aaaaaaaaaaA1", "too easy")):
        with pytest.raises(BadRequest, match=why):
            check_strength(weak)


@pytest.mark.parametrize(
    "common", ["Password1!", "qwertyuiop1", "Summer2024!", "iloveyou123", "P@ssw0rd2024", "Administrator1"]
)
def test_common_passwords_are_refused(common: str) -> None:
    with pytest.raises(BadRequest, match="too easy to guess"):
        check_strength(common)


def test_an_old_cheap_hash_is_replaced_at_login(tmp_path: Path) -> None:
    store = AuthStore(tmp_path)
    store.set_first_password(ADMIN_PASSWORD)
    data = json.loads(store.path.read_text())
    salt = os.urandom(16)
    cheap = hashlib.scrypt(ADMIN_PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(cheap).decode()
    data["password"] = f"scrypt$16384$8$1${encoded[0]}${encoded[1]}"
    store.path.write_text(json.dumps(data))
    store.reload()
    assert store.check_password(ADMIN_PASSWORD)
    rehashed = json.loads(store.path.read_text())["password"]
    assert rehashed.startswith("scrypt$131072$8$1$")
    assert AuthStore(tmp_path).check_password(ADMIN_PASSWORD) and not store.check_password("wrong-Password-9")


def test_token_names_are_unique(live_server: LiveServer) -> None:
    api = live_server.client()
    assert api.post("/api/v1/tokens", json={"name": "plc", "scope": "read"}).status_code == 201
    again = api.post("/api/v1/tokens", json={"name": "plc", "scope": "operate"})
    assert again.status_code == 409 and "plc" in again.json()["error"]
    assert [t.name for t in live_server.services.auth.tokens()].count("plc") == 1


def test_tokens_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--scope", "read", "--name", "dash", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("eat_")
    assert main(["tokens", "list", "--data-dir", str(tmp_path)]) == 0
    line = capsys.readouterr().out
    assert "read" in line and "dash" in line and token not in line
    token_id = line.split()[0]
    assert main(["tokens", "revoke", token_id, "--data-dir", str(tmp_path)]) == 0
    assert AuthStore(tmp_path).lookup(token) is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (CI runs as root)."""
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)
    return filler


def test_setup_on_a_full_disk_changes_nothing_and_works_once_there_is_space(small_disk: Path) -> None:
    store = AuthStore(small_disk)
    before = store.path.read_bytes()
    filler = fill(small_disk)
    with pytest.raises(AuthNotSaved, match="nothing was changed"):
        store.set_first_password(ADMIN_PASSWORD)
    assert not store.has_password and store.tokens() == []  # memory unchanged
    assert store.path.read_bytes() == before and not list(small_disk.glob("*.tmp"))
    with pytest.raises(AuthNotSaved):
        store.create_token("plc", "read")
    assert store.tokens() == []
    filler.unlink()
    token = store.set_first_password(ADMIN_PASSWORD)
    assert AuthStore(small_disk).lookup(token) is not None  # the first token is on disk


def test_setup_over_http_on_a_full_disk_is_a_clean_503(small_disk: Path, model_files: object) -> None:
    server = start_server(parse_config(f'[data]\ndir = "{small_disk}"\n[store]\nenabled = false\n'))
    try:
        filler = fill(small_disk)
        refused = httpx.post(f"{server.url}/api/v1/setup", json={"password": ADMIN_PASSWORD}, timeout=60)
        assert refused.status_code == 503 and "nothing was changed" in refused.json()["error"]
        assert httpx.get(f"{server.url}/api/v1/setup").json() == {"required": True}
        filler.unlink()
        done = httpx.post(f"{server.url}/api/v1/setup", json={"password": ADMIN_PASSWORD}, timeout=60)
        assert done.status_code == 201
        headers = {"authorization": f"Bearer {done.json()['token']}"}
        assert httpx.get(f"{server.url}/api/v1/tokens", headers=headers).status_code == 200
    finally:
        server.stop()
