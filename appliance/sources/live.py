"""Live sources (V4L2/USB camera, RTSP/HTTP stream) through OpenCV, and frames pushed through the API.

A reader thread grabs frames as fast as the device gives them and keeps only the latest (older ones are
counted as dropped). Its states (docs/config.md, [source]):
- connected: frames arrive;
- stalled: the device or stream is there but no frame came for source.stall_s (a hung camera or a
  frozen stream server); the read gives up after stall_s and the source is reopened until frames flow;
- lost: a read failed (a moment, before reconnecting);
- reconnecting: the device or stream cannot be opened, or its host does not answer.
While the peer is away a cheap probe (a TCP connect to the stream's host, the /dev/video node for a
camera) runs every PROBE_S, and the backoff is reset, so that the stream is reopened as soon as it is
back; opens that fail quickly while the peer answers back off from source.reconnect_min_s, doubling
up to source.reconnect_max_s. `last_error` is cleared by the first frame after a recovery.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from appliance.backoff import Backoff
from appliance.sources.base import Frame, FrameCounter, LatestSlot, SourceState, SourceStatus

logger = logging.getLogger(__name__)

Opener = Callable[[], Any]  # returns an object with isOpened(), read(), release() (cv2.VideoCapture)
Probe = Callable[[], bool]  # is the peer there at all? (cheap; no stream is opened)

PROBE_S = 0.25  # how often an absent peer is probed
PROBE_TIMEOUT_S = 0.5
OPEN_TIMEOUT_S = 3.0  # an open that takes longer (a peer that accepts but sends nothing) fails
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}


@dataclass(frozen=True)
class Reconnect(Backoff):
    """When to reopen: the appliance's backoff between attempts, and the silence that counts as lost."""

    stall_s: float = field(default=2.0, kw_only=True)  # no frame for this long: stalled, reopened


def camera_opener(device: str, width: int, height: int, stall_s: float = 2.0) -> Opener:
    def open_camera() -> Any:
        target: int | str = int(device) if device.isdigit() else device
        capture = (
            cv2.VideoCapture(target, cv2.CAP_V4L2) if isinstance(target, int) else cv2.VideoCapture(target)
        )
        capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, stall_s * 1000)  # where the backend supports it
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        return capture

    return open_camera


def stream_opener(url: str, stall_s: float = 2.0) -> Opener:
    """FFmpeg with an open and a read timeout: a frozen server cannot hold a read for FFmpeg's 30 s."""
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(max(OPEN_TIMEOUT_S, stall_s) * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(stall_s * 1000),
    ]
    return lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


def stream_probe(url: str) -> Probe:
    """A TCP connect to the stream's host and port; always true for URLs without a host."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    if not host or not port:
        return lambda: True

    def reachable() -> bool:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        except OSError:
            return False
        return True

    return reachable


def camera_probe(device: str) -> Probe:
    """The V4L2 device node exists (a USB camera unplugged has none)."""
    node = Path(f"/dev/video{device}" if device.isdigit() else device)
    if not node.is_absolute() or not Path("/dev").is_dir():
        return lambda: True
    return node.exists


class LiveSource:
    live = True

    def __init__(
        self, name: str, kind: str, opener: Opener, backoff: Reconnect, probe: Probe | None = None
    ) -> None:
        self.name = name
        self.kind = kind
        self._open = opener
        self._backoff = backoff
        self._probe = probe or (lambda: True)
        self.counter = FrameCounter()
        self._slot = LatestSlot(self.counter)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = SourceState.STARTING
        self._last_frame = time.monotonic()
        self._stalled = False  # the last loss was a stall (no frame for stall_s), not a gone peer

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
        absent = False
        while not self._stop.is_set():
            if not self._probe():
                if not absent:
                    absent, self._stalled = True, False
                    self.counter.error("not reachable")
                self._set_state(SourceState.RECONNECTING, "not reachable")
                delays = self._backoff.delays()  # back: open at once, no backoff left over
                self._stop.wait(PROBE_S)
                continue
            absent = False
            started = time.monotonic()
            capture = self._open()
            if capture.isOpened():
                self._set_state(SourceState.CONNECTED)
                return capture
            capture.release()
            self.counter.error("cannot open device" if self.kind == "camera" else "cannot open stream")
            state = SourceState.STALLED if self._stalled else SourceState.RECONNECTING
            self._set_state(state, "cannot open")
            if time.monotonic() - started < self._backoff.stall_s:  # refused at once: back off
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
                if self._stalled:
                    self._set_state(SourceState.STALLED, self.counter.last_error or "")
                else:
                    self._set_state(SourceState.LOST, "no frame")
        self._set_state(SourceState.STOPPED)

    def _pump(self, capture: Any) -> None:
        self._last_frame = time.monotonic()
        first = True
        while not self._stop.is_set():
            ok, image = capture.read()
            now = time.monotonic()
            if not ok or image is None:
                silent = now - self._last_frame
                self._stalled = silent >= self._backoff.stall_s
                self.counter.error(f"no frame for {silent:.1f} s" if self._stalled else "read failed")
                return
            self._last_frame = now
            if first:
                first = False
                if self.counter.last_error is not None:
                    logger.info("source %s: frames again", self.name)
                self._stalled, self.counter.last_error = False, None
            self._slot.put(Frame(self.counter.frame(), time.time(), self.name, image=image))

    def read(self, timeout: float) -> Frame | None:
        return self._slot.take(timeout)

    def _state_now(self) -> tuple[SourceState, str | None]:
        """The state, with a stall seen as it happens (the reader may be blocked in a read)."""
        silent = time.monotonic() - self._last_frame
        if self.state == SourceState.CONNECTED and silent > self._backoff.stall_s:
            return SourceState.STALLED, f"no frame for {silent:.1f} s"
        return self.state, self.counter.last_error

    def status(self) -> SourceStatus:
        c = self.counter
        state, last_error = self._state_now()
        return SourceStatus(
            self.name,
            self.kind,
            state.value,
            True,
            c.fps(),
            c.frames,
            c.dropped,
            c.errors,
            c.reconnects,
            last_error,
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
