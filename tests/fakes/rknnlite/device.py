"""The fake board behind the fake RKNNLite: what it is, and how it fails. Tests call `reset(...)`.

Every failure mode maps to a real behaviour listed in tests/fakes/README.md.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SUBMIT_FAILED = (
    "failed to submit!, op id: 1, op name: Conv:/conv1/Conv, flags: 0x5, task start: 0, task number: 18, "
    "run task counter: 0, int status: 0"
)


@dataclass
class FakeNPU:
    soc: str = "rk3588"
    cores: int = 3
    runtime_version: str = "2.3.2"  # librknnrt.so
    driver_version: str = "0.9.8"
    librknnrt: bool = True  # False: /usr/lib/librknnrt.so (or LIBRKNNRT_PATH) missing
    fail_init: bool = False  # the RKNPU driver is not there (or the device node is not accessible)
    none_after: int | None = None  # inference returns None once the device ran this many
    failing_cores: set[int] = field(default_factory=set)  # inference returns None on these cores
    slow_fail_s: float = 0.0  # how long a failing inference takes before it returns None (driver timeout)
    hang_cores: set[int] = field(default_factory=set)  # inference on these cores blocks ...
    hang_after: int = 0  # ... once that core ran this many ...
    hang_s: float | None = None  # ... this long (None: until recover()), then returns None
    delay_s: float = 0.0  # how long one inference holds its context
    sdk_broken: bool = False  # get_sdk_version's query fails (returns None)
    inferences: int = 0
    by_core: Counter[str] = field(default_factory=Counter)
    per_core: Counter[int] = field(default_factory=Counter)
    inits: int = 0
    released: int = 0
    shared_use: int = 0  # inferences that overlapped another on the same context (two threads)
    hanging: int = 0  # inferences blocked right now
    log: list[str] = field(default_factory=list)
    last_inputs: list[Any] | None = None  # exactly what the last inference was given
    last_format: object = None
    last_pass_through: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    unhang: threading.Event = field(default_factory=threading.Event)

    def heal(self) -> None:
        """The device answers again (a driver reset): no more injected failures."""
        self.none_after = None
        self.fail_init = False
        self.librknnrt = True
        self.failing_cores = set()
        self.hang_cores = set()
        self.slow_fail_s = 0.0

    def recover(self) -> None:
        """heal(), and every inference blocked in a hang returns (with None, as after a driver timeout)."""
        self.heal()
        self.unhang.set()


NPU = FakeNPU()


def reset(**settings: object) -> FakeNPU:
    """Reset the one fake device, in place, to a fresh one with `settings`."""
    NPU.unhang.set()  # nothing stays blocked from an earlier test
    fresh = FakeNPU(**settings)  # type: ignore[arg-type]
    for item in dataclasses.fields(FakeNPU):
        setattr(NPU, item.name, getattr(fresh, item.name))
    return NPU
