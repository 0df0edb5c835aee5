"""A fake `rauc` command line for the host-side tests of appliance/update.py and appliance/slotgate.py
(tests only, never shipped). The real one runs in `make image-test` (tests/e2e/test_image_boot.py).

    python tests/fakes/rauc.py --state STATE.json install BUNDLE
    python tests/fakes/rauc.py --state STATE.json status --detailed --output-format=json
    python tests/fakes/rauc.py --state STATE.json status mark-good|mark-bad booted|other|rootfs.N

Written from RAUC 1.8: the JSON of `rauc status --detailed --output-format=json` is the shape
src/main.c (v1.8, status_json) builds - "booted" is the bootname, "slots" a list of one-key objects,
"boot_status" good/bad, "slot_status.bundle.version" - and the refusal messages are RAUC's
("Compatible mismatch: Expected '…' but bundle manifest has '…'", signature verification). A fake
bundle is a text file of key=value lines: compatible, version, signer (dev | other | none).
Like the real client (v1.8 src/main.c), a failed install prints the service's reason as
"LastError: …" on stdout and only "Installing `BUNDLE` failed" on stderr.
Every call is appended to STATE's "calls" so that tests can see what was asked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TRUSTED = "dev"


def _slot(state: dict, bootname: str) -> dict:
    return next(s for s in state["slots"] if s["bootname"] == bootname)


def _install(state: dict, bundle: Path) -> int:
    reason = _refusal(state, bundle)
    if reason:
        sys.stdout.write(f"installing\n  0% Installing\nLastError: {reason}\nidle\n")
        sys.stderr.write(f"Installing `{bundle}` failed\n")
        return 1
    target = next(s for s in state["slots"] if s["bootname"] != state["booted"])
    fields = dict(line.split("=", 1) for line in bundle.read_text().splitlines() if "=" in line)
    target.update(version=fields.get("version"), good=True, installed="2026-12-02T04:00:00Z")
    state["order"] = [target["bootname"], state["booted"]]
    sys.stdout.write(f"installing\n100% Installing done.\nidle\nInstalling `{bundle}` succeeded\n")
    return 0


def _refusal(state: dict, bundle: Path) -> str:
    fields = dict(line.split("=", 1) for line in bundle.read_text().splitlines() if "=" in line)
    signer = fields.get("signer", "none")
    if signer == "none":
        return "Failed to check bundle identifier: Invalid identifier. Did you pass a valid RAUC bundle?"
    if signer != TRUSTED:
        return "signature verification failed: Verify error:unable to get local issuer certificate"
    if fields.get("compatible") != state["compatible"]:
        return (
            f"Compatible mismatch: Expected '{state['compatible']}' but bundle manifest has "
            f"'{fields.get('compatible')}'"
        )
    if state.get("fail_write"):
        return "Failed updating slot rootfs.1: failed to write image: No space left on device"
    return ""


def _status(state: dict) -> None:
    primary = next((b for b in state["order"] if _slot(state, b)["good"]), None)
    slots = []
    for s in state["slots"]:
        info = {
            "class": "rootfs",
            "device": s["device"],
            "type": "ext4",
            "bootname": s["bootname"],
            "state": "booted" if s["bootname"] == state["booted"] else "inactive",
            "parent": None,
            "mountpoint": "/" if s["bootname"] == state["booted"] else None,
            "boot_status": "good" if s["good"] else "bad",
        }
        if s.get("version"):
            info["slot_status"] = {
                "bundle": {"compatible": state["compatible"], "version": s["version"]},
                "installed": {"timestamp": s["installed"], "count": 1},
                "status": "ok",
            }
        slots.append({s["name"]: info})
    primary_name = next((s["name"] for s in state["slots"] if s["bootname"] == primary), None)
    doc = {
        "compatible": state["compatible"],
        "variant": "",
        "booted": state["booted"],
        "boot_primary": primary_name,
        "slots": slots,
    }
    sys.stdout.write(json.dumps(doc) + "\n")


def _mark(state: dict, verdict: str, which: str) -> None:
    if which == "booted":
        slot = _slot(state, state["booted"])
    elif which == "other":
        slot = next(s for s in state["slots"] if s["bootname"] != state["booted"])
    else:
        slot = next(s for s in state["slots"] if s["name"] == which)
    slot["good"] = verdict == "mark-good"
    sys.stdout.write(f"marked slot {slot['name']} as {'good' if slot['good'] else 'bad'}\n")


def main(argv: list[str]) -> int:
    assert argv[0] == "--state"
    path = Path(argv[1])
    state = json.loads(path.read_text())
    args = argv[2:]
    state["calls"].append(args)
    code = 0
    if args[0] == "install":
        code = _install(state, Path(args[1]))
    elif args[:2] == ["status", "--detailed"]:
        _status(state)
    elif args[0] == "status" and args[1] in ("mark-good", "mark-bad"):
        _mark(state, args[1], args[2])
    else:
        sys.stderr.write(f"fake rauc: unknown command {args}\n")
        code = 2
    path.write_text(json.dumps(state))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
