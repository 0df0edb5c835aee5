"""The whole pipeline on real parts: a video made here, real models, a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config import replace_section
from appliance.errors import ImageRejected, ModelRejected, SourceError
from appliance.models.registry import AddRequest, Registry
from appliance.pipeline.pipeline import Pipeline, PipelineOptions
from appliance.pipeline.results import Result, ResultBus
from appliance.pipeline.runtime import ModelManager, RuntimeOptions
from appliance.services import Services
from appliance.sources.base import Frame
from appliance.sources.files import VideoFileSource
from appliance.sources.live import LiveSource, Reconnect
from appliance_tools.demo.video import Placement, face_of, write_demo_video
from tests.conftest import config_for, wait_for

FRAMES = 40


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_video(tmp_path_factory.mktemp("video") / "demo.mp4", frames=FRAMES)


def run_video(data_dir: Path, video: Path, workers: int = 1) -> Services:
    config = config_for(
        data_dir,
        f'[source]\nkind = "video"\npath = "{video}"\nloop = false\n'
        f"[backend]\nworkers = {workers}\nthreads = 1\n",
    )
    services = Services.build(config)
    services.start()
    wait_for(
        lambda: (
            services.pipeline.source is not None
            and services.pipeline.source.ended
            and services.pipeline.published >= FRAMES
        )
    )
    assert services.writer is not None and services.writer.flush()
    services.stop()
    return services


@pytest.mark.parametrize("workers", [1, 2])
def test_video_through_pipeline_into_sqlite(data_dir: Path, demo_video: Path, workers: int) -> None:
    run_video(data_dir, demo_video, workers)
    plan = [Placement(**p) for p in json.loads(demo_video.with_suffix(".json").read_text())]
    conn = sqlite3.connect(data_dir / "results.db")
    rows = conn.execute(
        "SELECT seq, frame_id, model, backend, count, detections, source FROM results ORDER BY id"
    )
    rows = rows.fetchall()
    assert len(rows) == FRAMES
    assert [r[0] for r in rows] == list(range(1, FRAMES + 1))  # stored in order, even with 2 workers
    for _seq, frame_id, model, backend, count, detections, source in rows:
        assert (model, backend, source) == ("face", "litert", "main")
        truth = face_of(plan[frame_id - 1])
        if truth is None:
            assert count == 0
            continue
        assert count == 1, f"frame {frame_id}: face missed"
        x1, y1, x2, y2 = json.loads(detections)[0]["box"]
        assert abs((x1 + x2) / 2 - truth[0]) < 0.2 * truth[2]
        assert abs((y1 + y2) / 2 - truth[1]) < 0.2 * truth[2]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_corrupt_video_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    with pytest.raises(SourceError, match=r"cannot decode video file .*broken\.mp4"):
        VideoFileSource(bad).start()
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource(tmp_path / "missing.mp4").start()


def test_model_switch_mid_run_keeps_order_and_finishes_in_flight(
    registry: Registry, astronaut: np.ndarray
) -> None:
    manager = ModelManager(registry, RuntimeOptions(threads=1, workers=2, ring=12))
    manager.load_active()
    bus = ResultBus()
    seen: list[Result] = []
    bus.subscribe("test", seen.append)
    pipeline = Pipeline(manager, bus, PipelineOptions(queue_size=4, workers=2))
    pipeline.start()

    futures = []
    for i in range(60):
        if i == 30:
            manager.activate("selfie")
        futures.append(pipeline.submit(Frame(i, time.time(), "t", image=astronaut), store=False, timeout=5))
    results = [f.result(timeout=30) for f in futures]
    pipeline.stop()
    manager.close()
    assert [r.seq for r in seen] == sorted(r.seq for r in seen)
    models = [r.model for r in results]
    switch = models.index("selfie")
    assert set(models[:switch]) == {"face"} and set(models[switch:]) == {"selfie"}
    assert all(r.count == 1 for r in results)


def test_failed_activation_keeps_the_running_model(registry: Registry, data_dir: Path) -> None:
    manager = ModelManager(registry, RuntimeOptions(threads=1))
    manager.load_active()
    # a stored model whose file was damaged afterwards
    broken = registry.add(
        AddRequest(registry.files_of(registry.get("stripes"))[".tflite"], "classify", "damaged")
    )
    registry.files_of(broken)[".tflite"].write_bytes(b"garbage")
    with pytest.raises(ModelRejected):
        manager.activate("damaged")
    current = manager.current()
    assert current is not None and current.manifest.name == "face"
    assert registry.active().name == "face"  # type: ignore[union-attr]
    manager.close()


class FlakyCapture:
    """A real OpenCV capture of a video file that 'unplugs' after a number of frames."""

    opened = 0

    def __init__(self, path: Path, frames: int) -> None:
        FlakyCapture.opened += 1
        self._capture = cv2.VideoCapture(str(path))
        self._left = frames

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return bool(self._capture.isOpened())

    def read(self) -> tuple[bool, np.ndarray | None]:
        self._left -= 1
        if self._left < 0:
            return False, None
        time.sleep(0.005)
        ok, image = self._capture.read()
        return bool(ok), image

    def release(self) -> None:
        self._capture.release()


def test_live_source_reconnects_and_keeps_only_the_latest_frame(demo_video: Path) -> None:
    FlakyCapture.opened = 0
    source = LiveSource("cam", "camera", lambda: FlakyCapture(demo_video, 10), Reconnect(0.01, 0.05))
    source.start()
    wait_for(lambda: source.status().reconnects >= 2)
    frame = source.read(timeout=2)
    assert frame is not None and frame.image is not None
    status = source.status()
    source.stop()
    assert FlakyCapture.opened >= 3
    assert status.dropped > 0  # nobody read while frames came in: only the newest was kept
    assert status.state in ("connected", "lost", "reconnecting")


def test_live_source_that_cannot_open_backs_off(tmp_path: Path) -> None:
    attempts: list[float] = []

    def opener() -> cv2.VideoCapture:
        attempts.append(time.monotonic())
        return cv2.VideoCapture(str(tmp_path / "no-such-device.mp4"))

    source = LiveSource("cam", "camera", opener, Reconnect(0.02, 0.08))
    source.start()
    wait_for(lambda: len(attempts) >= 5)
    source.stop()
    gaps = np.diff(attempts)
    assert gaps[-1] > gaps[0]  # the wait grows
    assert source.status().state == "stopped"
    assert source.status().errors >= 5


def test_pipeline_keeps_working_after_bad_frames(registry: Registry, astronaut: np.ndarray) -> None:
    manager = ModelManager(registry, RuntimeOptions(threads=1))
    manager.load_active()
    pipeline = Pipeline(manager, ResultBus(), PipelineOptions())
    pipeline.start()
    bad = pipeline.submit(Frame(1, time.time(), "t", image=np.zeros((0, 0, 3), np.uint8)), False, 5)
    with pytest.raises(ImageRejected):
        bad.result(timeout=10)
    good = pipeline.submit(Frame(2, time.time(), "t", image=astronaut), False, 5).result(timeout=10)
    assert good.count == 1
    assert pipeline.metrics["preprocess"].errors == 1
    pipeline.stop()
    manager.close()


def test_registry_change_from_another_process_is_picked_up(data_dir: Path) -> None:
    services = Services.build(config_for(data_dir))
    services.start()
    try:
        other = Registry(data_dir / "models", lambda m, p: m)  # like `appliance models activate` elsewhere
        other.activate("stripes")
        wait_for(
            lambda: (
                services.manager.current() is not None
                and services.manager.current().manifest.name == "stripes"
            )
        )  # type: ignore[union-attr]
    finally:
        services.stop()


def test_threads_stop_cleanly(data_dir: Path, demo_video: Path) -> None:
    before = threading.active_count()
    services = run_video(data_dir, demo_video)
    assert services.pipeline.published == FRAMES
    wait_for(lambda: threading.active_count() <= before + 1, timeout=10)


def test_config_replace_helper(data_dir: Path) -> None:
    config = replace_section(config_for(data_dir), "backend", workers=3)
    assert config.backend.workers == 3
