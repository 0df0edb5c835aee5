"""The fake board behind the fake RKNNLite: what it is, and how it fails. Tests call `reset(...)`."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeNPU:
    soc: str = "rk3588"
    cores: int = 3
    runtime_version: str = "2.3.2"  # librknnrt.so
    driver_version: str = "0.9.8"
    fail_load: bool = False  # load_rknn returns -1
    fail_init: bool = False  # init_runtime returns -1 (driver missing)
    none_after: int | None = None  # inference returns None once the device ran this many
    raise_after: int | None = None  # inference raises once the device ran this many
    failing_cores: set[int] = field(default_factory=set)  # inference returns None on these cores
    delay_s: float = 0.0  # how long one inference holds its context
    inferences: int = 0
    by_core: Counter[str] = field(default_factory=Counter)
    inits: int = 0
    released: int = 0
    log: list[str] = field(default_factory=list)
    last_inputs: list[Any] | None = None  # exactly what the last inference was given
    last_format: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def heal(self) -> None:
        """The device answers again (a driver reset): no more injected failures."""
        self.none_after = self.raise_after = None
        self.fail_init = self.fail_load = False
        self.failing_cores = set()


NPU = FakeNPU()


def reset(**settings: object) -> FakeNPU:
    """Reset the one fake device, in place, to a fresh one with `settings`."""
    fresh = FakeNPU(**settings)  # type: ignore[arg-type]
    for item in dataclasses.fields(FakeNPU):
        setattr(NPU, item.name, getattr(fresh, item.name))
    return NPU
