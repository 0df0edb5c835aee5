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
from typing import Any

import grpc
import httpx
import numpy as np
import orjson

from appliance.api.grpc_protocol import SERVICE, build

WRK_SECONDS = 5
Tick = Callable[[], None]
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


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
    count: int = 0  # requests answered during the load, warm-up included (for CPU per request)


def _found(pattern: str, text: str) -> re.Match[str]:
    """The first match of `pattern` in a load tool's output, or a clear error naming what is missing."""
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"load tool output lacks {pattern!r}: {text[-300:]!r}")
    return match


def _ms(value: str) -> float:
    number, unit = _found(r"^([\d.]+)(us|ms|s|m|h)$", value).groups()
    return round(float(number) * UNITS_MS[unit], 3)


def with_wrk(target: Target, concurrency: int, wrk: str) -> Load:
    headers = {"Content-Type": "image/jpeg", "Authorization": f"Bearer {target.token}"}
    return _wrk(target.url, target.image, headers, concurrency, wrk)


def _wrk(url: str, body: bytes, headers: dict[str, str], concurrency: int, wrk: str) -> Load:
    """wrk POSTing `body` with `headers` for WRK_SECONDS; any non-2xx answer is an error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "body.bin"
        path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        lines = [f'local f = io.open("{path}", "rb")', 'wrk.method = "POST"', 'wrk.body = f:read("*all")']
        lines += ["f:close()", *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())]
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [wrk, "-t1", f"-c{concurrency}", f"-d{WRK_SECONDS}s", "--timeout", "30s", "--latency"]
        command += ["-s", str(script), url]
        out = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=WRK_SECONDS + 30
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    # the "Latency Distribution" lines: "     50%    2.37ms" (other lines hold percentages too)
    found = [
        re.search(pattern, out, re.MULTILINE)
        for pattern in (
            r"Requests/sec:\s+([\d.]+)",
            r"^\s+50%\s+(\S+)$",
            r"^\s+99%\s+(\S+)$",
            r"(\d+) requests in",
        )
    ]
    if not all(found) or "Socket errors" in out:
        raise RuntimeError(f"wrk did not finish its requests:\n{out}")
    rate, p50, p99, count = (m.group(1) for m in found if m is not None)
    return Load(float(rate), _ms(p50), _ms(p99), "wrk", int(count))


def with_httpx(target: Target, concurrency: int, requests: int) -> Load:
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
    requests = int(_found(r"(\d+) requests in", out).group(1))
    rate = float(_found(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return RoundLoad(rate, 0.0, 0.0, "wrk", count=requests, requests=requests, failed=_wrk_failures(out))


def httpx_bodies(target: BodiesTarget, concurrency: int, seconds: int, on_tick: Tick) -> RoundLoad:
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
    rate = total / (time.monotonic() - start)
    return RoundLoad(rate, 0.0, 0.0, "httpx", count=total, requests=total, failed=counts["failed"])


def rest_load_bodies(
    target: BodiesTarget, concurrency: int, seconds: int, on_tick: Tick = lambda: None
) -> RoundLoad:
    """`seconds` of load cycling through the bodies; `on_tick` runs about once a second meanwhile."""
    wrk = shutil.which("wrk")
    if wrk:
        return wrk_bodies(target, concurrency, seconds, wrk, on_tick)
    return httpx_bodies(target, concurrency, seconds, on_tick)


@dataclass(frozen=True)
class KserveTarget:
    """The same KServe v2 request for every server: one input tensor."""

    url: str  # .../v2/models/{name}/infer
    token: str  # "" when the server takes none
    input: str
    tensor: np.ndarray


def kserve_body(target: KserveTarget, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The request body and headers: JSON data, or Triton's binary tensor extension both ways."""
    item: dict[str, Any] = {"name": target.input, "shape": list(target.tensor.shape), "datatype": "FP32"}
    headers = {"authorization": f"Bearer {target.token}"} if target.token else {}
    if not binary:
        document = {"inputs": [{**item, "data": target.tensor.reshape(-1)}]}
        headers["content-type"] = "application/json"
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY), headers
    raw = target.tensor.tobytes()
    item["parameters"] = {"binary_data_size": len(raw)}
    head = orjson.dumps({"inputs": [item], "parameters": {"binary_data_output": True}})
    headers.update(
        {"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))}
    )
    return head + raw, headers


def _timed(concurrency: int, requests: int, call: Callable[[int], Callable[[], None]]) -> Load:
    """`concurrency` threads, each running its own `call(i)()` until `requests` are done in all."""
    times: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        once = call(index)
        once()  # warm: connections set up before the clock starts
        ready.wait()
        for _ in range(max(1, requests // concurrency)):
            t0 = time.perf_counter()
            once()
            with lock:
                times.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker, i) for i in range(concurrency)]
        ready.wait(timeout=120)
        start = time.perf_counter()
        for future in futures:
            future.result()
    elapsed = time.perf_counter() - start
    p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])
    rate, count = len(times) / elapsed, len(times) + concurrency
    return Load(rate, round(float(p50), 3), round(float(p99), 3), "threads", count)


def kserve_load(
    target: KserveTarget, concurrency: int, requests: int, binary: bool, python: bool = False
) -> Load:
    """KServe v2 REST load (wrk when installed and not `python`, else threads); every answer must be 200."""
    body, headers = kserve_body(target, binary)
    wrk = shutil.which("wrk")
    if wrk and not python:
        return _wrk(target.url, body, headers, concurrency, wrk)

    def client(_index: int) -> Callable[[], None]:
        session = httpx.Client(timeout=60, headers=headers)

        def once() -> None:
            reply = session.post(target.url, content=body)
            if reply.status_code != 200 or b'"outputs"' not in reply.content[:4096]:
                raise RuntimeError(f"{target.url}: {reply.status_code} {reply.content[:200]!r}")

        return once

    return _timed(concurrency, requests, client)


def grpc_load(target: KserveTarget, port: int, model: str, concurrency: int, requests: int) -> Load:
    """KServe v2 gRPC ModelInfer with raw_input_contents, one channel per thread."""
    protocol = build()
    request = protocol["ModelInferRequest"](model_name=model)
    request.inputs.add(name=target.input, datatype="FP32", shape=list(target.tensor.shape))
    request.raw_input_contents.append(target.tensor.tobytes())
    payload = request.SerializeToString()
    metadata = (("authorization", f"Bearer {target.token}"),)

    def client(_index: int) -> Callable[[], None]:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary(
            f"/{SERVICE}/ModelInfer", response_deserializer=protocol["ModelInferResponse"].FromString
        )

        def once() -> None:
            reply = call(payload, metadata=metadata, timeout=60)
            if not reply.raw_output_contents:
                raise RuntimeError("gRPC answer without outputs")

        return once

    return _timed(concurrency, requests, client)
