"""`appliance dataset export --format yolo|coco --out DIR`: the hard examples kept on the appliance."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.config import Config
from appliance.inspection.dataset import FORMATS, Dataset

Common = Callable[[argparse.ArgumentParser], None]
LoadConfig = Callable[[argparse.Namespace], Config]  # handed in by appliance.cli: no import back into it
DATASET_DIR = "dataset"


def cmd_export(args: argparse.Namespace, load: LoadConfig) -> int:
    dataset = Dataset(load(args).data_dir / DATASET_DIR)
    count = dataset.export(Path(args.out), args.format)
    sys.stdout.write(f"{count} example(s) written to {args.out} as {args.format}\n")
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common, load: LoadConfig
) -> None:
    dataset = sub.add_parser("dataset", help="hard examples kept on the appliance")
    commands = dataset.add_subparsers(dest="dataset", required=True)
    export = commands.add_parser("export", help="write images + the model's boxes as YOLO or COCO")
    common(export)
    export.add_argument("--format", required=True, choices=FORMATS, help="yolo: labels/*.txt; coco: one JSON")
    export.add_argument("--out", required=True, help="output directory (created; must be empty)")
    export.set_defaults(handler=functools.partial(cmd_export, load=load))
