"""`appliance db export`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from starlette.datastructures import QueryParams

from appliance.api.params import time_param
from appliance.cli.arguments import config_from_args
from appliance.errors import NotFound
from appliance.store.database import DB_NAME
from appliance.store.reader import Query, ResultReader, export_lines

Common = Callable[[argparse.ArgumentParser], None]


def cmd_export(args: argparse.Namespace) -> int:
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    db = sub.add_parser("db", help="the results database").add_subparsers(dest="db", required=True)
    export = db.add_parser("export", help="export results as CSV or JSON lines")
    common(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--since", help="epoch seconds or ISO 8601 time")
    export.add_argument("--until", help="epoch seconds or ISO 8601 time")
    export.add_argument("--label", help="only results with this top label")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(handler=cmd_export)
