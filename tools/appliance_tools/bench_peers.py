"""`appliance bench --peers` (`make bench-peers`): the appliance and MLServer side by side.

Both serve the same demo .tflite (MLServer through the small LiteRT runtime below, in its own venv) and
get the same KServe v2 load from one client in one run: JSON at each concurrency for both, binary tensors
and gRPC for the appliance (MLServer's HTTP API has no binary tensors). The result is a markdown section
with the ratios against the goals, which replaces the `## Peers` section of the report.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import numpy as np

from appliance.services import open_registry
from appliance_tools.bench import BenchOptions, Measurement, ServerProcess, bench_raw, free_port
from appliance_tools.demo.setup import demo_models, register_models
from appliance_tools.loadgen import KserveTarget, Load, grpc_load, kserve_load

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 180.0
MARKER = "## Peers"
RUNTIME = '''"""MLServer runtime for one .tflite through ai_edge_litert (from appliance bench --peers)."""
from ai_edge_litert.interpreter import Interpreter
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class LiteRTRuntime(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra or {}
        self._interp = Interpreter(model_path=extra["model_path"], num_threads=int(extra["num_threads"]))
        self._interp.allocate_tensors()
        self._in, self._out = self._interp.get_input_details(), self._interp.get_output_details()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        for detail, tensor in zip(self._in, payload.inputs):
            array = NumpyCodec.decode_input(tensor).astype(detail["dtype"])
            self._interp.set_tensor(detail["index"], array)
        self._interp.invoke()
        get = self._interp.get_tensor
        outputs = [NumpyCodec.encode_output(d["name"], get(d["index"])) for d in self._out]
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)
'''


class MLServerProcess:
    """`mlserver start` on a generated model repository (one model, parallel_workers = 1, its default)."""

    def __init__(self, venv: Path, folder: Path, model: Path, name: str, threads: int) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        repo = folder / "mlserver"
        (repo / name).mkdir(parents=True)
        settings = {
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 1,
        }
        (repo / "settings.json").write_text(json.dumps(settings))
        extra = {"model_path": str(model), "num_threads": threads}
        model_settings = {
            "name": name,
            "implementation": "runtime.LiteRTRuntime",
            "parameters": {"extra": extra},
        }
        (repo / name / "model-settings.json").write_text(json.dumps(model_settings))
        (repo / name / "runtime.py").write_text(RUNTIME)
        self._log = (folder / "mlserver.log").open("w")
        command = [str(venv / "bin" / "mlserver"), "start", str(repo)]
        self.process = subprocess.Popen(command, cwd=repo, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(name)

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mlserver exited; see mlserver.log")
            try:
                if httpx.get(f"{self.url}/v2/models/{name}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("mlserver did not become ready")

    def stop(self) -> None:
        self.process.terminate()  # MLServer stops its worker processes on SIGTERM
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@dataclass(frozen=True)
class PeerRun:
    model: str
    raw: Measurement
    loads: dict[tuple[str, str, int], Load]  # (server, encoding, concurrency)
    cpu_ms: dict[tuple[str, str, int], float]  # the server's CPU per request (all its processes)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and every process under it, from /proc: on a shared
    machine, the figure that does not depend on how much of the CPU the scheduler gave the server."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        proc = int(stat.parent.name)
        parents[proc], cpu[proc] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    tree, grown = {pid}, True
    while grown:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree, grown = tree | more, bool(more)
    return sum(cpu.get(p, 0.0) for p in tree)


def _tensor(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).random(shape, dtype=np.float32)  # the reference harness's input


ROUNDS = 3  # every cell measured this many times, interleaved, and the median kept (a shared machine)


def _median(loads: list[Load]) -> Load:
    return sorted(loads, key=lambda load: load.per_s)[len(loads) // 2]


def run_peers(cache: Path, venv: Path, options: BenchOptions) -> PeerRun:
    """Both servers up at once (the idle one costs nothing), and every load run in turn against each,
    round after round, so a change in the machine's other load hits both alike."""

    with tempfile.TemporaryDirectory(prefix="appliance-peers-") as tmp:
        data = Path(tmp)
        registry = open_registry(data)
        register_models(registry, demo_models(cache))
        manifest = registry.get(options.model)
        model_file = registry.files_of(manifest)[".tflite"]
        spec = manifest.inputs[0]
        tensor = _tensor(tuple(spec.shape))
        grpc_port = free_port()
        peer = MLServerProcess(venv, data, model_file, options.model, options.threads)
        server: ServerProcess | None = None
        try:
            server = ServerProcess(data, free_port(), options, grpc_port=grpc_port)
            path = f"/v2/models/{options.model}/infer"
            theirs = KserveTarget(peer.url + path, "", spec.name, tensor)
            ours = KserveTarget(server.url + path, server.token, spec.name, tensor)
            n = options.requests
            cells: dict[tuple[str, str, int], Callable[[], Load]] = {}
            for c in options.concurrency:
                cells["mlserver", "json", c] = partial(kserve_load, theirs, c, n, False)
                cells["appliance", "json", c] = partial(kserve_load, ours, c, n, False)
                cells["appliance", "binary", c] = partial(kserve_load, ours, c, n, True)
                cells["appliance", "binary-py", c] = partial(kserve_load, ours, c, n, True, True)
                cells["appliance", "grpc", c] = partial(grpc_load, ours, grpc_port, options.model, c, n)
            samples: dict[tuple[str, str, int], list[Load]] = {key: [] for key in cells}
            used: dict[tuple[str, str, int], list[float]] = {key: [] for key in cells}
            raws = []
            for round_ in range(ROUNDS):
                raws.append(bench_raw(model_file, options))
                for key, load in cells.items():
                    pid = (peer if key[0] == "mlserver" else server).process.pid
                    before = tree_cpu_s(pid)
                    try:
                        samples[key].append(load())
                    except RuntimeError as err:  # one failed cell (timeouts on a loaded machine) is reported
                        logger.warning("peers: %s failed in round %d: %s", key, round_ + 1, err)
                        continue
                    used[key].append((tree_cpu_s(pid) - before) * 1e3 / max(1, samples[key][-1].count))
                logger.info("peers: round %d of %d done", round_ + 1, ROUNDS)
        finally:
            peer.stop()
            if server is not None:
                server.stop()
    raw = sorted(raws, key=lambda m: m.per_s)[len(raws) // 2]
    cpu = {key: round(float(np.median(ms)), 2) for key, ms in used.items() if ms}
    loads = {key: _median(runs) for key, runs in samples.items() if runs}
    return PeerRun(options.model, raw, loads, cpu)


def ratios(run: PeerRun) -> dict[str, tuple[float | None, str]]:
    """The issue's goals, each (measured value, target)."""

    def get(server: str, encoding: str, c: int) -> Load | None:
        return run.loads.get((server, encoding, c))

    out: dict[str, tuple[float | None, str]] = {}
    peer, json4 = get("mlserver", "json", 4), get("appliance", "json", 4)
    bin4, grpc4, bin1 = (
        get("appliance", "binary", 4),
        get("appliance", "grpc", 4),
        get("appliance", "binary", 1),
    )
    py4 = get("appliance", "binary-py", 4)
    if peer and json4:
        out["JSON c=4 req/s, appliance / MLServer"] = (round(json4.per_s / peer.per_s, 2), ">= 3")
        out["JSON c=4 p99, appliance / MLServer"] = (
            round((json4.p99_ms or 0) / (peer.p99_ms or 1), 2),
            "<= 0.5",
        )
    if peer and bin4:
        out["binary c=4 req/s / MLServer JSON"] = (round(bin4.per_s / peer.per_s, 2), ">= 15")
    cpu = run.cpu_ms
    if ("mlserver", "json", 4) in cpu and ("appliance", "json", 4) in cpu:
        ratio = cpu["mlserver", "json", 4] / max(cpu["appliance", "json", 4], 1e-6)
        out["JSON c=4 server CPU per request, MLServer / appliance"] = (round(ratio, 2), ">= 3")
    if ("mlserver", "json", 4) in cpu and ("appliance", "binary", 4) in cpu:
        ratio = cpu["mlserver", "json", 4] / max(cpu["appliance", "binary", 4], 1e-6)
        out["server CPU per request, MLServer JSON / appliance binary (c=4)"] = (round(ratio, 2), ">= 15")
    if py4 and grpc4:  # the same Python client both ways (wrk has no gRPC)
        out["gRPC c=4 req/s / binary REST, same client"] = (round(grpc4.per_s / py4.per_s, 2), ">= 1")
    if bin1 and bin1.p50_ms is not None and run.raw.p50_ms is not None:
        out["binary c=1 p50 - raw invoke p50, ms"] = (round(bin1.p50_ms - run.raw.p50_ms, 2), "<= 1")
    return out


def _met(value: float | None, target: str) -> str:
    op, number = target.split()
    if value is None:
        return "not measured"
    ok = value >= float(number) if op == ">=" else value <= float(number)
    return "met" if ok else "MISSED"


def peers_markdown(run: PeerRun, when: str, mlserver: str) -> str:
    lines = [
        f"{MARKER}: MLServer {mlserver} and the appliance, same KServe v2 load, one run",
        "",
        f"Written by `make bench-peers` on {when}. Model `{run.model}`, LiteRT, the same threads in both; "
        "MLServer with its default `parallel_workers = 1` and the runtime in "
        "tools/appliance_tools/bench_peers.py; the "
        "appliance with the result cache and rate limit off. Each request is the same FP32 tensor "
        f"(seed 0). Both servers run at once and every load is run against each in turn, {ROUNDS} rounds, "
        "the median kept. REST load from wrk; `binary-py` and `grpc` from Python threads (wrk has no "
        "gRPC), so those two compare with each other. "
        f"Raw invoke in the same run: {run.raw.per_s:,.0f}/s, p50 {run.raw.p50_ms} ms.",
        "",
        "| server | encoding | concurrency | req/s | p50 ms | p99 ms | server CPU ms/request |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (server, encoding, c), m in sorted(run.loads.items(), key=lambda kv: (kv[0][0] != "mlserver", kv[0])):
        cpu = run.cpu_ms.get((server, encoding, c))
        lines.append(f"| {server} | {encoding} | {c} | {m.per_s:,.1f} | {m.p50_ms} | {m.p99_ms} | {cpu} |")
    lines += ["", "| ratio | value | goal | |", "|---|---:|---|---|"]
    for name, (value, target) in ratios(run).items():
        lines.append(f"| {name} | {value} | {target} | {_met(value, target)} |")
    return "\n".join([*lines, ""])


def _split(text: str) -> tuple[str, str, str]:
    """The text before the peers section, the section (MARKER to the next '## ' heading) and after it."""
    if MARKER not in text:
        return text, "", ""
    before, rest = text.split(MARKER, 1)
    end = rest.find("\n## ")
    if end < 0:
        return before, MARKER + rest, ""
    return before, MARKER + rest[: end + 1], rest[end + 1 :]


def existing_section(report: Path) -> str:
    """The report's peers section, kept when `appliance bench` rewrites the rest of the report."""
    return _split(report.read_text(encoding="utf-8"))[1] if report.exists() else ""


def write_section(report: Path, section: str) -> None:
    """Replace the report's peers section in place, or add it at the end."""
    text = report.read_text(encoding="utf-8") if report.exists() else "# Benchmarks\n"
    before, _, after = _split(text)
    parts = [before.rstrip("\n"), "", section.rstrip("\n"), ""]
    report.write_text("\n".join(parts) + (f"\n{after}" if after else ""), encoding="utf-8")
