"""Explicit backend registry, configured once from [backend], and selection with automatic fallback."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from appliance.backends.base import Backend, BackendOptions, Context
from appliance.backends.failover import Deadline, RetryPolicy
from appliance.backends.litert import LiteRTBackend
from appliance.backends.rknn import NPUSettings, RKNNBackend
from appliance.config import BackendConfig
from appliance.errors import BackendUnavailable, ModelRejected
from appliance.platform import PlatformReport, ProbeSources, cached_report

logger = logging.getLogger(__name__)

BACKENDS: dict[str, Backend] = {
    "litert": LiteRTBackend(),
    "rknn": RKNNBackend(),
}


def configure_backends(config: BackendConfig, sources: ProbeSources | None = None) -> None:
    """Rebuild the backends from the [backend] section; call once at startup, before opening models."""
    platform = sources or ProbeSources()
    BACKENDS["litert"] = LiteRTBackend(config.delegate, platform.root)
    deadline = Deadline(config.deadline_s, config.deadline_factor, config.deadline_min_s)
    retry = RetryPolicy(config.retry_s, config.retry_max_s)
    settings = NPUSettings(config.core_policy, retry, platform, deadline)
    BACKENDS["rknn"] = RKNNBackend(settings)


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


_reported: set[tuple[str, str]] = set()


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


def open_with_fallback(order: tuple[str, ...], models: dict[str, Path], options: BackendOptions) -> Selection:
    """Open the model on the first backend in `order` that can run it.

    `models` maps a file suffix (".tflite", ".rknn") to the file holding that format of the model.
    A backend that is unavailable, has no file in its format, or rejects its file while a later
    backend remains, is skipped; the reason is logged once per process and returned so the status
    API can show it.
    """
    skipped: list[tuple[str, str]] = []
    for position, name in enumerate(order):
        backend = BACKENDS[name]
        opened = _try_open(backend, models.get(backend.model_suffix), options, position == len(order) - 1)
        if not isinstance(opened, str):
            return Selection(name, tuple(opened), tuple(skipped))
        skipped.append((name, opened or "unavailable"))
        if (name, opened) not in _reported:
            _reported.add((name, opened))
            logger.warning("backend %s not used: %s", name, opened)
    tried = "; ".join(f"{n}: {r}" for n, r in skipped)
    raise BackendUnavailable(f"no backend can run this model ({tried})")


def backend_problems() -> list[str]:
    """What the configured backends report as not working (a hung NPU context...), in words."""
    rknn = BACKENDS.get("rknn")
    return rknn.problems() if isinstance(rknn, RKNNBackend) else []
