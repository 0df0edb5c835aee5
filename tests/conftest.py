"""Shared fixtures: real models (from the mediapipe wheel and built by the project), real images,
a registry in a temporary data directory, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import uvicorn
from skimage import data as samples

from appliance.api.app import create_app
from appliance.config import Config, parse_config
from appliance.models.registry import Registry
from appliance.services import Services, open_registry
from appliance_tools.demo.assets import fetch_mediapipe_models
from appliance_tools.demo.setup import demo_models, register_models
from appliance_tools.demo.video import write_demo_video

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"


@pytest.fixture(scope="session")
def model_files() -> dict[str, Path]:
    return fetch_mediapipe_models(CACHE)


@pytest.fixture(scope="session")
def seeded_registry_dir(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Path:
    """A data dir whose registry holds the four demo models (face active); copied per test."""
    data = tmp_path_factory.mktemp("seed")
    register_models(open_registry(data), demo_models(CACHE))
    return data


@pytest.fixture
def data_dir(tmp_path: Path, seeded_registry_dir: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(seeded_registry_dir, target)
    return target


@pytest.fixture
def registry(data_dir: Path) -> Registry:
    return open_registry(data_dir)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut sample as a BGR frame (512x512)."""
    return np.ascontiguousarray(cv2.cvtColor(samples.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="session")
def astronaut_png(astronaut: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", astronaut)
    assert ok
    return encoded.tobytes()


def config_for(data_dir: Path, extra: str = "") -> Config:
    return parse_config(f'[data]\ndir = "{data_dir}"\n[store]\nflush_interval_ms = 20\n{extra}')


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll until `predicate()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ADMIN_PASSWORD = "Correct-Horse-42"


@dataclass
class LiveServer:
    url: str
    services: Services
    server: uvicorn.Server
    thread: threading.Thread
    token: str = ""

    def client(self, token: str | None = None) -> httpx.Client:
        """A client sending the admin token from first-boot setup (or `token`; "" for none)."""
        use = self.token if token is None else token
        headers = {"authorization": f"Bearer {use}"} if use else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def setup(self) -> str:
        # scrypt at OWASP's cost: seconds on 2 loaded cores
        reply = httpx.post(f"{self.url}/api/v1/setup", json={"password": ADMIN_PASSWORD}, timeout=60)
        assert reply.status_code == 201, reply.text
        self.token = reply.json()["token"]
        return self.token

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(config: Config) -> LiveServer:
    services = Services.build(config)
    port = free_port()
    uv_config = uvicorn.Config(
        create_app(services), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(uv_config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", services, server, thread)


@pytest.fixture
def live_server(data_dir: Path) -> Iterator[LiveServer]:
    """A running appliance whose admin password is set; `live_server.client()` carries the admin token."""
    server = start_server(config_for(data_dir))
    server.setup()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(data_dir: Path) -> Iterator[LiveServer]:
    """A running appliance at first boot: no admin password yet."""
    server = start_server(config_for(data_dir))
    yield server
    server.stop()


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A real small filesystem of `size` (e.g. "20m") at `mount`, unmounted afterwards (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI runs the tests as root)")
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def looping_video_config(data_dir: Path, tmp_path: Path) -> tuple[Path, int]:
    """A config.toml for a real `appliance serve` on a free port, storing results of a looping video."""
    video = write_demo_video(tmp_path / "v.mp4", frames=30)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\n[data]\ndir = "{data_dir}"\n'
        f'[source]\nkind = "video"\npath = "{video}"\nloop = true\n'
        "[store]\nflush_interval_ms = 10\nbatch_size = 50\n[backend]\nthreads = 1\n"
        "[auth]\nanonymous_read = true\n"
    )
    return config, port
