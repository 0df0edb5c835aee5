"""Request bodies: caps enforced before reading (a real `appliance serve` process, 300 MB streamed at
its open routes), and every malformed JSON body answered 400 with a JSON error, never 500."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.api.bodies import MAX_DEPTH, SMALL_JSON_BYTES, check_depth
from appliance.cli import main
from appliance.errors import BadRequest
from appliance_tools.demo.stripes import build_stripes_model
from tests.conftest import ADMIN_PASSWORD, LiveServer, config_for, free_port, start_server, wait_for

HUGE = 300 * 1024 * 1024
CHUNK = 1024 * 1024
RSS_GROWTH_LIMIT_KB = 4 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def chunks(total: int) -> Iterator[bytes]:
    block = b"[" * CHUNK
    for _ in range(total // CHUNK):
        yield block


@pytest.fixture
def served(data_dir: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`appliance serve` in its own process, at first boot (no admin password yet)."""
    port = free_port()
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "{data_dir}"\n[server]\nport = {port}\n[log]\nlevel = "WARNING"\n')
    command = [str(Path(sys.executable).parent / "appliance"), "serve", "--config", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/setup", timeout=2).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None  # died: stop waiting, the assert below says so

    wait_for(up, timeout=60)
    assert process.poll() is None
    yield url, process
    process.terminate()
    process.wait(timeout=30)


def send(url: str, headers: dict[str, str], declared: bool) -> httpx.Response:
    if declared:  # Content-Length says 300 MB
        headers = {**headers, "content-length": str(HUGE)}
    with httpx.Client(timeout=60) as client:
        return client.post(url, content=chunks(HUGE), headers=headers)


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_300_mb_at_open_routes_is_refused_at_the_cap(
    served: tuple[str, subprocess.Popen[bytes]], declared: bool
) -> None:
    url, process = served
    targets = [
        ("/api/v1/setup", {"content-type": "application/json"}),
        ("/setup", {"content-type": "application/x-www-form-urlencoded"}),
        ("/login", {"content-type": "application/x-www-form-urlencoded"}),
    ]
    httpx.post(f"{url}/api/v1/setup", json={"password": "x"}, timeout=10)  # warm the code paths up
    before = rss_kb(process.pid)
    for path, headers in targets:
        reply = send(url + path, headers, declared)
        assert reply.status_code == 413, (path, reply.text[:200])
        assert "limit" in reply.json()["error"]
    growth = rss_kb(process.pid) - before
    assert growth < RSS_GROWTH_LIMIT_KB, f"RSS grew {growth} kB"
    assert httpx.get(f"{url}/api/v1/setup", timeout=10).json() == {"required": True}  # nothing was set


def test_json_over_the_small_cap_is_413(fresh_server: LiveServer) -> None:
    body = b'{"password": "' + b"a" * SMALL_JSON_BYTES + b'"}'
    reply = httpx.post(
        f"{fresh_server.url}/api/v1/setup", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413 and "limit" in reply.json()["error"]


MALFORMED: list[tuple[str, bytes, str]] = [
    ("invalid UTF-8", b'{"password": "\xff\xfe"}', "UTF-8"),
    ("lone surrogate escape", b'{"password": "\\ud800"}', "JSON"),
    ("30,000 nested brackets", b"[" * 30_000 + b"]" * 30_000, f"deeper than {MAX_DEPTH}"),
    ("nested objects", b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "deeper"),
    ("unterminated", b'{"password": "abc', "not valid JSON"),
    ("trailing garbage", b'{"password": "Correct-Horse-42"} x', "not valid JSON"),
    ("not an object", b'["password"]', "JSON object"),
    ("NaN", b'{"version": NaN}', "not valid JSON"),
    ("huge number", b'{"version": 1e999}', "not valid JSON"),
    ("empty key soup", b"{,}", "not valid JSON"),
]


def assert_400(reply: httpx.Response, needle: str) -> None:
    assert reply.status_code == 400, reply.text[:300]
    assert reply.headers["content-type"].startswith("application/json")
    assert needle in reply.json()["error"], reply.json()


@pytest.mark.parametrize(("case", "body", "needle"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_json_at_setup_is_400(
    fresh_server: LiveServer, case: str, body: bytes, needle: str
) -> None:
    headers = {"content-type": "application/json"}
    assert_400(httpx.post(f"{fresh_server.url}/api/v1/setup", content=body, headers=headers), needle)
    assert httpx.get(f"{fresh_server.url}/api/v1/setup").json() == {"required": True}


@pytest.mark.parametrize(("case", "body", "needle"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_json_is_400_on_every_json_route(
    live_server: LiveServer, case: str, body: bytes, needle: str
) -> None:
    headers = {"content-type": "application/json"}
    api = live_server.client()
    config = api.get("/api/v1/config").json()
    for method, path in (
        ("PATCH", "/api/v1/config"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/models/face/activate"),
    ):
        assert_400(api.request(method, path, content=body, headers=headers), needle)
    assert [t["name"] for t in api.get("/api/v1/tokens").json()["tokens"]] == ["setup"]
    assert api.get("/api/v1/config").json() == config


def test_wrong_content_type_is_415_and_declared_length_is_checked(live_server: LiveServer) -> None:
    api = live_server.client()
    reply = api.post("/api/v1/tokens", content=b'{"name": "x"}', headers={"content-type": "text/plain"})
    assert reply.status_code == 415 and "application/json" in reply.json()["error"]
    reply = api.post("/api/v1/setup", json={"password": ADMIN_PASSWORD})
    assert reply.status_code == 409  # already set: refused before the body is read


def test_depth_scan_ignores_brackets_inside_strings() -> None:
    check_depth(b'{"a": "' + b"[" * 10_000 + b'"}')
    check_depth(b'["\\"' + b"[" * 100 + b'"]')  # an escaped quote does not end the string
    check_depth(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(BadRequest):
        check_depth(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


def test_the_model_upload_cap_is_server_max_model_bytes(data_dir: Path, model_files: dict[str, Path]) -> None:
    """Models have their own cap: one larger than the image/request cap is taken, one larger than
    server.max_model_bytes is refused (413) with nothing stored."""
    limits = "[server]\nmax_model_bytes = 65536\nmax_upload_bytes = 1024\n"
    server = start_server(config_for(data_dir, limits))
    try:
        api = server.client(server.setup())
        face = model_files["face_detection_short_range.tflite"].read_bytes()
        assert len(face) > 65536
        before = api.get("/api/v1/models").json()["models"]
        for content in (face, iter([face[i : i + 4096] for i in range(0, len(face), 4096)])):
            reply = api.post("/api/v1/models", params={"task": "detect", "name": "big"}, content=content)
            assert reply.status_code == 413 and "65536" in reply.json()["error"]
        assert api.get("/api/v1/models").json()["models"] == before
        assert not [p for p in (data_dir / "models").iterdir() if p.name.startswith(".upload")]
        stripes = build_stripes_model()
        assert 1024 < len(stripes) <= 65536
        reply = api.post("/api/v1/models", params={"task": "classify", "name": "fits"}, content=stripes)
        assert reply.status_code == 201, reply.text
    finally:
        server.stop()


def test_cli_refuses_an_oversized_model_before_copying(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "huge.tflite"
    with big.open("wb") as fh:  # 2 GB, sparse: nothing to copy unless someone copies it
        fh.truncate(2 * 1024**3)
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ndir = "{data_dir}"\n')
    before = sorted(p.name for p in (data_dir / "models").iterdir())
    assert main(["models", "add", str(big), "--task", "detect", "--config", str(config)]) == 1
    assert "over server.max_model_bytes" in capsys.readouterr().err  # refused by size, not by LiteRT
    assert sorted(p.name for p in (data_dir / "models").iterdir()) == before
