"""Load for `appliance bench`: POST one JPEG to /api/v1/infer at a fixed concurrency.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WRK_SECONDS = 5
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
