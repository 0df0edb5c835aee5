"""`appliance update BUNDLE` on this host: a temporary /opt/appliance, real venvs and pip, a fake
service restart, and health answered by a real HTTP server or a function of the current link."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.errors import BadRequest
from appliance.update import (
    Layout,
    UpdateFailed,
    UpdateOptions,
    apply_update,
    http_health,
    wait_healthy,
    write_bundle,
)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder: Path, version: str) -> Path:
    """A tiny pure wheel of `edge-appliance` whose `appliance` package only knows its version."""
    dist = f"edge_appliance-{version}.dist-info"
    files = {
        "appliance/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: edge-appliance\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()), f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"edge_appliance-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist}/RECORD", record)
    return path


def make_bundle(tmp: Path, version: str) -> Path:
    wheels, web = tmp / f"wheels-{version}", tmp / f"web-{version}"
    wheels.mkdir()
    (web / "templates").mkdir(parents=True)
    (web / "templates" / "index.html").write_text(f"<p>{version}</p>", encoding="utf-8")
    make_wheel(wheels, version)
    out = tmp / f"appliance-{version}.bundle.tar"
    write_bundle(out, version, wheels, (f"edge-appliance=={version}",), web)
    return out


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """An installed 0.1.0 (a placeholder folder is enough to roll back to) behind `current`."""
    root = tmp_path / "opt"
    (root / "venvs" / "0.1.0").mkdir(parents=True)
    (root / "current").symlink_to("venvs/0.1.0")
    return Layout(root)


def restart_logger(log: Path) -> tuple[str, ...]:
    return (sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('restart\\n')", str(log))


def installed_version(venv: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", "import appliance; print(appliance.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_update_installs_a_fresh_venv_switches_and_prunes(tmp_path: Path, layout: Layout) -> None:
    log = tmp_path / "restarts.log"
    options = UpdateOptions(layout, sys.executable, restart_logger(log), timeout_s=5, keep=1)

    first = apply_update(make_bundle(tmp_path, "0.2.0"), options, lambda: True)
    assert first.previous == (layout.venvs / "0.1.0").resolve()
    assert layout.current_venv() == first.venv.resolve()
    assert installed_version(layout.current) == "0.2.0"
    web = list(first.venv.glob("lib/python*/site-packages/appliance/web/templates/index.html"))
    assert web and web[0].read_text(encoding="utf-8") == "<p>0.2.0</p>"

    second = apply_update(make_bundle(tmp_path, "0.3.0"), options, lambda: True)
    assert installed_version(layout.current) == "0.3.0"
    assert second.previous == first.venv.resolve()
    assert sorted(p.name for p in layout.venvs.iterdir()) == ["0.2.0", "0.3.0"]  # 0.1.0 pruned
    assert log.read_text().count("restart") == 2


def test_unhealthy_update_rolls_back_to_the_previous_venv(tmp_path: Path, layout: Layout) -> None:
    log = tmp_path / "restarts.log"
    previous = layout.current_venv()
    options = UpdateOptions(layout, sys.executable, restart_logger(log), timeout_s=0.2)

    def healthy_only_when_old() -> bool:
        return layout.current_venv() == previous

    with pytest.raises(
        UpdateFailed, match=r"0\.2\.0 did not become healthy.*rolled back to 0\.1\.0 and it is healthy"
    ):
        apply_update(make_bundle(tmp_path, "0.2.0"), options, healthy_only_when_old)
    assert layout.current_venv() == previous
    assert not (layout.venvs / "0.2.0").exists(), "the failed venv is removed"
    assert log.read_text().count("restart") == 2, "restarted into the new version, then back"


def test_tampered_bundle_changes_nothing(tmp_path: Path, layout: Layout) -> None:
    bundle = make_bundle(tmp_path, "0.2.0")
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith(".whl"):
                data += b"\0"
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    options = UpdateOptions(layout, sys.executable, restart_logger(tmp_path / "restarts.log"))

    with pytest.raises(BadRequest, match="does not match its sha256"):
        apply_update(tampered, options, lambda: True)
    assert sorted(p.name for p in layout.venvs.iterdir()) == ["0.1.0"]
    assert layout.current_venv() == (layout.venvs / "0.1.0").resolve()
    assert not (tmp_path / "restarts.log").exists()


class _Health(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []

    def do_GET(self) -> None:
        code = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        body = json.dumps({"status": "ok" if code == 200 else "starting"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    _Health.answers = [503, 503, 200]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/health"
    server.shutdown()
    server.server_close()


def test_http_health_waits_for_ok(health_server: str) -> None:
    assert wait_healthy(http_health(health_server), timeout_s=10, interval_s=0.05)
    with socket_closed() as url:
        assert not wait_healthy(http_health(url), timeout_s=0.2, interval_s=0.05)


class socket_closed:  # noqa: N801 - used as a context manager like a function
    """The URL of a port nobody listens on."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/api/v1/health"

    def __exit__(self, *exc: object) -> None:
        return None


def test_cli_update_end_to_end(
    tmp_path: Path, layout: Layout, health_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path, "0.2.0")
    restart = f"{sys.executable} -c pass"
    argv = ["update", str(bundle), "--root", str(layout.root), "--python", sys.executable]
    argv += ["--restart-command", restart, "--health-url", health_server, "--timeout", "20"]
    assert main(argv) == 0
    assert "updated to 0.2.0" in capsys.readouterr().out
    assert installed_version(layout.current) == "0.2.0"
