"""`appliance bench`: one model measured three ways in one run, against raw LiteRT invoke().

1. raw `Interpreter.invoke()` in a loop (the limit);
2. the whole pipeline from a video file into SQLite (and with logging off, for the p99 comparison;
   and with a shadow run of a second version beside it, for its cost to the active model), and a
   naive single-threaded loop doing the same work (the peer every pipeline must beat);
3. `POST /api/v1/infer` against a live `appliance serve` at several concurrencies;
plus the store's sustained rows/s, the server's RSS and its time from start to ready.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from appliance.auth.store import AuthStore
from appliance.backends.litert import interpreter_class
from appliance.config import Config, parse_config
from appliance.models.registry import Registry
from appliance.services import Services, open_registry
from appliance.store.rows import COLUMNS, Record
from appliance.store.writer import ResultWriter, WriterOptions
from appliance_tools.demo.setup import demo_models, register_models
from appliance_tools.demo.video import _background, _samples, placements, render, write_demo_video
from appliance_tools.loadgen import Target, rest_load
from appliance_tools.plc_bench import bench_modbus_trigger

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BenchOptions:
    model: str = "face"
    frames: int = 1000
    requests: int = 400
    rows: int = 50_000
    threads: int = 2
    concurrency: tuple[int, ...] = (1, 4, 16)
    backend: str = "litert"
    workers: int = 1

    def backend_toml(self) -> str:
        """[backend] for the runs: the chosen backend first, LiteRT as fallback; per-core on the NPU."""
        order = [self.backend] if self.backend == "litert" else [self.backend, "litert"]
        policy = "per-core" if self.backend == "rknn" else "auto"
        names = ", ".join(f'"{n}"' for n in order)
        return (
            f"[backend]\nthreads = {self.threads}\nworkers = {self.workers}\norder = [{names}]\n"
            f'core_policy = "{policy}"\n'
        )


@dataclass
class Measurement:
    name: str
    per_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""


@dataclass
class Report:
    model: str
    measurements: list[Measurement] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Measurement:
        return next(m for m in self.measurements if m.name == name)


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.array(samples_s) * 1e3, [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def bench_raw(model: Path, options: BenchOptions) -> Measurement:
    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(model), num_threads=options.threads)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    for _ in range(20):
        interpreter.invoke()
    times = []
    start = time.perf_counter()
    for _ in range(options.frames):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return Measurement("raw invoke()", options.frames / elapsed, *percentiles(times))


def bench_naive(model: Path, video: Path, data_dir: Path, options: BenchOptions) -> Measurement:
    """The same work without the pipeline, in one thread: decode a frame, resize and scale it,
    invoke, read the outputs, insert a row into SQLite (one commit per row)."""
    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(model), num_threads=options.threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    _, height, width, _ = (int(d) for d in detail["shape"])
    outputs = interpreter.get_output_details()
    db = sqlite3.connect(data_dir / "naive.db")
    db.execute("CREATE TABLE IF NOT EXISTS results (ts REAL, seq INTEGER, score REAL, outputs TEXT)")
    capture = cv2.VideoCapture(str(video))
    start = time.perf_counter()
    for seq in range(options.frames):
        ok, frame = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = capture.read()
        rgb = cv2.cvtColor(
            cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        interpreter.set_tensor(
            detail["index"], (rgb[None].astype(np.float32) / 127.5 - 1).astype(detail["dtype"])
        )
        interpreter.invoke()
        values = [interpreter.get_tensor(o["index"]) for o in outputs]
        score = float(values[-1].max())
        db.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?)",
            (time.time(), seq, score, json.dumps([v.shape for v in values])),
        )
        db.commit()
    elapsed = time.perf_counter() - start
    db.close()
    return Measurement(
        "naive single-threaded loop", options.frames / elapsed, note="decode→SQLite, one thread"
    )


SHADOW_EVERY = 10  # the shadow bench compares every 10th result (idle mode would compare none: the
# pipeline is never idle while it is measured)


def _pipeline_config(
    data_dir: Path, video: Path, store: bool, options: BenchOptions, extra: str = ""
) -> Config:
    return parse_config(
        f'[data]\ndir = "{data_dir}"\n[source]\nkind = "video"\npath = "{video}"\nloop = true\n'
        f"{options.backend_toml()}[store]\nenabled = {'true' if store else 'false'}\n"
        f"[pipeline]\nqueue_size = 8\n{extra}"
    )


def bench_pipeline(
    data_dir: Path, video: Path, options: BenchOptions, store: bool, shadow: bool = False
) -> Measurement:
    """Results/s published from the video; with `shadow`, while the registry's newest version of the
    model (added by run_bench) is shadowed beside the active one on every SHADOW_EVERY-th result."""
    extra = f"[model]\nshadow_every = {SHADOW_EVERY}\n" if shadow else ""
    services = Services.build(_pipeline_config(data_dir, video, store, options, extra))
    services.start()
    try:
        if shadow:
            services.shadow.start(options.model)
        warm = 50
        while services.pipeline.published < warm:
            time.sleep(0.005)
        start_count, start = services.pipeline.published, time.perf_counter()
        while services.pipeline.published < start_count + options.frames:
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
        done = services.pipeline.published - start_count
        infer = services.pipeline.metrics["infer"].snapshot()
        backend = services.bus.latest.backend if services.bus.latest else "?"
        note = f"p50/p99: inference stage; {backend}"
        if shadow:
            frames = services.shadow.status()["stats"]["frames"]
            note += f"; shadow compared {frames['compared']}, skipped {frames['skipped']}"
    finally:
        services.stop()
    name = "pipeline, shadow running" if shadow else "pipeline video→SQLite"
    name = name if store else "pipeline, logging off"
    return Measurement(name, done / elapsed, infer.p50_ms, infer.p99_ms, note)


def bench_store(data_dir: Path, rows: int) -> Measurement:
    writer = ResultWriter(data_dir / "store-bench", WriterOptions(queue_size=rows, batch_size=1000))
    values = {
        "ts": time.time(),
        "seq": 0,
        "frame_id": 0,
        "source": "bench",
        "model": "m",
        "model_version": 1,
        "task": "detect",
        "backend": "litert",
        "label": "face",
        "label_id": 0,
        "score": 0.9,
        "count": 1,
        "detections": '[{"label":"face","box":[1,2,3,4]}]',
        "extra": None,
        "pre_ms": 1.0,
        "infer_ms": 1.0,
        "post_ms": 1.0,
        "total_ms": 3.0,
        "verdict": None,
    }
    # seq is a unique key of results.db: one per row (rows with a stored seq would be skipped)
    records = [Record(tuple({**values, "seq": i}[c] for c in COLUMNS)) for i in range(1, rows + 1)]
    writer.start()
    start = time.perf_counter()
    for record in records:
        writer.submit(record)
    writer.flush(timeout=300)
    elapsed = time.perf_counter() - start
    writer.close()
    return Measurement("store rows/s", rows / elapsed, note=f"{writer.commits} commits")


class ServerProcess:
    """`appliance serve` in a subprocess, with its time to ready and RSS."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        options: BenchOptions,
        cache_entries: int | None = 0,
        grpc_port: int | None = None,
    ) -> None:
        """`cache_entries` None: the server's default result cache; `grpc_port`: KServe gRPC on."""
        self.url = f"http://127.0.0.1:{port}"
        self.token = AuthStore(data_dir).create_token("bench", "operate")
        config = data_dir / "bench-server.toml"
        cache = "" if cache_entries is None else f"cache_entries = {cache_entries}\n"
        config.write_text(
            f'[server]\nport = {port}\n{cache}[data]\ndir = "{data_dir}"\n'
            f'{options.backend_toml()}[log]\nlevel = "WARNING"\n[auth]\nrate_per_s = 0\n'
            + (f"[grpc]\nenabled = true\nport = {grpc_port}\n" if grpc_port else "")
        )
        self._log = (data_dir / "bench-server.log").open("w")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ready_s = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError("bench server exited; see bench-server.log")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        raise RuntimeError("bench server did not become ready")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


