"""The store on a real, small filesystem (tmpfs with size=) that runs full. CI runs as root."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.store.database import connect
from appliance.store.retention import RetentionPolicy
from appliance.store.space import DiskSpace
from appliance.store.writer import ResultWriter, WriterOptions
from tests.conftest import config_for, start_server, tmpfs, wait_for
from tests.test_store import record

MiB = 1024**2


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs, unmounted afterwards."""
    with tmpfs(tmp_path / "fs", "20m") as mount:
        yield mount


def fill(path: Path) -> None:
    """Append to `path` until the filesystem refuses (ENOSPC)."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                if len(chunk) == 512:
                    return
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_delete_cannot_commit_on_a_full_disk_until_the_emergency_file_goes(small_fs: Path) -> None:
    """Why the store keeps an emergency file: the WAL must grow to commit even a DELETE."""
    space = DiskSpace(small_fs, min_free=4 * MiB)
    space.restore(space.free())
    assert (small_fs / ".store-emergency").stat().st_blocks * 512 == MiB  # allocated, not sparse
    conn = connect(small_fs / "t.db")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    for _ in range(100):  # ~450 WAL pages, short of a checkpoint: the next commit has to grow the WAL
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t (b) VALUES (?)", [(b"x" * 300,)] * 20)
        conn.execute("COMMIT")
    fill(small_fs / "ballast")
    with pytest.raises(sqlite3.OperationalError, match="full") as caught:
        conn.execute("DELETE FROM t WHERE id <= 500")
    assert caught.value.sqlite_errorcode == 13  # SQLITE_FULL
    assert space.release()
    assert conn.execute("DELETE FROM t WHERE id <= 500").rowcount == 500
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def stored(db: Path) -> list[tuple[int, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT seq, snapshot FROM results ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_disk_full_at_a_high_snapshot_rate(small_fs: Path) -> None:
    data = small_fs / "data"
    options = WriterOptions(
        flush_interval_s=0.01,
        batch_size=25,
        retention_interval_s=3600,  # only the size and free-space triggers act
        retention=RetentionPolicy(max_bytes=18 * MiB, min_free_bytes=4 * MiB),  # max_bytes < the fs size
    )
    writer = ResultWriter(data, options)
    writer.start()
    noise = np.random.default_rng(0).integers(0, 255, (160, 160, 3), dtype=np.uint8)  # ~20 KB JPEGs
    seq = 0

    def submit(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            writer.submit(record(seq, image=noise))
        assert writer.flush(timeout=120)

    # 1. 40 MB of snapshots into 20 MiB: free-space cleanup and the size trigger keep up, nothing dropped.
    submit(2000)
    assert writer.errors == 0 and writer.rows_written == 2000
    assert writer.degraded is None
    assert free(small_fs) >= 4 * MiB - 25 * 40_000  # the reserve, give or take one batch

    # 2. Something else fills the disk, again and again: snapshots go first, then the table stops growing.
    ballast = small_fs / "ballast"
    rounds = 0
    while writer.degraded is None:
        fill(small_fs / f"ballast-{rounds}")
        rounds += 1
        submit(25)
        assert rounds < 50
    assert "disk low" in writer.degraded and "reserve 4.2 MB" in writer.degraded
    rows_before = writer.rows
    fill(ballast)  # completely full now: a commit has to grow the WAL
    written, dropped = writer.rows_written, writer.errors
    submit(300)
    assert writer.rows_written - written + writer.errors - dropped == 300
    assert writer.rows_written - written >= 275  # results keep flowing under the reserve
    assert writer.rows == rows_before  # oldest out, newest in
    assert writer.evicted >= 275 and writer.snapshots_dropped >= 300
    newest = stored(writer.path)[-1]
    assert newest[0] == seq and newest[1] is None  # stored, without its snapshot

    # 3. The space comes back: the store recovers by itself.
    for path in small_fs.glob("ballast*"):
        path.unlink()
    submit(25)
    wait_for(lambda: writer.degraded is None)
    assert stored(writer.path)[-1][1] is not None  # snapshots again
    wait_for((data / ".store-emergency").exists)
    writer.close()

    conn = sqlite3.connect(writer.path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    rows = stored(writer.path)
    seqs = [s for s, _ in rows]
    assert seqs == list(range(seqs[0], seq + 1))  # only the oldest went: no gaps, nothing newer lost
    names = {n for _, n in rows if n}
    files = {str(p.relative_to(data / "snapshots")) for p in (data / "snapshots").rglob("*.jpg")}
    assert files == names  # every file has its row, every named file exists


def test_degraded_shows_in_status_and_metrics(data_dir: Path) -> None:
    server = start_server(config_for(data_dir, "min_free_bytes = 1_000_000_000_000_000_000"))  # 1 EB
    try:
        server.setup()
        api = server.client()
        wait_for(lambda: api.get("/api/v1/status").json()["store"]["degraded"] is not None)
        store = api.get("/api/v1/status").json()["store"]
        assert store["degraded"].startswith("disk low: ")
        assert store["degraded"].endswith("reserve 1000000000000.0 MB; snapshots off, oldest results deleted")
        assert store["min_free_bytes"] == 10**18 and store["free_bytes"] > 0 and store["dropped"] == 0
        assert "\nappliance_db_degraded 1.0\n" in api.get("/metrics").text
        assert api.patch("/api/v1/config", json={"store": {"min_free_bytes": 0}}).status_code == 200
        wait_for(lambda: api.get("/api/v1/status").json()["store"]["degraded"] is None)  # applied live
        assert "\nappliance_db_degraded 0.0\n" in api.get("/metrics").text
    finally:
        server.stop()
