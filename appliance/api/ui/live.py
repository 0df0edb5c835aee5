"""Live view: MJPEG of the current source with the results drawn, for at most MAX_VIEWERS at once.

Frames are only kept and encoded while someone watches: each open stream raises
`pipeline.image_watchers` (results then carry their frame) and subscribes to the result bus; the
drawing and JPEG encoding happen in a worker thread, never in the pipeline's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from appliance.api.bodies import JSONResponse
from appliance.api.context import live_view
from appliance.api.ui.guard import page, xhr
from appliance.api.ui.overlays import caption_of, draw, jpeg, placeholder
from appliance.api.ui.state import ViewerSlots, ui_state
from appliance.api.ui.views import render
from appliance.control import LiveView
from appliance.pipeline.pipeline import Pipeline
from appliance.pipeline.results import Result

logger = logging.getLogger(__name__)

BOUNDARY = "frame"
MAX_FPS = 15.0
IDLE_FRAME_S = 2.0  # resend the "waiting" picture this often so the browser shows it
POLL_S = 0.02
TOO_MANY = "{cap} live views are open already. Close one (another tab or device) and reload this page."
_ids = itertools.count(1)


class LiveFeed:
    """One viewer: holds a slot, keeps the newest result with its frame, encodes it on demand."""

    def __init__(self, services: LiveView, slots: ViewerSlots) -> None:
        self.services = services
        self.slots = slots
        self.name = f"live-view-{next(_ids)}"
        self._latest: Result | None = None
        self._lock = threading.Lock()
        self._pipeline: Pipeline = services.pipeline
        self._pipeline.image_watchers += 1
        services.bus.subscribe(self.name, self._receive)
        self._closed = False

    def _receive(self, result: Result) -> None:  # pipeline thread: only keep a reference
        if result.image is not None:
            with self._lock:
                self._latest = result

    def _take(self) -> Result | None:
        with self._lock:
            result, self._latest = self._latest, None
        return result

    def waiting_text(self) -> str:
        """What the view shows while no result comes: why, when the pipeline knows."""
        faults = self._pipeline.faults
        if faults.failing and faults.last_error:
            return f"Frames are failing: {faults.last_error}"
        if self.services.manager.current() is None:
            return "No model is running: " + (self.services.manager.last_error or "activate one on Models")
        if self._pipeline.source is None:
            return "No source: " + (self._pipeline.source_error or "set one on Configuration")
        return "Waiting for frames from the source..."

    def render(self, result: Result) -> bytes:
        fps = f"{self.services.pipeline.results_fps():.1f} fps"
        caption = caption_of(result.label, result.score, result.count, (f"model {result.model}", fps))
        assert result.image is not None
        return jpeg(draw(result.image, [d.to_json() for d in result.detections], caption))

    async def chunks(self) -> AsyncIterator[bytes]:
        last_sent = 0.0
        while True:
            result = self._take()
            now = time.monotonic()
            if result is not None:
                frame = await run_in_threadpool(self.render, result)
            elif now - last_sent > IDLE_FRAME_S:
                frame = await run_in_threadpool(placeholder, self.waiting_text())
            else:
                await asyncio.sleep(POLL_S)
                continue
            self.slots.sent()
            last_sent = time.monotonic()
            yield part(frame)
            await asyncio.sleep(max(0.0, 1.0 / MAX_FPS - (time.monotonic() - now)))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.services.bus.unsubscribe(self.name)
        self._pipeline.image_watchers = max(0, self._pipeline.image_watchers - 1)
        self.slots.give_back()


def part(frame: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
    return head.encode("ascii") + frame + b"\r\n"


class MjpegResponse(StreamingResponse):
    """Streams a LiveFeed and always releases it, however the connection ends."""

    def __init__(self, feed: LiveFeed) -> None:
        super().__init__(
            feed.chunks(),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.feed.close()


@page
async def live_page(request: Request) -> Response:
    slots = ui_state(request).viewers
    full = slots.open >= slots.cap
    message = TOO_MANY.format(cap=slots.cap) if full else ""
    return render(request, "live.html", {"full": full, "message": message, "cap": slots.cap})


@page
async def stream(request: Request) -> Response:
    slots = ui_state(request).viewers
    if not slots.take():
        return PlainTextResponse(TOO_MANY.format(cap=slots.cap), status_code=503)
    try:
        feed = LiveFeed(live_view(request), slots)
    except BaseException:
        slots.give_back()
        raise
    logger.info("live view opened (%d of %d)", slots.open, slots.cap)
    return MjpegResponse(feed)


@xhr
async def live_status(request: Request) -> Response:
    services, slots = live_view(request), ui_state(request).viewers
    return JSONResponse(
        {
            "fps": services.pipeline.results_fps(),
            "viewers": slots.open,
            "cap": slots.cap,
            "frames_sent": slots.frames_sent,
            "watching": services.pipeline.image_watchers,
        },
        headers={"cache-control": "no-store"},
    )