def bench_rest(server: ServerProcess, image: bytes, requests: int, concurrency: int) -> Measurement:
    target = Target(f"{server.url}/api/v1/infer", server.token, image)
    load = rest_load(target, concurrency, requests)
    return Measurement(
        f"REST infer, concurrency {concurrency}",
        load.per_s,
        load.p50_ms,
        load.p99_ms,
        f"load from {load.tool}",
    )


def bench_modbus(data_dir: Path, video: Path, options: BenchOptions) -> Measurement:
    """PLC round trip: write the trigger coil, poll until result valid, read the registers."""
    trip = bench_modbus_trigger(data_dir, video, triggers=200, threads=options.threads)
    note = f"{trip.count} sequential triggers, {trip.errors} errors; per second = 1000 / p50"
    return Measurement("Modbus trigger round trip", 1000.0 / trip.p50_ms, trip.p50_ms, trip.p99_ms, note)


def bench_image() -> bytes:
    frame = render(placements(4)[0], _samples(), _background())
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])  # what a camera would send
    assert ok
    return bytes(jpeg.tobytes())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_bench(cache: Path, options: BenchOptions) -> Report:
    report = Report(options.model)
    with tempfile.TemporaryDirectory(prefix="appliance-bench-") as tmp:
        data = Path(tmp)
        registry: Registry = open_registry(data)
        models = demo_models(cache)
        register_models(registry, models)
        registry.activate(options.model)
        registry.add(next(m.request for m in models if m.request.name == options.model))  # the shadow
        model_file = registry.files_of(registry.get(options.model))[".tflite"]
        video = write_demo_video(data / "bench.mp4", frames=60)
        report.measurements.append(bench_raw(model_file, options))
        report.measurements.append(bench_pipeline(data, video, options, store=True))
        report.measurements.append(bench_pipeline(data, video, options, store=False))
        report.measurements.append(bench_pipeline(data, video, options, store=True, shadow=True))
        report.measurements.append(bench_naive(model_file, video, data, options))
        report.measurements.append(bench_store(data, options.rows))
        server = ServerProcess(data, free_port(), options)
        try:
            image = bench_image()
            for concurrency in options.concurrency:
                report.measurements.append(bench_rest(server, image, options.requests, concurrency))
            report.facts.update(ready_s=round(server.ready_s, 3), rss_mb=round(server.rss_mb(), 1))
        finally:
            server.stop()
        report.measurements.append(bench_modbus(data, video, options))
    report.facts.update(
        workers=options.workers,
        threads=options.threads,
        cpus=os.cpu_count(),
        python=sys.version.split()[0],
        backend=options.backend,
    )
    return report


