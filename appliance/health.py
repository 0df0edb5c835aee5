"""Health: is the appliance producing results? One answer for the endpoints, status, UI and watchdog.

"ok" means: started, every pipeline stage running, a model loaded, the store writer running and not
degraded, and a live source delivering frames (not stalled, lost or reconnecting). Backend problems
that failover routes around (a hung NPU context whose frames run elsewhere) are warnings: results
still flow, so health stays ok and names them. Every failed
condition is one reason, a short sentence naming the part. A reason is a *fault* when it lives inside
the process (a dead thread: a restart helps, so the systemd watchdog stops being fed) or a
*condition* of the outside world (no model installed, disk full, camera gone: a restart cannot fix it,
the endpoints say 503 but the watchdog keeps being fed so systemd does not restart-loop the unit
into its start limit). docs/api.md, "Health", lists them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

# live source states in which no frames arrive (sources/base.py SourceState values)
SOURCE_DOWN_STATES = frozenset({"stalled", "lost", "reconnecting"})


class HealthState(enum.StrEnum):
    OK = "ok"
    STARTING = "starting"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class Health:
    state: HealthState
    reasons: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()  # the subset of reasons a restart of the process can cure
    warnings: tuple[str, ...] = ()  # results still flow, but something is wrong (a hung NPU core)

    @property
    def ok(self) -> bool:
        return self.state is HealthState.OK

    @property
    def feed_watchdog(self) -> bool:
        """True unless a part of the process itself is dead (or it has not started)."""
        return self.state is not HealthState.STARTING and not self.faults

    def to_json(self) -> dict[str, object]:
        return {"status": self.state.value, "reasons": list(self.reasons), "warnings": list(self.warnings)}


class WriterView(Protocol):
    @property
    def degraded(self) -> str | None: ...

    def alive(self) -> bool: ...


class SourceView(Protocol):
    """What health reads of a source's status (sources/base.py SourceStatus)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def live(self) -> bool: ...


@dataclass(frozen=True)
class Observation:
    """The facts health is computed from, gathered by whoever owns the parts (Services.health)."""

    started: bool
    stages_alive: bool
    model_loaded: bool
    writer: WriterView | None
    source: SourceView | None
    backend_problems: tuple[str, ...] = ()  # e.g. a hung NPU context that failover routes around


def assess(seen: Observation) -> Health:
    if not seen.started:
        return Health(HealthState.STARTING, ("starting: the services are not running yet",))
    faults: list[str] = []
    conditions: list[str] = []
    if not seen.stages_alive:
        faults.append("pipeline: a stage thread has stopped")
    if seen.writer is not None:
        if not seen.writer.alive():
            faults.append("store: the writer thread is not running (results are not saved)")
        else:
            degraded = seen.writer.degraded
            if degraded:
                conditions.append(f"store degraded: {degraded}")
    if not seen.model_loaded:
        conditions.append("model: no model is loaded")
    source = seen.source
    if source is not None and source.live and source.state in SOURCE_DOWN_STATES:
        conditions.append(f"source {source.name}: {source.state} (no frames arriving)")
    reasons = (*faults, *conditions)
    if not reasons:
        return Health(HealthState.OK, warnings=seen.backend_problems)
    return Health(HealthState.UNHEALTHY, reasons, tuple(faults), seen.backend_problems)
