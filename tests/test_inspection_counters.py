"""Production counters: survive a real process restart, min/avg/max, yield, reset with its time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.errors import BadRequest
from appliance.inspection.counters import Counters

WRITER = """
import sys
from pathlib import Path
from appliance.inspection.counters import Counters
c = Counters(Path(sys.argv[1]))
for ms in (12.0, 30.0, 18.0):
    c.record(3, "ok", ms)
c.record(3, "ng", 40.0)
c.record(5, "error", None)
c.missed(3)
c.close()
"""


def write_in_a_process(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_counters_survive_a_process_restart_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "counters.db"
    write_in_a_process(path)
    counters = Counters(path)
    job = counters.read(3)
    assert (job.triggers, job.ok, job.ng, job.errors, job.missed) == (4, 3, 1, 0, 1)
    assert (job.time_min_ms, job.time_avg_ms, job.time_max_ms) == (12.0, 25.0, 40.0)
    assert job.yield_pct == 75.0
    total = counters.read()
    assert (total.triggers, total.ok, total.ng, total.errors, total.missed) == (5, 3, 1, 1, 1)
    assert [s.job for s in counters.read_all()] == [0, 3, 5]
    counters.close()

    write_in_a_process(path)  # a second run adds to what the first left
    counters = Counters(path)
    assert counters.read(3).triggers == 8
    before = time.time()
    reset_at = counters.reset(3)
    assert reset_at >= before
    job = counters.read(3)
    assert (job.triggers, job.ok, job.time_min_ms, job.yield_pct) == (0, 0, None, None)
    assert job.reset_at == reset_at
    assert counters.read().triggers == 10  # the total is kept when one job is reset
    counters.close()

    counters = Counters(path)  # the reset itself survives a restart
    assert counters.read(3).reset_at == reset_at
    counters.reset()
    assert [s.triggers for s in counters.read_all()] == [0]
    assert counters.read(5).triggers == 0
    counters.close()


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    counters = Counters(tmp_path / "counters.db")
    with pytest.raises(BadRequest, match="outcome must be one of ok, ng, error"):
        counters.record(1, "maybe")
    with pytest.raises(BadRequest, match=r"job numbers are 1\.\.999"):
        counters.record(1000, "ok")
    with pytest.raises(BadRequest):
        counters.reset(-1)
    assert counters.read().to_json()["triggers"] == 0
    counters.close()
