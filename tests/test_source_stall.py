"""A live stream source against a real MJPEG-over-HTTP server that freezes (socket open, nothing sent)
and goes away: the source says `stalled`, then `connected` again with last_error cleared.

`python -m tests.test_source_stall 20` measures the time from the server's return to the first new
frame over 20 trials, with the default [source] settings (the figures in docs/config.md).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator

import pytest

from appliance.config import SourceConfig
from appliance.sources.base import Source
from appliance.sources.registry import create_source
from tests.conftest import wait_for
from tests.mjpeg_server import MjpegCamera


def stream_source(camera: MjpegCamera) -> Source:
    source = create_source(SourceConfig(kind="stream", url=camera.url, name="cam"))
    assert source is not None
    return source


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    running = MjpegCamera()
    running.start()
    yield running
    running.stop()


def frames_flow(source: Source) -> bool:
    seen = source.status().frames
    wait_for(lambda: source.status().frames >= seen + 3, timeout=20)
    return True


def test_a_frozen_stream_is_stalled_then_connected_again(camera: MjpegCamera) -> None:
    source = stream_source(camera)
    source.start()
    try:
        wait_for(lambda: source.status().state == "connected" and source.status().frames > 5)
        camera.freeze()  # the server keeps the socket open and sends nothing
        wait_for(lambda: source.status().state == "stalled", timeout=20)
        assert "no frame for" in (source.status().last_error or "")
        camera.thaw()
        wait_for(lambda: source.status().state == "connected", timeout=20)
        assert frames_flow(source)
        status = source.status()
        assert status.state == "connected" and status.last_error is None
    finally:
        source.stop()


def test_a_stream_that_stays_frozen_stays_stalled(camera: MjpegCamera) -> None:
    source = stream_source(camera)
    source.start()
    try:
        wait_for(lambda: source.status().state == "connected")
        camera.freeze()
        wait_for(lambda: source.status().errors >= 3, timeout=30)  # reopened, still nothing
        assert source.status().state == "stalled"
    finally:
        source.stop()


def test_a_stream_server_that_goes_away_and_returns(camera: MjpegCamera) -> None:
    source = stream_source(camera)
    source.start()
    try:
        wait_for(lambda: source.status().state == "connected" and source.status().frames > 5)
        camera.stop()
        wait_for(lambda: source.status().state == "reconnecting", timeout=20)
        assert source.status().last_error is not None
        time.sleep(1.5)  # away for a while (the backoff would have grown)
        camera.start()  # same port
        wait_for(lambda: source.status().state == "connected", timeout=20)
        assert frames_flow(source)
        assert source.status().last_error is None
    finally:
        source.stop()


def recovery_times(trials: int, away_s: float = 3.0) -> list[float]:
    """Seconds from the server listening again to the source's first new frame."""
    camera = MjpegCamera()
    camera.start()
    source = stream_source(camera)
    source.start()
    times = []
    try:
        wait_for(lambda: source.status().frames > 5)
        for _ in range(trials):
            camera.stop()
            wait_for(lambda: source.status().state == "reconnecting", timeout=20)
            time.sleep(away_s)
            before = source.status().frames
            camera.start()
            back = time.monotonic()
            while source.status().frames <= before:
                time.sleep(0.005)
            times.append(time.monotonic() - back)
    finally:
        source.stop()
        camera.stop()
    return times


def thaw_times(trials: int, frozen_s: float = 4.0) -> tuple[list[float], list[float]]:
    """Seconds from a freeze to `stalled`, and from the thaw to the first new frame."""
    camera = MjpegCamera()
    camera.start()
    source = stream_source(camera)
    source.start()
    detect, resume = [], []
    try:
        wait_for(lambda: source.status().frames > 5)
        for _ in range(trials):
            camera.freeze()
            frozen = time.monotonic()
            while source.status().state != "stalled":
                time.sleep(0.005)
            detect.append(time.monotonic() - frozen)
            time.sleep(max(0.0, frozen_s - detect[-1]))
            before = source.status().frames
            camera.thaw()
            thawed = time.monotonic()
            while source.status().frames <= before:
                time.sleep(0.005)
            resume.append(time.monotonic() - thawed)
    finally:
        source.stop()
        camera.stop()
    return detect, resume


def summary(name: str, measured: list[float]) -> str:
    ordered = sorted(measured)
    return (
        f"{name}, {len(ordered)} trials: min {ordered[0]:.2f} s, median {statistics.median(ordered):.2f} s, "
        f"max {ordered[-1]:.2f} s, over 2 s: {sum(t > 2.0 for t in ordered)}\n"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    sys.stdout.write(summary("server back -> first frame", recovery_times(count)))
    detected, resumed = thaw_times(count)
    sys.stdout.write(summary("freeze -> stalled", detected))
    sys.stdout.write(summary("thaw -> first frame", resumed))
