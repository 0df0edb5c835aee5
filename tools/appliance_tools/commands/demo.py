"""`appliance demo prepare`: fetch the demo models, build the demo video, write a config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from appliance_tools.demo.setup import prepare_demo, prepare_serial_demo

Common = Callable[[argparse.ArgumentParser], None]


def cmd_demo(args: argparse.Namespace) -> int:
    prepare = prepare_serial_demo if args.serial else prepare_demo
    config_path = prepare(Path(args.data_dir), Path(args.cache_dir))
    sys.stdout.write(f"demo ready: appliance serve --config {config_path}\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    demo = sub.add_parser("demo", help="the bundled demo").add_subparsers(dest="demo", required=True)
    prepare = demo.add_parser("prepare", help="fetch demo models, build the demo video, write a config")
    prepare.add_argument("--data-dir", default="./data")
    prepare.add_argument(
        "--cache-dir", default="./.cache", help="where downloaded wheels and models are kept"
    )
    prepare.add_argument("--serial", action="store_true", help="the serial demo (vibration classifier)")
    prepare.set_defaults(handler=cmd_demo)
