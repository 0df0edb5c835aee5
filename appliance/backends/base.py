"""The Backend interface: what every inference engine (LiteRT, RKNN) offers the pipeline.

A backend opens a model into one or more `Context`s. A context is owned by exactly one worker thread
(vendor runtimes are not thread-safe); the pipeline runs one worker per context, so several
interpreters (or NPU cores) work in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from appliance.tensorspec import TensorSpec


@dataclass(frozen=True)
class BackendOptions:
    """What the pipeline asks of a backend when it opens a model."""

    threads: int = 2
    contexts: int = 1


class Context(Protocol):
    """One loaded model instance, used by one thread at a time."""

    @property
    def label(self) -> str:
        """Recorded with every result, e.g. 'litert' or 'rknn:core1'."""

    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]: ...

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run once. Raises InferenceFailed (vendor errors translated)."""

    def close(self) -> None: ...


class Backend(Protocol):
    """An inference engine. Vendor imports happen inside `open`/`probe`, so the package imports anywhere."""

    name: str
    model_suffix: str

    def probe(self) -> str | None:
        """None when usable here, else a plain-words reason and what to install."""

    def open(self, model: Path, options: BackendOptions) -> list[Context]:
        """Load `model` into `options.contexts` contexts. Raises BackendUnavailable or ModelRejected."""
