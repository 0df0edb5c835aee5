"""The store's files: orphan snapshots swept after a kill, and who may read results.db and snapshots."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

from appliance.store.writer import ResultWriter, WriterOptions
from tests.conftest import wait_for
from tests.test_store import record
from tests.test_store_faults import consistent

ROOT = Path(__file__).resolve().parents[1]
IMAGE = np.full((32, 32, 3), 128, np.uint8)

# A writer at a high snapshot rate, forever (until killed).
WRITER = """
import sys, time
import numpy as np
from pathlib import Path
sys.path.insert(0, "tests")
from tests.test_store import record
from appliance.store.writer import ResultWriter, WriterOptions
w = ResultWriter(Path(sys.argv[1]), WriterOptions(flush_interval_s=0.002, batch_size=20))
w.start()
noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
seq = 0
while True:
    seq += 1
    w.submit(record(seq, image=noise))
"""


def rows_in(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_snapshots_left_by_a_kill_are_swept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], cwd=ROOT)
    try:
        wait_for(lambda: rows_in(data / "results.db") >= 300, timeout=60)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # planted too, so the sweep has work whatever moment the kill hit
    day = sorted(p.name for p in (data / "snapshots").iterdir())[-1]
    orphan = data / "snapshots" / day / "1-1.jpg"
    orphan.write_bytes(b"\xff\xd8 no row names this")
    stale = data / "snapshots" / "20200101"
    stale.mkdir()
    (stale / "2-2.jpg").write_bytes(b"\xff\xd8")
    conn = sqlite3.connect(data / "results.db")
    gone = conn.execute("SELECT id, snapshot FROM results WHERE snapshot IS NOT NULL LIMIT 1").fetchone()
    conn.close()
    (data / "snapshots" / gone[1]).unlink()  # a row whose file vanished (unlinked by a cleanup, then a kill)
    assert not consistent(data)

    rows = rows_in(data / "results.db")
    writer = ResultWriter(data, WriterOptions())
    writer.start()
    wait_for(lambda: writer.swept is not None)
    assert writer.swept is not None and writer.swept.orphans >= 2 and writer.swept.missing == 1
    assert not orphan.exists() and not stale.exists()
    assert consistent(data)  # files with rows kept, files without rows removed
    assert rows_in(data / "results.db") == rows  # no row deleted by the sweep
    conn = sqlite3.connect(data / "results.db")
    cleared = conn.execute("SELECT snapshot, snapshot_bytes FROM results WHERE id = ?", (gone[0],)).fetchone()
    conn.close()
    assert cleared == (None, 0)
    writer.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_not_world_readable(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the permissive default: the store must not rely on the unit's UMask
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "results.db").touch(mode=0o644)  # from an older version
        writer = ResultWriter(data, WriterOptions(flush_interval_s=0.01))
        writer.start()
        writer.submit(record(1, image=IMAGE))
        assert writer.flush()
        snapshot = next((data / "snapshots").rglob("*.jpg"))
        for path in (data / "results.db", data / "results.db-wal", data / "results.db-shm", snapshot):
            assert mode(path) == 0o640, path
        for folder in (data / "snapshots", snapshot.parent):
            assert mode(folder) == 0o750, folder
        writer.close()
        fresh = tmp_path / "fresh"
        ResultWriter(fresh, WriterOptions()).close()
        assert mode(fresh) == 0o750 and mode(fresh / "results.db") == 0o640
    finally:
        os.umask(old)


def test_the_service_runs_with_umask_0027() -> None:
    unit = (ROOT / "images/rootfs/etc/systemd/system/appliance.service").read_text()
    assert "\nUMask=0027\n" in unit
