"""File sources: a video file and a folder of images. They never drop: they go at the pipeline's pace."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.errors import SourceError
from appliance.sources.base import Frame, FrameCounter, SourceState, SourceStatus

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class _Paced:
    """Common state of file sources: counters, optional pacing to a frame rate, and end of input."""

    kind = "file"
    live = False

    def __init__(self, name: str, loop: bool, rate: float) -> None:
        self.name = name
        self.loop = loop
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next_at = 0.0
        self.counter = FrameCounter()
        self.state = SourceState.STARTING
        self._lock = threading.Lock()

    @property
    def ended(self) -> bool:
        return self.state == SourceState.ENDED

    def _pace(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if self._next_at > now:
            time.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + self._interval

    def _frame(self, image: np.ndarray) -> Frame:
        return Frame(self.counter.frame(), time.time(), self.name, image=image)

    def _detail(self) -> dict[str, object] | None:
        return None

    def status(self) -> SourceStatus:
        c = self.counter
        return SourceStatus(
            self.name,
            self.kind,
            self.state.value,
            self.live,
            c.fps(),
            c.frames,
            c.dropped,
            c.errors,
            c.reconnects,
            c.last_error,
            self._detail(),
        )


class VideoFileSource(_Paced):
    kind = "video"

    def __init__(self, path: Path, name: str = "video", loop: bool = True, rate: float = 0.0) -> None:
        super().__init__(name, loop, rate)
        self.path = path
        self._capture: Any = None

    def start(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        capture = cv2.VideoCapture(str(self.path))
        ok, _ = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise SourceError(f"cannot decode video file {self.path}: not a video or corrupt")
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._capture = capture
        self.state = SourceState.CONNECTED

    def read(self, timeout: float) -> Frame | None:
        with self._lock:
            if self._capture is None or self.ended:
                return None
            self._pace()
            ok, image = self._capture.read()
            if not ok and self.loop and self.counter.frames:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._capture.read()
            if not ok:
                self.state = SourceState.ENDED
                logger.info("video %s ended after %d frames", self.path, self.counter.frames)
                return None
            return self._frame(image)

    def stop(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            if not self.ended:
                self.state = SourceState.STOPPED


class ImageFolderSource(_Paced):
    kind = "folder"

    def __init__(self, path: Path, name: str = "folder", loop: bool = True, rate: float = 0.0) -> None:
        super().__init__(name, loop, rate)
        self.path = path
        self._files: list[Path] = []
        self._index = 0

    def start(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"image folder {self.path} does not exist")
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {self.path} has no {', '.join(IMAGE_SUFFIXES)} files")
        self.state = SourceState.CONNECTED

    def read(self, timeout: float) -> Frame | None:
        with self._lock:
            for _ in range(len(self._files)):
                if self._index >= len(self._files):
                    if not self.loop:
                        self.state = SourceState.ENDED
                        return None
                    self._index = 0
                path = self._files[self._index]
                self._index += 1
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    self.counter.error(f"{path.name}: not a readable image")
                    logger.warning("skipping %s: not a readable image", path)
                    continue
                self._pace()
                return self._frame(image)
            self.state = SourceState.ENDED
            return None

    def stop(self) -> None:
        if not self.ended:
            self.state = SourceState.STOPPED
