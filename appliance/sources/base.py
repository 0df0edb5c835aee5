"""The Source interface: anything that yields frames (images or sensor tensors) to the pipeline."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

FPS_WINDOW_S = 2.0


class SourceState(enum.StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    STALLED = "stalled"
    ENDED = "ended"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Frame:
    """One input: a BGR uint8 image, a compressed image (JPEG, PNG: `encoded`, decoded by the pipeline's
    preprocess stage at the size the model needs), or a sensor tensor (exactly one of the three)."""

    frame_id: int
    ts: float
    source: str
    image: np.ndarray | None = None
    tensor: np.ndarray | None = None
    encoded: bytes | None = None

    @property
    def is_image(self) -> bool:
        return self.image is not None or self.encoded is not None


@dataclass(frozen=True)
class SourceStatus:
    name: str
    kind: str
    state: str
    live: bool
    fps: float
    frames: int
    dropped: int
    errors: int
    reconnects: int
    last_error: str | None
    detail: dict[str, object] | None = None


class Source(Protocol):
    name: str
    kind: str
    live: bool

    def start(self) -> None: ...

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None if none came within `timeout` (or the source has ended)."""

    @property
    def ended(self) -> bool:
        """True once a finite source (non-looping file) has nothing more to give."""

    def status(self) -> SourceStatus: ...

    def stop(self) -> None: ...


class FrameCounter:
    """Counts frames, drops and errors, and measures the frame rate over a short window."""

    def __init__(self) -> None:
        self.frames = 0
        self.dropped = 0
        self.errors = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._window_start = time.monotonic()
        self._window_frames = 0
        self._fps = 0.0
        self._lock = threading.Lock()

    def frame(self) -> int:
        """Count one frame; returns its id."""
        with self._lock:
            self.frames += 1
            self._window_frames += 1
            now = time.monotonic()
            elapsed = now - self._window_start
            if elapsed >= FPS_WINDOW_S:
                self._fps = self._window_frames / elapsed
                self._window_start, self._window_frames = now, 0
            return self.frames

    def fps(self) -> float:
        with self._lock:
            if time.monotonic() - self._window_start > 2 * FPS_WINDOW_S:
                return 0.0
            return round(self._fps, 2)

    def error(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = message


class LatestSlot:
    """Holds only the newest frame: a live source never queues; an overwritten frame counts as dropped."""

    def __init__(self, counter: FrameCounter) -> None:
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        self._counter = counter

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self._counter.dropped += 1
            self._frame = frame
            self._cond.notify()

    def take(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame
