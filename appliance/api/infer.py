"""POST /api/v1/infer: one JPEG or PNG in, one result out (stored only with ?store=1)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import requires
from appliance.api.bodies import JSONResponse, read_body
from appliance.api.context import inference_view
from appliance.api.params import flag_param
from appliance.errors import Busy, Conflict, ImageRejected, UnsupportedMediaType
from appliance.pipeline.cache import cache_key
from appliance.pipeline.pipeline import Pipeline
from appliance.pipeline.results import Result
from appliance.sources.base import Frame
from appliance.sources.live import PushSource

SUBMIT_WAIT_S = 1.0  # how long a request waits for room in a full pipeline before it is Busy
SUBMIT_POLL_S = 0.005
IMAGE_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def check_image(data: bytes) -> None:
    """The cheap checks before any decoding: not empty, a JPEG or PNG signature."""
    if not data:
        raise ImageRejected("empty body: send a JPEG or PNG image")
    if not data.startswith(MAGIC):
        raise ImageRejected("body is not a JPEG or PNG image (unknown file signature)")


def decode_image(data: bytes) -> np.ndarray:
    check_image(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageRejected("image could not be decoded (truncated or corrupt JPEG/PNG)")
    return image


async def _submit(pipeline: Pipeline, frame: Frame, store: bool) -> Future[Result]:
    """Queue the frame without blocking the event loop: while the pipeline's first queue is full, try
    again every SUBMIT_POLL_S (sleeping on the loop, which goes on serving), and answer Busy (503 with
    Retry-After) once it stayed full for SUBMIT_WAIT_S. A short burst above the queue's size waits its
    turn instead of failing; a pipeline that cannot keep up is told to the client quickly."""
    deadline = time.monotonic() + SUBMIT_WAIT_S
    while True:
        try:
            return pipeline.submit_nowait(frame, store=store)
        except Busy:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(SUBMIT_POLL_S)


@requires("operate")
async def infer(request: Request) -> Response:
    services = inference_view(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        raise UnsupportedMediaType(f"content type {content_type or '(none)'!r}: send image/jpeg or image/png")
    store = flag_param(request.query_params, "store")
    data = await read_body(request, services.config.server.max_upload_bytes)
    runtime = services.manager.current()
    key = cache_key(runtime.manifest.ref, data) if runtime is not None and not store else None
    cached = services.cache.get(key) if key else None
    if cached is not None:
        return JSONResponse({**cached, "cached": True})
    check_image(data)
    timeout = services.config.server.infer_timeout_s
    # decoded by the pipeline's preprocess stage, off the event loop, and for a JPEG only as large as
    # the model needs (DCT-domain reduced decode) unless the frame is kept whole
    frame = Frame(0, time.time(), "api", encoded=data)
    future = await _submit(services.pipeline, frame, store)
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError as err:
        raise Busy(f"no result within {timeout} s") from err
    document = result.to_json()
    if key and runtime is not None and result.model == runtime.manifest.name:
        services.cache.put(key, document)
    return JSONResponse(document)


@requires("operate")
async def push_frame(request: Request) -> Response:
    """A frame for the `push` source (source.kind = "push"): the newest pushed frame is the one run."""
    services = inference_view(request)
    source = services.pipeline.source
    if not isinstance(source, PushSource):
        raise Conflict("frames can be pushed only when source.kind = 'push'")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        raise UnsupportedMediaType(f"content type {content_type or '(none)'!r}: send image/jpeg or image/png")
    data = await read_body(request, services.config.server.max_upload_bytes)
    image = await run_in_threadpool(decode_image, data)
    return JSONResponse({"frame_id": source.push(image=image)}, status_code=202)
