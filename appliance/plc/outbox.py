"""A bounded outbox drained by one thread: `put` never blocks the pipeline.

When the outbox is full the oldest item is dropped and counted: a slow broker or web server costs
old results, never the pipeline's throughput.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

STOP_TIMEOUT_S = 5.0


class Outbox(Generic[T]):
    def __init__(self, name: str, size: int, handle: Callable[[T], None]) -> None:
        self.name = name
        self.dropped = 0
        self.failed = 0  # items whose handler raised
        self._handle = handle
        self._items: deque[T] = deque(maxlen=size)
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def put(self, item: T) -> None:
        with self._ready:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)  # a full deque drops its oldest item
            self._ready.notify()

    def pending(self) -> int:
        return len(self._items)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._drain, name=f"outbox-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop after the item being handled; items still waiting are discarded."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _next(self) -> T | None:
        with self._ready:
            while not self._items and not self._stopping:
                self._ready.wait()
            return None if self._stopping else self._items.popleft()

    def _drain(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._handle(item)
            except Exception:
                self.failed += 1
                logger.exception("outbox %s: handler failed", self.name)