def summary(report: Report) -> dict[str, Any]:
    raw = report.get("raw invoke()").per_s
    logged, unlogged = report.get("pipeline video→SQLite"), report.get("pipeline, logging off")
    rest4 = next((m for m in report.measurements if m.name.endswith("concurrency 4")), None)
    p99_on, p99_off = logged.p99_ms or 0.0, unlogged.p99_ms or 1.0
    return {
        "pipeline/raw": round(logged.per_s / raw, 3),
        "pipeline shadow on/off": round(report.get("pipeline, shadow running").per_s / logged.per_s, 3),
        "pipeline/naive loop": round(logged.per_s / report.get("naive single-threaded loop").per_s, 3),
        "REST(c=4)/raw": round(rest4.per_s / raw, 3) if rest4 else None,
        "store rows/s": round(report.get("store rows/s").per_s),
        "infer p99 logging on/off": round(p99_on / p99_off, 3),
        "RSS MB": report.facts.get("rss_mb"),
        "ready s": report.facts.get("ready_s"),
    }


TARGETS = {
    "pipeline/raw": (">=", 0.95),
    "pipeline shadow on/off": (">=", 0.95),
    "pipeline/naive loop": (">=", 1.3),
    "REST(c=4)/raw": (">=", 0.9),
    "store rows/s": (">=", 20_000),
    "infer p99 logging on/off": ("<=", 1.05),
    "RSS MB": ("<=", 150),
    "ready s": ("<=", 2.0),
}


def verdict(name: str, value: Any) -> str:
    op, target = TARGETS[name]
    if value is None:
        return "not measured"
    met = value >= target if op == ">=" else value <= target
    return f"{'met' if met else 'MISSED'} (target {op} {target})"


def to_json(report: Report) -> str:
    return json.dumps(
        {
            "model": report.model,
            "facts": report.facts,
            "summary": summary(report),
            "measurements": [m.__dict__ for m in report.measurements],
        },
        indent=2,
    )


def _section(report: Report) -> list[str]:
    f = report.facts
    lines = [
        f"## Model `{report.model}`: {f.get('workers')} interpreter(s) x {f.get('threads')} thread(s)",
        "",
        "| measurement | per second | p50 ms | p99 ms | note |",
        "|---|---:|---:|---:|---|",
    ]
    for m in report.measurements:
        lines.append(
            f"| {m.name} | {m.per_s:,.1f} | {m.p50_ms if m.p50_ms is not None else ''} | "
            f"{m.p99_ms if m.p99_ms is not None else ''} | {m.note} |"
        )
    lines += ["", "| ratio / figure | value | against the target |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {verdict(name, value)} |" for name, value in summary(report).items()]
    return [*lines, ""]


def sections_markdown(reports: list[Report]) -> str:
    """Only the per-model sections (for appending another configuration to a report)."""
    return "\n".join(line for report in reports for line in _section(report))


def to_markdown(reports: list[Report], when: str, notes: str = "") -> str:
    facts = reports[0].facts
    lines = [
        "# Benchmarks",
        "",
        f"Written by `appliance bench` on {when}: backend `{facts.get('backend')}`, "
        f"{facts.get('cpus')} CPU cores, Python {facts.get('python')}. The raw loop runs one interpreter "
        "with the same threads per interpreter as the pipeline. "
        "Absolute numbers on a shared 2-core build machine are noisy; the ratios were measured in one run "
        "and are what to compare. The REST runs use a server with the result cache off, so every request "
        "is inferred.",
        "",
    ]
    for report in reports:
        lines += _section(report)
    if notes:
        lines += ["## Reading these numbers", "", notes.strip(), ""]
    lines += ["Run it yourself: `make bench` (or `appliance bench --model face,selfie --report FILE`).", ""]
    return "\n".join(lines)
