"""kill -9 of a running `appliance serve` loses no committed row; the database stays intact."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import looping_video_config


def test_kill_9_loses_no_committed_row(data_dir: Path, tmp_path: Path) -> None:
    config, port = looping_video_config(data_dir, tmp_path)
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 300:
            assert time.monotonic() < deadline, "appliance did not log rows in time"
            assert process.poll() is None, "appliance exited"
            with contextlib.suppress(httpx.TransportError):
                committed = httpx.get(f"http://127.0.0.1:{port}/api/v1/status").json()["store"]["rows"]
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    conn = sqlite3.connect(data_dir / "results.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT COUNT(*), MAX(seq) FROM results").fetchone()
    assert rows[0] >= committed  # every row seen committed before the kill is still there
    seqs = [r[0] for r in conn.execute("SELECT seq FROM results ORDER BY id")]
    assert seqs == list(range(1, len(seqs) + 1))  # and nothing in between went missing
