"""Live sources (V4L2/USB camera, RTSP/HTTP stream) through OpenCV, and frames pushed through the API.

A reader thread grabs frames as fast as the device gives them and keeps only the latest (older ones are
counted as dropped). On loss it closes the device and reconnects with exponential backoff, reporting
its state: connected, lost, reconnecting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from appliance.sources.base import Frame, FrameCounter, LatestSlot, SourceState, SourceStatus

logger = logging.getLogger(__name__)

Opener = Callable[[], Any]  # returns an object with isOpened(), read(), release() (cv2.VideoCapture)


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.5
    max_s: float = 30.0

    def delays(self) -> Any:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


def camera_opener(device: str, width: int, height: int) -> Opener:
    def open_camera() -> Any:
        target: int | str = int(device) if device.isdigit() else device
        capture = (
            cv2.VideoCapture(target, cv2.CAP_V4L2) if isinstance(target, int) else cv2.VideoCapture(target)
        )
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        return capture

    return open_camera


def stream_opener(url: str) -> Opener:
    return lambda: cv2.VideoCapture(url)


class LiveSource:
    live = True

    def __init__(self, name: str, kind: str, opener: Opener, backoff: Backoff) -> None:
        self.name = name
        self.kind = kind
        self._open = opener
        self._backoff = backoff
        self.counter = FrameCounter()
        self._slot = LatestSlot(self.counter)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = SourceState.STARTING

    @property
    def ended(self) -> bool:
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def _set_state(self, state: SourceState, why: str = "") -> None:
        if state != self.state:
            logger.info("source %s: %s%s", self.name, state.value, f" ({why})" if why else "")
            self.state = state

    def _connect(self) -> Any:
        delays = self._backoff.delays()
        while not self._stop.is_set():
            capture = self._open()
            if capture.isOpened():
                self._set_state(SourceState.CONNECTED)
                return capture
            capture.release()
            self.counter.error("cannot open device")
            self._set_state(SourceState.RECONNECTING, "cannot open")
            self._stop.wait(next(delays))
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            capture = self._connect()
            if capture is None:
                return
            self._pump(capture)
            capture.release()
            if not self._stop.is_set():
                self.counter.reconnects += 1
                self._set_state(SourceState.LOST, "no frame")
        self._set_state(SourceState.STOPPED)

    def _pump(self, capture: Any) -> None:
        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                self.counter.error("read failed")
                return
            self._slot.put(Frame(self.counter.frame(), time.time(), self.name, image=image))

    def read(self, timeout: float) -> Frame | None:
        return self._slot.take(timeout)

    def status(self) -> SourceStatus:
        c = self.counter
        return SourceStatus(
            self.name,
            self.kind,
            self.state.value,
            True,
            c.fps(),
            c.frames,
            c.dropped,
            c.errors,
            c.reconnects,
            c.last_error,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.state = SourceState.STOPPED


class PushSource:
    """Frames pushed by a client (POST /api/v1/frames): latest one wins, like a camera."""

    kind = "push"
    live = True

    def __init__(self, name: str = "push") -> None:
        self.name = name
        self.counter = FrameCounter()
        self._slot = LatestSlot(self.counter)
        self.state = SourceState.STARTING

    @property
    def ended(self) -> bool:
        return False

    def start(self) -> None:
        self.state = SourceState.CONNECTED

    def push(self, image: np.ndarray | None = None, tensor: np.ndarray | None = None) -> int:
        frame = Frame(self.counter.frame(), time.time(), self.name, image=image, tensor=tensor)
        self._slot.put(frame)
        return frame.frame_id

    def read(self, timeout: float) -> Frame | None:
        return self._slot.take(timeout)

    def status(self) -> SourceStatus:
        c = self.counter
        return SourceStatus(
            self.name,
            self.kind,
            self.state.value,
            True,
            c.fps(),
            c.frames,
            c.dropped,
            c.errors,
            0,
            c.last_error,
        )

    def stop(self) -> None:
        self.state = SourceState.STOPPED
