"""`appliance update BUNDLE`: offline update from a wheel bundle, rolled back when unhealthy."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

Common = Callable[[argparse.ArgumentParser], None]


def cmd_update(args: argparse.Namespace) -> int:
    from appliance.cli import config_from_args
    from appliance.update import Layout, UpdateOptions, apply_update, http_health

    url = args.health_url
    if not url:
        port = config_from_args(args).server.port
        url = f"http://127.0.0.1:{port}/api/v1/health"
    options = UpdateOptions(
        layout=Layout(Path(args.root)),
        python=args.python,
        restart=tuple(shlex.split(args.restart_command)),
        timeout_s=args.timeout,
        keep=args.keep,
    )
    result = apply_update(Path(args.bundle), options, http_health(url))
    previous = result.previous.name if result.previous else "none"
    sys.stdout.write(f"updated to {result.version} ({result.venv}); previous: {previous}\n")
    return 0


def register(sub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    update = sub.add_parser(
        "update", help="install a wheel bundle into a fresh venv, restart, roll back if unhealthy"
    )
    common(update)
    update.add_argument("bundle", help="update bundle (.bundle.tar written by build_image.sh)")
    update.add_argument("--root", default="/opt/appliance", help="holds venvs/ and the current link")
    update.add_argument("--python", default="/usr/bin/python3", help="interpreter of the new venv")
    update.add_argument(
        "--restart-command",
        default="systemctl restart appliance.service",
        help="command that restarts the service",
    )
    update.add_argument(
        "--health-url", help="default: http://127.0.0.1:<server.port>/api/v1/health of --config"
    )
    update.add_argument(
        "--timeout", type=float, default=180.0, help="seconds the new version has to become healthy"
    )
    update.add_argument("--keep", type=int, default=1, help="older venvs kept for rollback")
    update.set_defaults(handler=cmd_update)
