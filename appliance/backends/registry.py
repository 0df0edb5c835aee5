"""Explicit backend registry and selection with automatic fallback."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from appliance.backends.base import Backend, BackendOptions, Context
from appliance.backends.litert import LiteRTBackend
from appliance.errors import BackendUnavailable

logger = logging.getLogger(__name__)

BACKENDS: dict[str, Backend] = {
    "litert": LiteRTBackend(),
}


@dataclass(frozen=True)
class Selection:
    """The backend that opened a model, and why the preferred ones did not."""

    backend: str
    contexts: tuple[Context, ...]
    fallbacks: tuple[tuple[str, str], ...]


_reported: set[tuple[str, str]] = set()


def open_with_fallback(order: tuple[str, ...], models: dict[str, Path], options: BackendOptions) -> Selection:
    """Open the model on the first backend in `order` that can run it.

    `models` maps a file suffix (".tflite", ".rknn") to the file holding that format of the model.
    A backend that is unavailable, or has no file in its format, is skipped; the reason is logged
    once per process and returned so the status API can show it.
    """
    skipped: list[tuple[str, str]] = []
    for name in order:
        backend = BACKENDS[name]
        path = models.get(backend.model_suffix)
        reason = backend.probe() if path is not None else f"model has no {backend.model_suffix} file"
        if reason is None and path is not None:
            try:
                contexts = backend.open(path, options)
            except BackendUnavailable as err:
                reason = str(err)
            else:
                return Selection(name, tuple(contexts), tuple(skipped))
        skipped.append((name, reason or "unavailable"))
        if (name, reason or "") not in _reported:
            _reported.add((name, reason or ""))
            logger.warning("backend %s not used: %s", name, reason)
    tried = "; ".join(f"{n}: {r}" for n, r in skipped)
    raise BackendUnavailable(f"no backend can run this model ({tried})")
