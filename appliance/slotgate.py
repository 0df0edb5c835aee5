"""The slot gate: after every boot, mark the running slot good once the appliance is healthy, or fall
back to the other slot (images/README.md, "Automatic rollback").

Run by appliance-slot-gate.service (as root) on every boot. The boot loader counts the starts of a
slot that has not been marked good (GRUB: X_TRY, U-Boot: BOOT_X_LEFT) and gives up on it after a few,
which catches a slot that does not come up at all (kernel panic, hang with the watchdog). The gate
catches the rest: "healthy" is appliance/health.py's verdict on GET /api/v1/health (producing
results). Healthy within the deadline: `rauc status mark-good`. Not healthy (deadline passed, or
appliance.service gave up restarting): `rauc status mark-bad` and a reboot into the other slot -
but only when the other slot is good; with nothing to fall back to, the device stays up so that a
technician can reach it. Each verdict is recorded with its reason on the data partition
(appliance/update.py, EVENTS_FILE) for /api/v1/status and the System page.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.update import SystemStatus, Updater, record

logger = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, str]]  # (healthy, why not)
Check = Callable[[], bool]
Action = Callable[[], None]


@dataclass(frozen=True)
class GateOptions:
    deadline_s: float = 900.0  # from the gate's start to a healthy appliance
    interval_s: float = 5.0


@dataclass(frozen=True)
class Verdict:
    slot: str
    good: bool
    reason: str
    rebooting: bool = False


@dataclass(frozen=True)
class System:
    """What the gate does to the machine, injectable for tests."""

    healthy: Probe
    service_failed: Check
    reboot: Action
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    options: GateOptions = field(default_factory=GateOptions)


def http_probe(url: str, timeout_s: float = 5.0) -> Probe:
    def probe() -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                body = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                body = json.loads(err.read() or b"{}")
            except ValueError:
                return False, f"HTTP {err.code}"
        except (OSError, ValueError) as err:
            return False, f"no answer from {url} ({err})"
        if body.get("status") == "ok":
            return True, "ok"
        return False, "; ".join(body.get("reasons") or []) or str(body.get("status"))

    return probe


def unit_failed(unit: str) -> Check:
    def check() -> bool:
        done = subprocess.run(["systemctl", "is-failed", "--quiet", unit], check=False)
        return done.returncode == 0

    return check


def run_gate(updater: Updater, system: System) -> Verdict:
    status = updater.status()
    booted = status.slot(status.booted)
    if booted is None:
        raise RuntimeError(f"rauc reports booted slot {status.booted!r}, which is not in its slots")
    give_up_on_skipped(updater, status)
    deadline = system.clock() + system.options.deadline_s
    while True:
        ok, why = system.healthy()
        if ok:
            updater.mark("good")
            record(updater.paths.events, {"kind": "good", "slot": booted.bootname, "version": booted.version})
            logger.info("slot %s (%s) is healthy: marked good", booted.bootname, booted.version)
            return Verdict(booted.bootname, True, "healthy")
        if system.service_failed():
            reason = f"appliance.service failed (it gave up restarting); last health: {why}"
            break
        if system.clock() >= deadline:
            reason = f"not healthy within {system.options.deadline_s:.0f} s: {why}"
            break
        system.sleep(system.options.interval_s)
    return fall_back(updater, system, status, reason)


def fall_back(updater: Updater, system: System, status: SystemStatus, reason: str) -> Verdict:
    booted = status.slot(status.booted)
    assert booted is not None
    other = status.other()
    event = {"slot": booted.bootname, "version": booted.version, "reason": reason}
    if other is None or other.boot_status != "good" or other.version is None:
        record(updater.paths.events, {"kind": "unhealthy", **event, "note": "no good slot to fall back to"})
        logger.error("slot %s is not healthy (%s); no good slot to fall back to", booted.bootname, reason)
        return Verdict(booted.bootname, False, reason)
    updater.mark("bad")
    record(updater.paths.events, {"kind": "bad", **event, "fallback": other.bootname})
    logger.error("slot %s marked bad (%s): rebooting into slot %s", booted.bootname, reason, other.bootname)
    system.reboot()
    return Verdict(booted.bootname, False, reason, rebooting=True)


def give_up_on_skipped(updater: Updater, status: SystemStatus) -> None:
    """The other slot was installed, never confirmed, and yet this one booted: the boot loader gave up
    on it (it did not come up within its boot attempts). Mark it bad and say so."""
    other = status.other()
    if other is None or other.boot_status != "good":
        return
    last = next((e for e in reversed(status.events) if e.get("slot") == other.bootname), None)
    if last is None or last.get("kind") != "installed":
        return
    updater.mark("bad", other.name)
    reason = "did not come up: the boot loader used up its boot attempts and started this slot instead"
    event = {"slot": other.bootname, "version": other.version, "reason": reason, "fallback": status.booted}
    record(updater.paths.events, {"kind": "bad", **event})
    logger.error("slot %s (%s) %s", other.bootname, other.version, reason)
