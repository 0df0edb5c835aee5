"""Admission of KServe v2 inferences (REST and gRPC): at most `limit` running or waiting at once.

One more is refused at once with Busy (503 with Retry-After over HTTP, UNAVAILABLE over gRPC) instead
of queueing without bound behind the model's lock; nothing waits on the event loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from starlette.requests import Request

from appliance.errors import Busy


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._inflight = 0
        self._lock = threading.Lock()  # taken by the event loop and by gRPC threads; never held long

    @property
    def inflight(self) -> int:
        return self._inflight

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        with self._lock:
            if self._inflight >= self.limit:
                raise Busy(f"{self.limit} inferences already running or waiting: try again")
            self._inflight += 1
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1


def admission_of(request: Request) -> Admission:
    admission: Admission = request.app.state.admission
    return admission
