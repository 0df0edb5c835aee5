"""`appliance bench --soak` end to end (short), its load generator, and the malloc setting it led to."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from appliance.cli import main
from appliance_tools.loadgen import BodiesTarget, httpx_bodies
from appliance_tools.soak import distinct_jpegs
from tests.conftest import CACHE, config_for, start_server


def test_soak_appends_a_section(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n")
    args = ["bench", "--soak", "0.5", "--model", "stripes", "--concurrency", "4"]
    assert main([*args, "--cache-dir", str(CACHE), "--report", str(report)]) == 0
    text = report.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "## Soak:" in text and "| settled RSS after warm-up |" in text and "| growth |" in text


def test_distinct_jpegs_are_distinct() -> None:
    images = distinct_jpegs(40)
    assert len(set(images)) == 40 and all(i.startswith(b"\xff\xd8\xff") for i in images)


def test_the_python_load_generator_cycles_bodies(data_dir: Path, tmp_path: Path) -> None:
    ticks: list[int] = []
    images = tuple(distinct_jpegs(5))
    # the rate limit off, as `bench --soak` runs its server: a load generator is no attacker
    served = start_server(config_for(data_dir, "[auth]\nrate_per_s = 0\n"))
    served.setup()
    try:
        target = BodiesTarget(f"{served.url}/api/v1/infer", served.token, images, tmp_path)
        load = httpx_bodies(target, concurrency=2, seconds=2, on_tick=lambda: ticks.append(1))
    finally:
        served.stop()
    assert load.requests > 0 and load.failed == 0 and load.tool == "httpx" and ticks


PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from appliance.memory import tune_malloc
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    if sys.argv[1] == "tuned":
        assert tune_malloc()
    libc.free(libc.malloc(8 << 20))  # a freed big frame: glibc raises its mmap threshold to 8 MB
    before = libc.mallinfo2().hblks
    frame = libc.malloc(1 << 20)  # the next 1 MB frame: mmapped (given back when freed) or not
    print(libc.mallinfo2().hblks - before)
    libc.free(frame)
    """
)


def mmapped_after_a_big_free(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* settings from the caller
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(out.stdout.strip())


def test_tuned_malloc_keeps_large_buffers_in_mmap() -> None:
    assert mmapped_after_a_big_free("default") == 0  # glibc's dynamic threshold: from the arena
    assert mmapped_after_a_big_free("tuned") == 1
