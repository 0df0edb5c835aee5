"""`appliance bench`: measure raw invoke, pipeline, REST and store in one run; write a report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

Common = Callable[[argparse.ArgumentParser], None]


def cmd_bench(args: argparse.Namespace) -> int:
    from appliance.bench import BenchOptions, run_bench, summary, to_json, to_markdown, verdict

    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    options = BenchOptions(
        model=args.model,
        frames=args.frames,
        requests=args.requests,
        rows=args.rows,
        threads=args.threads,
        concurrency=concurrency,
        backend=args.backend,
    )
    report = run_bench(Path(args.cache_dir), options)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.json:
        sys.stdout.write(to_json(report) + "\n")
    else:
        for m in report.measurements:
            p = f"  p50 {m.p50_ms} ms  p99 {m.p99_ms} ms" if m.p50_ms is not None else ""
            sys.stdout.write(f"{m.name:<32} {m.per_s:>12,.1f}/s{p}\n")
        for name, value in summary(report).items():
            sys.stdout.write(f"{name:<32} {value!s:>12}  {verdict(name, value)}\n")
    if args.report:
        Path(args.report).write_text(to_markdown(report, when), encoding="utf-8")
    return 0


def register(sub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="benchmark raw LiteRT, the pipeline, REST and the store")
    bench.add_argument("--model", default="face", help="demo model to measure (face, selfie, stripes)")
    bench.add_argument("--frames", type=int, default=1000, help="frames for raw and pipeline runs")
    bench.add_argument("--requests", type=int, default=400, help="REST requests per concurrency level")
    bench.add_argument("--rows", type=int, default=50_000, help="rows for the store run")
    bench.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    bench.add_argument(
        "--backend",
        default="litert",
        choices=("litert", "rknn"),
        help="backend to measure (rknn: per-core contexts, LiteRT as fallback)",
    )
    bench.add_argument("--concurrency", default="1,4,16", help="REST concurrency levels")
    bench.add_argument("--cache-dir", default="./.cache", help="where the demo models are cached")
    bench.add_argument("--report", help="write a markdown report here (e.g. docs/benchmarks.md)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.set_defaults(handler=cmd_bench)
