"""The frame path on real models: compressed frames decoded just large enough, pooled input tensors
shared by no two frames in flight, non-blocking submission, observers after publication."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from appliance.config import Config
from appliance.errors import Busy
from appliance.models.registry import Registry
from appliance.pipeline.oneshot import OneShot
from appliance.pipeline.pipeline import Pipeline, PipelineOptions
from appliance.pipeline.results import Result, ResultBus
from appliance.pipeline.runtime import ModelManager, RuntimeOptions
from appliance.processing.image import decode, jpeg_size, reduction
from appliance.processing.inference import Detection
from appliance.sources.base import Frame

IOU_TOLERANCE = 0.85  # reduced vs full decode: the same face, boxes overlapping at least this much


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


@pytest.fixture(scope="module")
def full_hd_jpeg(astronaut: np.ndarray) -> bytes:
    """The astronaut's head and shoulders filling a 1920x1080 frame, as a camera would send it."""
    canvas = cv2.resize(astronaut[40:220, 67:387], (1920, 1080), interpolation=cv2.INTER_CUBIC)
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def test_jpeg_header_size_and_the_reduction_it_allows(full_hd_jpeg: bytes, astronaut_png: bytes) -> None:
    assert jpeg_size(full_hd_jpeg) == (1920, 1080)
    assert jpeg_size(astronaut_png) is None and jpeg_size(b"\xff\xd8") is None
    assert reduction((1920, 1080), (128, 128)) == 8  # decoded at 240x135
    assert reduction((640, 480), (128, 128)) == 2
    assert reduction((640, 480), (256, 256)) == 1
    assert decode(full_hd_jpeg, (128, 128)).shape == (135, 240, 3)
    assert decode(full_hd_jpeg).shape == (1080, 1920, 3)


def test_reduced_decode_finds_the_same_face_as_a_full_decode(registry: Registry, full_hd_jpeg: bytes) -> None:
    with OneShot(registry, registry.get("face"), Config()) as runner:
        full = runner.run(decode(full_hd_jpeg))
        reduced = runner.run(None, encoded=full_hd_jpeg)
    assert full.count == reduced.count == 1
    want, got = full.detections[0], reduced.detections[0]
    assert iou(want.box, got.box) >= IOU_TOLERANCE, (want.box, got.box)  # in full-frame pixels
    assert abs(want.score - got.score) < 0.1
    assert got.box[2] - got.box[0] > 400  # full-frame pixels, not those of the 240x135 decode


@pytest.fixture
def face_manager(registry: Registry) -> Iterator[ModelManager]:
    manager = ModelManager(registry, RuntimeOptions(threads=1, workers=2, ring=2))
    manager.load_active()
    yield manager
    manager.close()


def test_pooled_tensors_are_never_shared_by_frames_in_flight(
    face_manager: ModelManager, astronaut: np.ndarray
) -> None:
    """Two preprocess threads, two workers, a pool smaller than what is in flight: every result is
    what the same frame gives on its own."""
    shifts = [(dx, dy) for dx in (0, 40, 80) for dy in (0, 30, 60)]
    frames = [np.roll(astronaut, shift, axis=(1, 0)) for shift in shifts]
    with OneShot(face_manager.registry, face_manager.registry.get("face"), Config()) as runner:
        alone = [runner.run(image).detections for image in frames]
    bus = ResultBus()
    pipeline = Pipeline(face_manager, bus, PipelineOptions(queue_size=4, workers=2, preprocess_threads=2))
    pipeline.start()
    try:
        futures = [
            pipeline.submit(Frame(i, time.time(), "t", image=frames[i % len(frames)]), False, 30)
            for i in range(45)
        ]
        results = [f.result(timeout=60) for f in futures]
    finally:
        pipeline.stop()
    for i, result in enumerate(results):
        assert boxes(result.detections) == boxes(alone[i % len(frames)]), i
    assert [r.seq for r in results] == sorted(r.seq for r in results)


def boxes(detections: tuple[Detection, ...]) -> list[tuple[float, ...]]:
    return [tuple(round(v, 1) for v in d.box) for d in detections]


def test_submit_nowait_raises_busy_when_full_and_takes_no_number(
    face_manager: ModelManager, astronaut: np.ndarray
) -> None:
    pipeline = Pipeline(face_manager, ResultBus(), PipelineOptions(queue_size=2))  # not started: holds 2
    frame = Frame(1, time.time(), "api", image=astronaut)
    held = [pipeline.submit_nowait(frame, False) for _ in range(2)]
    before = pipeline.sequence.peek()
    started = time.monotonic()
    with pytest.raises(Busy):
        pipeline.submit_nowait(frame, False)
    assert time.monotonic() - started < 1.0  # not a wait: answered at once
    assert pipeline.sequence.peek() == before
    pipeline.start()
    results = [f.result(timeout=30) for f in held]
    assert [r.seq for r in results] == [before - 2, before - 1]
    pipeline.stop()


def test_observers_see_each_published_frame_and_result_without_holding_publication(
    face_manager: ModelManager, full_hd_jpeg: bytes
) -> None:
    bus = ResultBus()
    published: list[Result] = []
    bus.subscribe("test", published.append)
    pipeline = Pipeline(face_manager, bus, PipelineOptions(queue_size=4, workers=2))
    seen: list[tuple[Frame, Result]] = []
    release = threading.Event()

    def slow_observer(frame: Frame, result: Result) -> None:
        release.wait(30)
        seen.append((frame, result))

    pipeline.add_observer(slow_observer)
    pipeline.start()
    try:
        frames = [Frame(i, time.time(), "cam", encoded=full_hd_jpeg) for i in range(8)]
        results = [pipeline.submit(f, False, 30).result(timeout=60) for f in frames]
        assert len(published) == 8  # published while the observer is still blocked
        release.set()
    finally:
        pipeline.stop()
    assert [r.seq for _, r in seen] == [r.seq for r in results]
    assert [f.frame_id for f, _ in seen] == list(range(8))
    assert all(r.count == 1 and r.detections[0].box[2] > 1000 for r in results)  # full-frame pixels
