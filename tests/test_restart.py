"""Restart of a real `appliance serve`: POST /api/v1/restart brings up a new server process on the
same port (the supervisor stays), and SIGTERM stops everything gracefully even while a trigger waits."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, free_port, wait_for

START_TIMEOUT_S = 90.0  # 2 shared cores: imports alone take seconds under load


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    token: str = ""

    def get(self, path: str) -> httpx.Response | None:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            return httpx.get(self.url + path, headers=headers, timeout=5)
        except httpx.TransportError:
            return None

    def status(self) -> dict[str, Any] | None:
        reply = self.get("/api/v1/status")
        return reply.json() if reply is not None and reply.status_code == 200 else None

    def healthy_pid(self) -> int | None:
        """The server's PID once /api/v1/health says ok, else None."""
        reply = self.get("/api/v1/health")
        if reply is None or reply.status_code != 200:
            return None
        status = self.status()
        return int(status["pid"]) if status is not None else None


def write_config(tmp_path: Path, data_dir: Path, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {free_port()}\n[data]\ndir = "{data_dir}"\n'
        f'[model]\nname = "face"\n[backend]\nthreads = 1\n{extra}'
    )
    return config


@contextlib.contextmanager
def serve(tmp_path: Path, config: Path) -> Iterator[Served]:
    port = next(line for line in config.read_text().splitlines() if line.startswith("port"))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port.split('=')[1].strip()}", log)
    try:
        up = lambda: process.poll() is not None or served.get("/api/v1/setup") is not None  # noqa: E731
        wait_for(up, START_TIMEOUT_S)
        assert process.poll() is None, log.read_text()
        reply = httpx.post(served.url + "/api/v1/setup", json={"password": ADMIN_PASSWORD}, timeout=60)
        assert reply.status_code == 201, reply.text
        served.token = reply.json()["token"]
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_restart_through_the_api_five_times_comes_back_as_a_new_process(
    tmp_path: Path, data_dir: Path
) -> None:
    with serve(tmp_path, write_config(tmp_path, data_dir)) as served:
        wait_for(lambda: served.healthy_pid() is not None, START_TIMEOUT_S)
        pids = [served.healthy_pid()]
        for _ in range(5):
            reply = httpx.post(
                served.url + "/api/v1/restart", headers={"authorization": f"Bearer {served.token}"}
            )
            assert reply.status_code == 202, reply.text
            started = time.monotonic()
            wait_for(lambda: served.healthy_pid() not in (None, *pids), START_TIMEOUT_S)
            sys.stderr.write(f"restart -> healthy again in {time.monotonic() - started:.1f} s\n")
            pids.append(served.healthy_pid())
            assert served.process.poll() is None, "the supervisor must stay"
        assert len(set(pids)) == 6 and served.process.pid not in pids
        # the token and the data survived: same data dir, same auth state
        assert served.status() is not None
    assert served.process.returncode == 0, served.log.read_text()[-3000:]


def test_sigterm_stops_gracefully_while_a_trigger_waits(tmp_path: Path, data_dir: Path) -> None:
    """A triggered push source with no frame: POST /api/v1/trigger waits for its 30 s timeout."""
    extra = '[source]\nkind = "push"\nmode = "triggered"\n[inspection]\ntrigger_timeout_s = 30\n'
    config = write_config(tmp_path, data_dir, extra)
    with serve(tmp_path, config) as served:
        wait_for(lambda: served.status() is not None, START_TIMEOUT_S)
        server_pid = served.status()["pid"]  # type: ignore[index]
        answers: list[int] = []

        def trigger() -> None:
            with contextlib.suppress(httpx.TransportError):
                headers = {"authorization": f"Bearer {served.token}"}
                reply = httpx.post(served.url + "/api/v1/trigger", headers=headers, timeout=60)
                answers.append(reply.status_code)

        waiting = threading.Thread(target=trigger)
        waiting.start()
        time.sleep(1.0)  # the trigger is in flight (it cannot finish: no frame will come)
        assert waiting.is_alive()
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(timeout=30)
        sys.stderr.write(f"graceful stop with a waiting trigger: {time.monotonic() - started:.2f} s\n")
        waiting.join(timeout=30)
        assert served.process.returncode == 0
        with pytest.raises(ProcessLookupError):
            os.kill(server_pid, 0)  # the server child is gone too


def test_the_server_does_not_outlive_a_killed_supervisor(tmp_path: Path, data_dir: Path) -> None:
    """SIGKILL to `appliance serve` re-parents its child: the child stops by itself and frees the port."""
    with serve(tmp_path, write_config(tmp_path, data_dir)) as served:
        wait_for(lambda: served.healthy_pid() is not None, START_TIMEOUT_S)
        child = served.healthy_pid()
        assert child is not None and child != served.process.pid
        served.process.send_signal(signal.SIGKILL)
        served.process.wait()
        wait_for(lambda: not pid_alive(child), START_TIMEOUT_S)
        assert "supervisor (pid" in served.log.read_text()
        assert served.get("/api/v1/setup") is None  # nothing answers on the port any more


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"  # a zombie has stopped
