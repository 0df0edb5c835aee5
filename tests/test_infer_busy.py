"""A full pipeline is answered at once (503 Busy with Retry-After), never with a blocked event loop."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from appliance.processing.image import Prepared
from tests.conftest import config_for, start_server, wait_for

HELD = 8  # requests sent while inference is held: more than the pipeline holds with queue_size = 1


def test_a_full_pipeline_answers_busy_and_health_still_answers(
    data_dir: Path, astronaut_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = "[pipeline]\nqueue_size = 1\n[server]\ninfer_timeout_s = 60\ncache_entries = 0\n"
    server = start_server(config_for(data_dir, extra))
    server.setup()
    runtime = server.services.manager.current()
    assert runtime is not None
    release, running = threading.Event(), threading.Event()
    real_invoke = runtime.invoke

    def held_invoke(worker: int, prepared: Prepared) -> tuple[list[np.ndarray], str]:
        running.set()
        release.wait(60)
        return real_invoke(worker, prepared)

    monkeypatch.setattr(runtime, "invoke", held_invoke)
    headers = {"content-type": "image/png", "authorization": f"Bearer {server.token}"}

    def post() -> httpx.Response:
        return httpx.post(f"{server.url}/api/v1/infer", content=astronaut_png, headers=headers, timeout=90)

    try:
        with ThreadPoolExecutor(HELD) as pool:
            replies = [pool.submit(post) for _ in range(HELD)]
            wait_for(lambda: sum(r.done() for r in replies) > 0)  # the ones the pipeline cannot take
            assert running.is_set()
            # while inference is held and requests wait on it, the loop answers everything else at once
            health = httpx.get(f"{server.url}/api/v1/health", timeout=1.0)
            assert health.status_code == 200
            busy = [r.result() for r in replies if r.done()]
            assert busy and all(r.status_code == 503 for r in busy)
            assert all(r.headers["retry-after"] == "1" and "busy" in r.json()["error"] for r in busy)
            waiting = [r for r in replies if not r.done()]
            assert waiting, "some requests are in the pipeline, waiting for the held inference"
            release.set()
            assert all(r.result().status_code == 200 for r in waiting)
    finally:
        release.set()
        server.stop()
