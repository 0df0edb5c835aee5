"""`appliance db export` and `appliance demo prepare`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.api.params import time_param
from appliance.errors import NotFound
from appliance.store.reader import Query, ResultReader, export_lines

Common = Callable[[argparse.ArgumentParser], None]


def cmd_export(args: argparse.Namespace) -> int:
    from starlette.datastructures import QueryParams

    from appliance.cli import config_from_args
    from appliance.store.database import DB_NAME

    config = config_from_args(args)
    path = config.data_dir / DB_NAME
    if not path.exists():
        raise NotFound(f"no results database at {path}")
    params = QueryParams({k: v for k, v in (("since", args.since), ("until", args.until)) if v})
    query = Query(since=time_param(params, "since"), until=time_param(params, "until"), label=args.label)
    lines = export_lines(ResultReader(path).iter_rows(query), args.format)
    if args.output:
        with Path(args.output).open("w", encoding="utf-8", newline="") as fh:
            fh.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from appliance.demo.setup import prepare_demo, prepare_serial_demo

    prepare = prepare_serial_demo if args.serial else prepare_demo
    config_path = prepare(Path(args.data_dir), Path(args.cache_dir))
    sys.stdout.write(f"demo ready: appliance serve --config {config_path}\n")
    return 0


def register(sub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    db = sub.add_parser("db", help="the results database").add_subparsers(dest="db", required=True)
    export = db.add_parser("export", help="export results as CSV or JSON lines")
    common(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--since", help="epoch seconds or ISO 8601 time")
    export.add_argument("--until", help="epoch seconds or ISO 8601 time")
    export.add_argument("--label", help="only results with this top label")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(handler=cmd_export)

    demo = sub.add_parser("demo", help="the bundled demo").add_subparsers(dest="demo", required=True)
    prepare = demo.add_parser("prepare", help="fetch demo models, build the demo video, write a config")
    prepare.add_argument("--data-dir", default="./data")
    prepare.add_argument(
        "--cache-dir", default="./.cache", help="where downloaded wheels and models are kept"
    )
    prepare.add_argument("--serial", action="store_true", help="the serial demo (vibration classifier)")
    prepare.set_defaults(handler=cmd_demo)
