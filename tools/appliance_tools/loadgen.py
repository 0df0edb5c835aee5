"""Load for `appliance bench`: POST one JPEG to /api/v1/infer at a fixed concurrency, or (for
`--soak`) many distinct JPEGs round robin for a given time.

wrk (C, Debian package) when it is installed, so the load generator takes little of the CPU the
server needs; otherwise Python threads with httpx. Both report requests/s and p50/p99 latency.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WRK_SECONDS = 5
Tick = Callable[[], None]
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
LUA = """local f = io.open("{image}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Authorization"] = "Bearer {token}"
"""


@dataclass(frozen=True)
class Target:
    url: str  # the full /api/v1/infer URL
    token: str
    image: bytes


@dataclass(frozen=True)
class Load:
    per_s: float
    p50_ms: float
    p99_ms: float
    tool: str


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return round(float(number) * UNITS_MS[unit], 3)


def with_wrk(target: Target, concurrency: int, wrk: str) -> Load:
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "frame.jpg"
        image.write_bytes(target.image)
        script = Path(tmp) / "post.lua"
        script.write_text(LUA.format(image=image, token=target.token), encoding="utf-8")
        command = [
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{WRK_SECONDS}s",
            "--latency",
            "-s",
            str(script),
            target.url,
        ]
        out = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=WRK_SECONDS + 30
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # the "Latency Distribution" lines: "     50%    2.37ms" (other lines hold percentages too)
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    return Load(rate, p50, p99, "wrk")


def with_httpx(target: Target, concurrency: int, requests: int) -> Load:
    import httpx

    times: list[float] = []
    lock = threading.Lock()
    headers = {"authorization": f"Bearer {target.token}", "content-type": "image/jpeg"}

    def worker() -> None:
        with httpx.Client(timeout=30, headers=headers) as client:
            for _ in range(max(1, requests // concurrency)):
                t0 = time.perf_counter()
                client.post(target.url, content=target.image).raise_for_status()
                with lock:
                    times.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    elapsed = time.perf_counter() - start
    p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])
    return Load(len(times) / elapsed, round(float(p50), 3), round(float(p99), 3), "httpx")


def rest_load(target: Target, concurrency: int, requests: int) -> Load:
    wrk = shutil.which("wrk")
    return with_wrk(target, concurrency, wrk) if wrk else with_httpx(target, concurrency, requests)


LUA_BODIES = """local bodies = {{}}
for i = 1, {count} do
  local f = io.open(string.format("{folder}/%04d.jpg", i), "rb")
  bodies[i] = f:read("*all")
  f:close()
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  n = n % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
"""
TICK_S = 1.0


@dataclass(frozen=True)
class BodiesTarget:
    """Several distinct bodies, sent round robin; `scratch` is a folder the load generator may use."""

    url: str
    token: str
    images: tuple[bytes, ...]
    scratch: Path


@dataclass(frozen=True)
class RoundLoad(Load):
    requests: int = 0
    failed: int = 0  # non-2xx answers, timeouts and socket errors


def _wrk_failures(out: str) -> int:
    failed = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        failed += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        failed += sum(int(g) for g in match.groups())
    return failed


def wrk_bodies(target: BodiesTarget, concurrency: int, seconds: int, wrk: str, on_tick: Tick) -> RoundLoad:
    folder = target.scratch / "soak-images"
    if not folder.is_dir():
        folder.mkdir()
        for index, image in enumerate(target.images, start=1):
            (folder / f"{index:04d}.jpg").write_bytes(image)
    script = target.scratch / "soak.lua"
    script.write_text(
        LUA_BODIES.format(count=len(target.images), folder=folder, token=target.token), encoding="utf-8"
    )
    command = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    with subprocess.Popen([*command, target.url], stdout=subprocess.PIPE, text=True) as process:
        while process.poll() is None:
            on_tick()
            time.sleep(TICK_S)
        out = process.stdout.read() if process.stdout else ""
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return RoundLoad(rate, 0.0, 0.0, "wrk", requests, _wrk_failures(out))


def httpx_bodies(target: BodiesTarget, concurrency: int, seconds: int, on_tick: Tick) -> RoundLoad:
    import httpx

    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    headers = {"authorization": f"Bearer {target.token}", "content-type": "image/jpeg"}
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> None:
        with httpx.Client(timeout=10, headers=headers) as client:
            index = offset
            while time.monotonic() < deadline:
                index = (index + 1) % len(target.images)
                try:
                    ok = client.post(target.url, content=target.images[index]).is_success
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["ok" if ok else "failed"] += 1

    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker, i * 7) for i in range(concurrency)]
        while not all(f.done() for f in futures):
            on_tick()
            time.sleep(TICK_S)
    total = counts["ok"] + counts["failed"]
    return RoundLoad(total / (time.monotonic() - start), 0.0, 0.0, "httpx", total, counts["failed"])


def rest_load_bodies(
    target: BodiesTarget, concurrency: int, seconds: int, on_tick: Tick = lambda: None
) -> RoundLoad:
    """`seconds` of load cycling through the bodies; `on_tick` runs about once a second meanwhile."""
    wrk = shutil.which("wrk")
    if wrk:
        return wrk_bodies(target, concurrency, seconds, wrk, on_tick)
    return httpx_bodies(target, concurrency, seconds, on_tick)
