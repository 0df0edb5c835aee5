"""The inference engines of one appliance (`Backends`), built from [backend], and selection with fallback.

`Services` builds one `Backends` at start and hands it to whatever opens models (the model manager,
the raw KServe runner, the UI's one-shot test); nothing is global, so a test or a tool builds its own.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.backends.base import Backend, BackendOptions, Context
from appliance.backends.failover import Deadline, RetryPolicy
from appliance.backends.litert import LiteRTBackend
from appliance.backends.rknn import NPUSettings, RKNNBackend
from appliance.config import BACKEND_NAMES, BackendConfig
from appliance.errors import BackendUnavailable, ModelRejected
from appliance.platform import PlatformReport, ProbeSources, cached_report

logger = logging.getLogger(__name__)


def planned_workers(config: BackendConfig, report: PlatformReport | None = None) -> int:
    """Inference workers (and contexts per model) for this config: per-core wants one per NPU core.

    The pipeline's worker count and BackendOptions.contexts must both be this number, so that every
    context has exactly one worker thread whatever backend ends up running the model.
    """
    if config.core_policy == "per-core" and "rknn" in config.order:
        cores = (report or cached_report()).npu_cores
        return max(config.workers, cores)
    return config.workers


@dataclass(frozen=True)
class Selection:
    """The backend that opened a model, and why the preferred ones did not."""

    backend: str
    contexts: tuple[Context, ...]
    fallbacks: tuple[tuple[str, str], ...]


def _try_open(
    backend: Backend, path: Path | None, options: BackendOptions, last: bool
) -> list[Context] | str:
    """The contexts, or why this backend cannot run the model (ModelRejected raises on the last one)."""
    if path is None:
        return f"model has no {backend.model_suffix} file"
    reason = backend.probe()
    if reason is not None:
        return reason
    try:
        return backend.open(path, options)
    except BackendUnavailable as err:
        return str(err)
    except ModelRejected as err:
        if last:
            raise
        return str(err)


Opener = Callable[[dict[str, Path], BackendOptions], Selection]


class Backends:
    """One engine per name in config.BACKEND_NAMES, fixed at construction."""

    def __init__(self, engines: Mapping[str, Backend]) -> None:
        if tuple(engines) != BACKEND_NAMES:
            raise ValueError(f"backends {tuple(engines)} do not match config.BACKEND_NAMES {BACKEND_NAMES}")
        self._engines = dict(engines)
        self._reported: set[tuple[str, str]] = set()  # skip reasons logged once per Backends
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: BackendConfig, sources: ProbeSources | None = None) -> Backends:
        """The engines as the [backend] section configures them (`sources`: where the board is probed)."""
        platform = sources or ProbeSources()
        deadline = Deadline(config.deadline_s, config.deadline_factor, config.deadline_min_s)
        retry = RetryPolicy(config.retry_s, config.retry_max_s)
        settings = NPUSettings(config.core_policy, retry, platform, deadline)
        return cls({"litert": LiteRTBackend(config.delegate, platform.root), "rknn": RKNNBackend(settings)})

    @classmethod
    def default(cls) -> Backends:
        """The engines of a default [backend] section (tools, the registry's validation of new models)."""
        return cls.from_config(BackendConfig())

    def names(self) -> tuple[str, ...]:
        return tuple(self._engines)

    def get(self, name: str) -> Backend:
        return self._engines[name]

    def open(self, order: tuple[str, ...], models: dict[str, Path], options: BackendOptions) -> Selection:
        """Open the model on the first backend in `order` that can run it.

        `models` maps a file suffix (".tflite", ".rknn") to the file holding that format of the model.
        A backend that is unavailable, has no file in its format, or rejects its file while a later
        backend remains, is skipped; the reason is logged once and returned so the status API can show it.
        """
        skipped: list[tuple[str, str]] = []
        for position, name in enumerate(order):
            backend = self._engines[name]
            path = models.get(backend.model_suffix)
            opened = _try_open(backend, path, options, position == len(order) - 1)
            if not isinstance(opened, str):
                return Selection(name, tuple(opened), tuple(skipped))
            skipped.append((name, opened or "unavailable"))
            self._report(name, opened)
        tried = "; ".join(f"{n}: {r}" for n, r in skipped)
        raise BackendUnavailable(f"no backend can run this model ({tried})")

    def opener(self, order: tuple[str, ...]) -> Opener:
        """`open` with `order` fixed: for parts that open models of their own (the second stage)."""
        return functools.partial(self.open, order)

    def _report(self, name: str, reason: str) -> None:
        with self._lock:
            new = (name, reason) not in self._reported
            self._reported.add((name, reason))
        if new:
            logger.warning("backend %s not used: %s", name, reason)

    def problems(self) -> list[str]:
        """What the engines report as not working (a hung NPU context...), in words."""
        rknn = self._engines["rknn"]
        return rknn.problems() if isinstance(rknn, RKNNBackend) else []


def open_with_fallback(order: tuple[str, ...], models: dict[str, Path], options: BackendOptions) -> Selection:
    """`Backends.default().open(...)`: for tools that run outside a service (use the service's
    Backends inside one)."""
    return Backends.default().open(order, models, options)
