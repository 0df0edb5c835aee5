"""The `appliance` command: serve, check-config, infer, models, db; bench and demo from the tools."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance import __version__
from appliance.cli import data as data_cmd
from appliance.cli import dataset as dataset_cmd
from appliance.cli import models as models_cmd
from appliance.cli import npu as npu_cmd
from appliance.cli import serve as serve_cmd
from appliance.cli import tokens as tokens_cmd
from appliance.cli import tools as tools_cmd
from appliance.cli import update as update_cmd
from appliance.cli.arguments import CONFIG_ENV, add_common, config_from_args, configure_logging
from appliance.config import ConfigError, load_config, replace_section
from appliance.errors import ApplianceError

__all__ = [
    "CONFIG_ENV",
    "add_common",
    "build_parser",
    "config_from_args",
    "configure_logging",
    "entry",
    "main",
]

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.host or args.port:
        config = replace_section(
            config, "server", host=args.host or config.server.host, port=args.port or config.server.port
        )
    configure_logging(config.log.level)
    path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
    raw: list[str] = args.raw_argv
    argv = [arg for arg in raw[raw.index("serve") + 1 :] if arg != "--worker"]  # for the worker
    return serve_cmd.run(args, argv, config, Path(path) if path else None)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.path)
    except ConfigError as err:
        for problem in err.problems:
            sys.stdout.write(f"{args.path}:{problem.line or '-'}: {problem.key}: {problem.message}\n")
        sys.stdout.write(f"{len(err.problems)} problem(s) found\n")
        return 1
    sys.stdout.write(f"{args.path}: ok\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Edge inference appliance.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the appliance: source, pipeline, store, HTTP")
    add_common(serve)
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    # the supervisor starts the server as `serve --worker` (docs/api.md, "Restart")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("path", help="TOML config file")
    check.set_defaults(handler=cmd_check_config)

    models_cmd.register(sub, add_common)
    npu_cmd.register(sub, add_common)
    data_cmd.register(sub, add_common)
    update_cmd.register(sub, add_common, config_from_args)
    tokens_cmd.register(sub, add_common)
    dataset_cmd.register(sub, add_common, config_from_args)
    tools_cmd.register(sub, add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)
    if args.command != "serve":
        configure_logging(os.environ.get("APPLIANCE_LOG_LEVEL", "WARNING"))
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as err:
        sys.stderr.write(f"configuration error:\n{err}\n")
        return 2
    except ApplianceError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1


def entry() -> None:
    raise SystemExit(main())
