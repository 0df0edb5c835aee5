"""`appliance bench --soak MINUTES`: distinct JPEGs at high concurrency against a real `appliance serve`,
and its resident memory (RSS) after warm-up against the end.

300 distinct JPEGs (the demo scene at different placements and sizes, 640 to 1920 pixels wide, as
cameras of several resolutions would send them) are POSTed to /api/v1/infer round robin, with the
server's default result cache on (so it churns). Load runs in rounds of ROUND_S; after each round the
load pauses SETTLE_S so that requests in flight finish, and the RSS is read then ("settled"): what
is left is what the process keeps, not the buffers of the requests it is serving. The first
WARMUP_SHARE of the run (at least 1 round) is warm-up; the figure is the settled RSS at the end over
the settled RSS after warm-up (goal: at most +5 % over 30 min).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from appliance.services import open_registry
from appliance_tools.bench import BenchOptions, ServerProcess, free_port
from appliance_tools.demo.setup import demo_models, register_models
from appliance_tools.demo.video import _background, _samples, placements, render
from appliance_tools.loadgen import BodiesTarget, RoundLoad, rest_load_bodies

logger = logging.getLogger(__name__)

IMAGES = 300
ROUND_S = 20
SETTLE_S = 3.0
WARMUP_SHARE = 0.2
GOAL_GROWTH = 0.05


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 30.0
    concurrency: int = 64
    model: str = "face"
    threads: int = 2


@dataclass
class SoakReport:
    options: SoakOptions
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s since start, settled RSS MB)
    loaded_max_mb: float = 0.0
    requests: int = 0
    failed: int = 0
    tool: str = ""
    warmup_rounds: int = 1

    @property
    def warm_mb(self) -> float:
        return self.samples[min(self.warmup_rounds, len(self.samples)) - 1][1]

    @property
    def end_mb(self) -> float:
        return self.samples[-1][1]

    @property
    def growth(self) -> float:
        return self.end_mb / self.warm_mb - 1.0


def distinct_jpegs(count: int = IMAGES) -> list[bytes]:
    photos, background = _samples(), _background()
    images = []
    for index, placement in enumerate(placements(count)):
        frame = render(placement, photos, background)
        width = 640 + (index * 37) % 1300
        frame = cv2.resize(frame, (width, width * 9 // 16))
        frame[0, :2] = (index % 256, index // 256, 0)  # distinct bytes even where placements repeat
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        images.append(bytes(jpeg.tobytes()))
    return images


def run_soak(cache: Path, options: SoakOptions) -> SoakReport:
    report = SoakReport(options)
    rounds = max(2, round(options.minutes * 60 / ROUND_S))
    report.warmup_rounds = max(1, round(rounds * WARMUP_SHARE))
    images = distinct_jpegs()
    with tempfile.TemporaryDirectory(prefix="appliance-soak-") as tmp:
        data = Path(tmp)
        registry = open_registry(data)
        register_models(registry, demo_models(cache))
        registry.activate(options.model)
        bench = BenchOptions(model=options.model, threads=options.threads)
        server = ServerProcess(data, free_port(), bench, cache_entries=None)
        try:
            target = BodiesTarget(f"{server.url}/api/v1/infer", server.token, tuple(images), data)
            started = time.monotonic()
            for index in range(rounds):
                load = _round(target, options.concurrency, server, report)
                time.sleep(SETTLE_S)
                report.samples.append((round(time.monotonic() - started, 1), round(server.rss_mb(), 1)))
                logger.info(
                    "soak round %d/%d: %.0f req/s, settled RSS %.1f MB",
                    index + 1,
                    rounds,
                    load.per_s,
                    report.samples[-1][1],
                )
        finally:
            server.stop()
    return report


def _round(target: BodiesTarget, concurrency: int, server: ServerProcess, report: SoakReport) -> RoundLoad:
    peak = [0.0]

    def sample() -> None:
        peak[0] = max(peak[0], server.rss_mb())

    load = rest_load_bodies(target, concurrency, ROUND_S, on_tick=sample)
    report.loaded_max_mb = round(max(report.loaded_max_mb, peak[0]), 1)
    report.requests += load.requests
    report.failed += load.failed
    report.tool = load.tool
    return load


def soak_markdown(report: SoakReport, when: str) -> str:
    o = report.options
    minutes = report.samples[-1][0] / 60
    met = "met" if report.growth <= GOAL_GROWTH else "MISSED"
    lines = [
        f"## Soak: {minutes:.1f} min of distinct JPEGs at concurrency {o.concurrency} (model `{o.model}`)",
        "",
        f"Written by `appliance bench --soak {o.minutes:g}` on {when}: {IMAGES} distinct JPEGs (640-1920 px "
        f"wide) round robin to `POST /api/v1/infer`, result cache on; {report.requests:,} requests "
        f"({report.failed} failed or timed out) from {report.tool}. RSS is read after each {ROUND_S} s "
        f"round once the load paused {SETTLE_S:g} s (settled); the first {report.warmup_rounds} round(s) "
        "are warm-up.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| settled RSS after warm-up | {report.warm_mb:.1f} MB |",
        f"| settled RSS at the end | {report.end_mb:.1f} MB |",
        f"| growth | {report.growth * 100:+.1f} % ({met}: goal <= +{GOAL_GROWTH * 100:.0f} % over 30 min) |",
        f"| highest RSS under load | {report.loaded_max_mb:.1f} MB |",
        "",
        "Settled RSS per round (MB): "
        + ", ".join(f"{mb:.0f}" for _, mb in report.samples)
        + f"; slope after warm-up {slope_mb_per_min(report):+.2f} MB/min.",
        "",
    ]
    return "\n".join(lines)


def slope_mb_per_min(report: SoakReport) -> float:
    points = report.samples[report.warmup_rounds - 1 :]
    if len(points) < 2:
        return 0.0
    t, mb = np.array([p[0] for p in points]) / 60, np.array([p[1] for p in points])
    return float(np.polyfit(t, mb, 1)[0])
