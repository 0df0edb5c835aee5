"""System updates through RAUC: install a signed bundle into the other root file system slot, read
both slots, and keep the record of what happened to them (images/README.md, "A/B slots").

RAUC does the work that must not be home-made: it checks the bundle's signature against
/etc/rauc/keyring.pem and its `compatible` against the board, writes the image into the slot that is
not running and switches the boot loader (GRUB environment or U-Boot environment) to it. This module
is its front end for `appliance update`, `POST /api/v1/system/update`, the USB stick and the status
pages, and translates RAUC's errors into the appliance's. The boot-time decision (mark the booted slot
good once the appliance is healthy, or fall back) is appliance/slotgate.py.

The rauc command is injectable (`Rauc(command=...)`), which is how the host-side tests run the front
end against a fake rauc; tests/e2e/test_image_boot.py runs the real one inside the booted image.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import atomic
from appliance.errors import ApplianceError

logger = logging.getLogger(__name__)

BUNDLE_SUFFIX = ".raucb"
IMAGE_FILE = Path("/etc/appliance-image")  # what the running slot is (written by build_image.sh)
EVENTS_FILE = Path("/var/lib/appliance/system/slot-events.json")  # on the data partition
EVENTS_KEPT = 50
RAUC_TAIL = 800  # characters of rauc's message quoted in an error
# words in rauc's message that mean the bundle itself is at fault (not the device)
BUNDLE_FAULTS = (
    "signature",
    "compatible",
    "bundle",
    "manifest",
    "squashfs",
    "certificate",
    "verify",
    "format",
    "keyring",
)


class BundleRefused(ApplianceError):
    """The device will not install this bundle (unsigned, wrong key, another board, not a bundle)."""

    status = 422


class UpdateFailed(ApplianceError):
    status = 500


class UpdateUnavailable(ApplianceError):
    """No RAUC on this machine (a development host): nothing to update."""

    status = 409


@dataclass(frozen=True)
class Rauc:
    """The `rauc` command line (which talks to the rauc service over D-Bus)."""

    command: tuple[str, ...] = ("rauc",)
    timeout_s: float = 3600.0  # writing a slot on an SD card takes minutes

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        try:
            done = subprocess.run(
                [*self.command, *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout_s or self.timeout_s,
            )
        except FileNotFoundError as err:
            raise UpdateUnavailable(f"rauc is not installed here ({self.command[0]}): no A/B system") from err
        except subprocess.TimeoutExpired as err:
            raise UpdateFailed(f"rauc {args[0]} did not finish within {err.timeout:.0f} s") from err
        if done.returncode != 0:
            raise RaucError(args[0], done.returncode, rauc_reason(done.stdout, done.stderr)[-RAUC_TAIL:])
        return done.stdout


def rauc_reason(stdout: str, stderr: str) -> str:
    """Why rauc failed: the service's `LastError: ...` lines (the client prints them on stdout and only
    "Installing `FILE` failed" on stderr), else stderr, else stdout."""
    errors = [
        line.split("LastError: ", 1)[1].strip() for line in stdout.splitlines() if "LastError: " in line
    ]
    return "; ".join(errors) or stderr.strip() or stdout.strip()


class RaucError(UpdateFailed):
    def __init__(self, verb: str, code: int, message: str) -> None:
        super().__init__(f"rauc {verb} failed ({code}): {message}")
        self.message = message


@dataclass(frozen=True)
class Slot:
    name: str  # RAUC's slot name: rootfs.0, rootfs.1
    bootname: str  # A, B: the boot loader's name for it
    device: str
    booted: bool
    boot_status: str  # good | bad: may the boot loader start it
    version: str | None  # of the bundle installed into it (the factory image counts as one)
    installed_at: str | None
    primary: bool  # the boot loader's first choice

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "bootname": self.bootname,
            "device": self.device,
            "booted": self.booted,
            "boot_status": self.boot_status,
            "version": self.version,
            "installed_at": self.installed_at,
            "primary": self.primary,
        }


@dataclass(frozen=True)
class SystemStatus:
    compatible: str
    booted: str  # bootname of the running slot
    slots: tuple[Slot, ...]
    image: dict[str, str]  # /etc/appliance-image of the running slot
    rollback: dict[str, Any] | None  # the last fall-back and why, while it is the latest news
    events: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "available": True,
            "compatible": self.compatible,
            "booted": self.booted,
            "version": self.image.get("VERSION"),
            "slots": [slot.to_json() for slot in self.slots],
            "rollback": self.rollback,
            "events": list(self.events[-10:]),
        }

    def slot(self, bootname: str) -> Slot | None:
        return next((s for s in self.slots if s.bootname == bootname), None)

    def other(self) -> Slot | None:
        return next((s for s in self.slots if not s.booted), None)


@dataclass(frozen=True)
class InstallResult:
    slot: str  # bootname that now holds the bundle and boots next
    version: str | None
    message: str  # rauc's own last lines

    def to_json(self) -> dict[str, object]:
        return {"slot": self.slot, "version": self.version, "reboot_required": True, "message": self.message}


@dataclass(frozen=True)
class Paths:
    image: Path = IMAGE_FILE
    events: Path = EVENTS_FILE
    system_conf: Path = Path("/etc/rauc/system.conf")  # only an A/B image has one
    # appliance-reboot.path (root) reboots when this file appears: the service itself may not
    reboot_request: Path = Path("/var/lib/appliance/system/reboot-requested")


@dataclass(frozen=True)
class Updater:
    """What the API, the CLI and the USB service share: install, status, the event record."""

    rauc: Rauc = field(default_factory=Rauc)
    paths: Paths = field(default_factory=Paths)

    def require(self) -> None:
        """409 unless this machine is an A/B image (has RAUC's system.conf)."""
        if not self.paths.system_conf.is_file():
            raise UpdateUnavailable(f"no {self.paths.system_conf}: this is not an A/B system image")

    def install(self, bundle: Path, source: str) -> InstallResult:
        self.require()
        if not bundle.is_file():
            raise BundleRefused(f"{bundle}: no such file")
        started = time.monotonic()
        try:
            output = self.rauc.run("install", str(bundle))
        except RaucError as err:
            record(self.paths.events, {"kind": "refused", "source": source, "reason": err.message})
            if any(word in err.message.lower() for word in BUNDLE_FAULTS):
                raise BundleRefused(f"the device refused the bundle: {err.message}") from err
            raise
        status = self.status()
        target = status.other()
        slot = target.bootname if target else "?"
        version = target.version if target else None
        record(self.paths.events, {"kind": "installed", "slot": slot, "version": version, "source": source})
        took = time.monotonic() - started
        logger.info("installed %s into slot %s in %.0f s (%s)", version, slot, took, source)
        return InstallResult(slot, version, output.strip()[-RAUC_TAIL:])

    def status(self) -> SystemStatus:
        self.require()
        document = json.loads(self.rauc.run("status", "--detailed", "--output-format=json", timeout_s=60))
        return parse_status(document, read_image(self.paths.image), read_events(self.paths.events))

    def request_reboot(self) -> None:
        self.require()
        self.paths.reboot_request.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(self.paths.reboot_request, b"requested\n", mode=0o644)

    def mark(self, verdict: str, slot: str = "booted") -> None:
        """verdict good | bad; slot booted | other | a slot name."""
        self.rauc.run("status", f"mark-{verdict}", slot, timeout_s=60)


def read_image(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def parse_status(doc: dict[str, Any], image: dict[str, str], events: list[dict[str, Any]]) -> SystemStatus:
    """`rauc status --detailed --output-format=json` (RAUC 1.8: slots is a list of {name: {...}})."""
    booted = str(doc.get("booted") or "")
    primary = doc.get("boot_primary")
    slots: list[Slot] = []
    for entry in doc.get("slots") or []:
        for name, info in entry.items():
            detail = info.get("slot_status") or {}
            bundle = detail.get("bundle") or {}
            installed = detail.get("installed") or {}
            slots.append(
                Slot(
                    name=name,
                    bootname=str(info.get("bootname") or name),
                    device=str(info.get("device") or ""),
                    booted=info.get("state") == "booted" or info.get("bootname") == booted,
                    boot_status=str(info.get("boot_status") or "unknown"),
                    version=bundle.get("version"),
                    installed_at=installed.get("timestamp"),
                    primary=name == primary,
                )
            )
    slots.sort(key=lambda s: s.bootname)
    compatible = str(doc.get("compatible") or "")
    return SystemStatus(compatible, booted, tuple(slots), image, rollback_of(events, booted), tuple(events))


def rollback_of(events: list[dict[str, Any]], booted: str) -> dict[str, Any] | None:
    """The latest fall-back away from another slot, unless something was installed since."""
    for event in reversed(events):
        if event.get("kind") == "installed":
            return None
        if event.get("kind") == "bad" and event.get("slot") != booted:
            return dict(event)
    return None


# -- the event record (on the data partition: it survives updates and fall-backs) -------------------


def read_events(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def record(path: Path, event: dict[str, Any]) -> None:
    """Append one event (kind installed | refused | good | bad); keeps the last EVENTS_KEPT."""
    entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **event}
    try:
        events = [*read_events(path), entry][-EVENTS_KEPT:]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, (json.dumps(events, indent=1) + "\n").encode(), mode=0o644)
    except OSError as err:  # the record is for people; the update itself must not fail on it
        logger.warning("could not record %s in %s: %s", event.get("kind"), path, err)
