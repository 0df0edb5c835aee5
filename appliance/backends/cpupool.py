"""One CPU fallback for all the NPU contexts of a model: a small pool of LiteRT interpreters.

Built lazily (only when an NPU context first fails or hangs) and sized to the machine: at most one
interpreter per core and never more than the contexts that could use it at once, each with
`threads` threads at most so the pool's threads do not outnumber the cores (the preprocessor and
the vendor runtime need CPU too). Callers block until an interpreter is free.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from appliance.backends.base import Context
from appliance.errors import ApplianceError, InferenceFailed

Opener = Callable[[int], Context]  # threads -> one CPU context


@dataclass(frozen=True)
class PoolSize:
    interpreters: int
    threads: int

    @classmethod
    def for_machine(cls, contexts: int, threads: int, cores: int | None = None) -> PoolSize:
        cores = max(cores or os.cpu_count() or 1, 1)
        interpreters = max(1, min(contexts, cores))
        return cls(interpreters, max(1, min(threads, cores // interpreters)))


class CPUPool:
    def __init__(self, opener: Opener, size: PoolSize) -> None:
        self._opener = opener
        self.size = size
        self._free: queue.LifoQueue[Context] = queue.LifoQueue()
        self._all: list[Context] = []
        self._lock = threading.Lock()
        self._closed = False
        self.runs = 0

    def _take(self) -> Context:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = len(self._all) < self.size.interpreters
            if grow:
                try:
                    context = self._opener(self.size.threads)
                except ApplianceError as err:
                    raise InferenceFailed(f"the CPU fallback cannot start: {err}") from err
                self._all.append(context)
                return context
        return self._free.get()

    def run(self, inputs: Sequence[np.ndarray]) -> tuple[list[np.ndarray], Context]:
        """Outputs, and the context that produced them (for its output specs and label)."""
        if self._closed:
            raise InferenceFailed("the CPU fallback is closed")
        context = self._take()
        try:
            outputs = context.run(inputs)
            with self._lock:
                self.runs += 1
            return outputs, context
        finally:
            self._free.put(context)

    @property
    def opened(self) -> int:
        return len(self._all)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            contexts, self._all = self._all, []
        for context in contexts:
            context.close()
