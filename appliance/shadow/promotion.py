"""Whether a shadowed candidate may become the active model, and the record kept in its manifest.

A candidate is promoted when its shadow run against the model active now reached
model.shadow_min_agreement over at least model.shadow_min_frames compared frames, or when an
operator overrides that; either way the manifest keeps `promotion: {agreement, frames, override,
by, at, ...}`. A refusal is a Conflict (409) naming the shortfall.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appliance.errors import BadRequest, Conflict

MAX_BY_CHARS = 64


@dataclass(frozen=True)
class Evidence:
    """What a shadow run showed: the candidate against the active model, over `frames` frames."""

    candidate: str  # name:version
    active: str
    metric: str
    agreement: float | None
    frames: int


@dataclass(frozen=True)
class Policy:
    min_agreement: float
    min_frames: int


def shortfall(evidence: Evidence | None, candidate: str, active: str | None, policy: Policy) -> str | None:
    """Why `candidate` may not replace `active` on this evidence (None: it may)."""
    if active is None:
        return None  # nothing running to compare with: the ordinary activation proof decides
    if evidence is None or evidence.candidate != candidate or evidence.active != active:
        return (
            f"model {candidate} has no shadow run against the active model {active}: "
            f"start one (`appliance models shadow {candidate}`) or promote with an override"
        )
    if evidence.frames < policy.min_frames:
        return (
            f"model {candidate} was compared with {active} on {evidence.frames} frames; promotion needs "
            f"at least {policy.min_frames} (model.shadow_min_frames), or an override"
        )
    agreement = evidence.agreement if evidence.agreement is not None else 0.0
    if agreement < policy.min_agreement:
        return (
            f"model {candidate} agrees {agreement:.1%} with {active} ({evidence.metric}) over "
            f"{evidence.frames} frames; promotion needs {policy.min_agreement:.1%} "
            "(model.shadow_min_agreement), or an override"
        )
    return None


def check_by(by: object) -> str:
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_BY_CHARS:
        raise BadRequest(f"by: who promotes, text of 1 to {MAX_BY_CHARS} characters")
    return by.strip()


@dataclass(frozen=True)
class Decision:
    """Who promotes, and whether they override a shortfall."""

    by: str
    override: bool = False


def record(
    evidence: Evidence | None, candidate: str, active: str | None, policy: Policy, decision: Decision
) -> dict[str, Any]:
    """The manifest's promotion record, or Conflict naming the shortfall (unless overridden)."""
    missing = shortfall(evidence, candidate, active, policy)
    if missing is not None and not decision.override:
        raise Conflict(f"promotion refused: {missing}")
    fits = evidence is not None and evidence.candidate == candidate and evidence.active == active
    return {
        "agreement": evidence.agreement if fits and evidence is not None else None,
        "metric": evidence.metric if fits and evidence is not None else None,
        "frames": evidence.frames if fits and evidence is not None else 0,
        "against": active,
        "min_agreement": policy.min_agreement,
        "min_frames": policy.min_frames,
        "override": missing is not None,
        "shortfall": missing,
        "by": check_by(decision.by),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
