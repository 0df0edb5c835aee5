"""`appliance update BUNDLE`, `appliance slots`, `appliance slot-gate`: the A/B system update through
RAUC (appliance/update.py, appliance/slotgate.py; images/README.md, "A/B slots")."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.config import Config
from appliance.slotgate import GateOptions, System, http_probe, run_gate, unit_failed
from appliance.update import EVENTS_FILE, Paths, Rauc, Updater

Common = Callable[[argparse.ArgumentParser], None]
ConfigLoader = Callable[[argparse.Namespace], Config]


def updater_of(args: argparse.Namespace) -> Updater:
    paths = Paths(events=Path(args.events), system_conf=Path(args.system_conf))
    return Updater(Rauc(tuple(args.rauc.split())), paths)


def _rauc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rauc", default="rauc", help="the rauc command (tests use a fake)")
    parser.add_argument("--system-conf", default="/etc/rauc/system.conf", help="RAUC's system.conf")
    parser.add_argument("--events", default=str(EVENTS_FILE), help="the slot event record")


def _reboot() -> None:
    subprocess.run(["systemctl", "reboot"], check=True)


def cmd_update(args: argparse.Namespace) -> int:
    result = updater_of(args).install(Path(args.bundle), source=args.source)
    sys.stdout.write(f"installed {result.version} into slot {result.slot}; it boots next\n")
    if args.reboot:
        _reboot()
    else:
        sys.stdout.write("reboot to start it: systemctl reboot (it falls back by itself if not healthy)\n")
    return 0


def cmd_slots(args: argparse.Namespace) -> int:
    status = updater_of(args).status()
    sys.stdout.write(json.dumps(status.to_json(), indent=2) + "\n")
    return 0


def gate_command(load: ConfigLoader) -> Callable[[argparse.Namespace], int]:
    def cmd_slot_gate(args: argparse.Namespace) -> int:
        url = args.health_url or f"http://127.0.0.1:{load(args).server.port}/api/v1/health"
        system = System(
            healthy=http_probe(url),
            service_failed=unit_failed(args.unit),
            reboot=_reboot,
            options=GateOptions(deadline_s=args.deadline, interval_s=args.interval),
        )
        verdict = run_gate(updater_of(args), system)
        sys.stdout.write(f"slot {verdict.slot}: {'good' if verdict.good else 'bad'} ({verdict.reason})\n")
        return 0 if verdict.good else 1

    return cmd_slot_gate


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common, load: ConfigLoader
) -> None:
    update = sub.add_parser(
        "update", help="install a signed system bundle (.raucb) into the other slot (RAUC); it boots next"
    )
    update.add_argument("bundle", help="RAUC bundle from build_image.sh: appliance-<version>-<board>.raucb")
    update.add_argument("--reboot", action="store_true", help="reboot into the new slot at once")
    update.add_argument("--source", default="cli", help="recorded with the update (cli, usb, api)")
    _rauc_options(update)
    update.set_defaults(handler=cmd_update)

    slots = sub.add_parser("slots", help="both system slots, their versions, which booted, the last rollback")
    _rauc_options(slots)
    slots.set_defaults(handler=cmd_slots)

    gate = sub.add_parser(
        "slot-gate",
        help="at boot: mark the booted slot good once the appliance is healthy, else fall back (reboot)",
    )
    common(gate)
    gate.add_argument("--deadline", type=float, default=900.0, help="seconds to become healthy")
    gate.add_argument("--interval", type=float, default=5.0, help="seconds between health checks")
    gate.add_argument("--health-url", help="default: http://127.0.0.1:<server.port>/api/v1/health")
    gate.add_argument("--unit", default="appliance.service", help="the service whose failure ends the wait")
    _rauc_options(gate)
    gate.set_defaults(handler=gate_command(load))
