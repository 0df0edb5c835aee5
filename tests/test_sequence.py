"""Sequence numbers never go back: across a source change, and across kill -9 and a restart of a real
`appliance serve` process; seq is unique in results.db."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from appliance.pipeline.sequence import BLOCK, Sequence
from appliance_tools.demo.video import write_demo_video
from tests.conftest import config_for, looping_video_config, start_server, wait_for


def stored_seqs(db: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM results ORDER BY id")]


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def test_sequence_continues_after_the_reserved_block(tmp_path: Path) -> None:
    path = tmp_path / "seq.json"
    first = Sequence(path, floor=0)
    assert [first.next() for _ in range(3)] == [1, 2, 3]
    again = Sequence(path, floor=2)  # a restart: the store has up to 2, numbers 1..BLOCK were reserved
    assert again.next() == BLOCK + 1
    assert Sequence(path, floor=5 * BLOCK).next() == 5 * BLOCK + 1  # the store is ahead: follow it
    path.write_text("not json")
    assert Sequence(path, floor=7).next() == 8  # a damaged file: continue from the store


def test_seq_keeps_increasing_across_a_source_change(data_dir: Path, tmp_path: Path) -> None:
    first = write_demo_video(tmp_path / "a.mp4", frames=10)
    second = write_demo_video(tmp_path / "b.mp4", frames=10)
    server = start_server(config_for(data_dir, f'[source]\nkind = "video"\npath = "{first}"\nname = "a"\n'))
    try:
        server.setup()
        services = server.services
        wait_for(lambda: services.pipeline.published >= 20)
        reply = server.client().patch("/api/v1/config", json={"source": {"path": str(second), "name": "b"}})
        assert reply.status_code == 200, reply.text
        seen = services.pipeline.published
        wait_for(lambda: services.pipeline.published >= seen + 20)
        assert services.writer is not None and services.writer.flush()
    finally:
        server.stop()
    with contextlib.closing(sqlite3.connect(data_dir / "results.db")) as conn:
        rows = conn.execute("SELECT source, seq FROM results ORDER BY id").fetchall()
    seqs = [seq for _, seq in rows]
    assert {"a", "b"} <= {source for source, _ in rows}
    assert strictly_increasing(seqs) and len(set(seqs)) == len(seqs)
    last_a = max(seq for source, seq in rows if source == "a")
    assert min(seq for source, seq in rows if source == "b") > last_a


def serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(config)], stdout=out, stderr=out
        )


def wait_rows(process: subprocess.Popen[bytes], port: int, at_least: int) -> int:
    deadline = time.monotonic() + 90
    rows = 0
    while rows < at_least:
        assert time.monotonic() < deadline, "appliance did not log rows in time"
        assert process.poll() is None, "appliance exited"
        with contextlib.suppress(httpx.TransportError, KeyError, ValueError):
            rows = httpx.get(f"http://127.0.0.1:{port}/api/v1/status").json()["store"]["rows"]
        time.sleep(0.05)
    return rows


def test_seq_keeps_increasing_across_kill_9_and_restart(data_dir: Path, tmp_path: Path) -> None:
    config, port = looping_video_config(data_dir, tmp_path)
    log = tmp_path / "serve.log"
    db = data_dir / "results.db"
    process = serve(config, log)
    try:
        wait_rows(process, port, 100)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    before = stored_seqs(db)
    process = serve(config, log)
    try:
        wait_rows(process, port, len(before) + 100)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    after = stored_seqs(db)
    assert after[: len(before)] == before
    assert strictly_increasing(after), log.read_text()[-2000:]
    assert len(set(after)) == len(after)
    assert after[len(before)] > before[-1]


def test_a_database_from_a_build_whose_seq_restarted_is_continued_above_its_max(tmp_path: Path) -> None:
    """Old results.db with seq 1..50 then 1..5 (two runs of the old build), no seq.json: continue at 51."""
    db = tmp_path / "results.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, seq INTEGER)")
        conn.executemany(
            "INSERT INTO results (seq) VALUES (?)", [(s,) for s in [*range(1, 51), *range(1, 6)]]
        )
        conn.commit()
    assert Sequence.for_data_dir(tmp_path, db).next() == 51
    assert Sequence.for_data_dir(tmp_path, db).next() == BLOCK + 51  # seq.json now holds the block
