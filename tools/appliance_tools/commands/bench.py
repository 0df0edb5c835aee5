"""`appliance bench`: measure raw invoke, pipeline, REST and store in one run; write a report."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

Common = Callable[[argparse.ArgumentParser], None]


def cmd_soak(args: argparse.Namespace) -> int:
    from appliance_tools.soak import SoakOptions, run_soak, slope_mb_per_min, soak_markdown  # noqa: PLC0415 heavy: the `appliance` CLI imports every command module

    concurrency = int(args.concurrency.split(",")[-1]) if args.concurrency != "1,4,16" else 64
    options = SoakOptions(args.soak, concurrency, args.model.split(",")[0], args.threads)
    report = run_soak(Path(args.cache_dir), options)
    sys.stdout.write(
        f"soak {report.samples[-1][0] / 60:.1f} min, concurrency {concurrency}: settled RSS "
        f"{report.warm_mb:.1f} MB after warm-up -> {report.end_mb:.1f} MB at the end "
        f"({report.growth * 100:+.1f} %, {slope_mb_per_min(report):+.2f} MB/min); "
        f"{report.requests:,} requests, {report.failed} failed\n"
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sys.stdout.write(soak_markdown(report, when))
    if args.report:
        with Path(args.report).open("a", encoding="utf-8") as fh:
            fh.write("\n" + soak_markdown(report, when))
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    """MLServer and the appliance under the same KServe v2 load; the peers section of --report."""
    from appliance_tools.bench import BenchOptions  # noqa: PLC0415 heavy: the `appliance` CLI imports every command module
    from appliance_tools.bench_peers import peers_markdown, ratios, run_peers, write_section  # noqa: PLC0415 heavy: the `appliance` CLI imports every command module

    venv = Path(args.peers).resolve()
    version = subprocess.run(
        [str(venv / "bin" / "mlserver"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    options = BenchOptions(
        model=args.model.split(",")[0], requests=args.requests, threads=args.threads, concurrency=concurrency
    )
    run = run_peers(Path(args.cache_dir), venv, options)
    for (server, encoding, c), load in sorted(run.loads.items()):
        cpu = run.cpu_ms.get((server, encoding, c))
        figures = f"{load.per_s:>9,.1f}/s  p50 {load.p50_ms} p99 {load.p99_ms}  CPU {cpu} ms/req"
        sys.stdout.write(f"  {server:<10} {encoding:<7} c={c:<3} {figures}\n")
    for name, (value, target) in ratios(run).items():
        sys.stdout.write(f"  {name:<40} {value!s:>8}  (goal {target})\n")
    if args.report:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_section(Path(args.report), peers_markdown(run, when, version))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.soak:
        return cmd_soak(args)
    if args.peers:
        return cmd_peers(args)
    from appliance_tools.bench import (  # noqa: PLC0415 heavy: the `appliance` CLI imports every command module
        BenchOptions,
        run_bench,
        sections_markdown,
        summary,
        to_json,
        to_markdown,
        verdict,
    )

    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    reports = []
    for model in args.model.split(","):
        options = BenchOptions(
            model=model,
            frames=args.frames,
            requests=args.requests,
            rows=args.rows,
            threads=args.threads,
            concurrency=concurrency,
            backend=args.backend,
            workers=args.workers,
        )
        report = run_bench(Path(args.cache_dir), options)
        reports.append(report)
        if args.json:
            sys.stdout.write(to_json(report) + "\n")
            continue
        sys.stdout.write(f"model {model}\n")
        for m in report.measurements:
            p = f"  p50 {m.p50_ms} ms  p99 {m.p99_ms} ms" if m.p50_ms is not None else ""
            sys.stdout.write(f"  {m.name:<32} {m.per_s:>12,.1f}/s{p}\n")
        for name, value in summary(report).items():
            sys.stdout.write(f"  {name:<32} {value!s:>12}  {verdict(name, value)}\n")
    if args.report and args.append:
        with Path(args.report).open("a", encoding="utf-8") as fh:
            fh.write("\n" + sections_markdown(reports))
    elif args.report:
        notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else ""
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        from appliance_tools.bench_peers import existing_section  # noqa: PLC0415 heavy: the `appliance` CLI imports every command module

        peers = existing_section(Path(args.report))  # `make bench-peers` owns that section
        text = to_markdown(reports, when, notes) + (f"\n{peers}" if peers else "")
        Path(args.report).write_text(text, encoding="utf-8")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    bench = sub.add_parser("bench", help="benchmark raw LiteRT, the pipeline, REST and the store")
    bench.add_argument(
        "--model", default="face", help="demo model(s) to measure, comma-separated (face,selfie)"
    )
    bench.add_argument(
        "--notes", help="markdown file whose text the report adds under 'Reading these numbers'"
    )
    bench.add_argument("--frames", type=int, default=2000, help="frames for raw and pipeline runs")
    bench.add_argument("--requests", type=int, default=400, help="REST requests per concurrency level")
    bench.add_argument("--rows", type=int, default=50_000, help="rows for the store run")
    bench.add_argument("--threads", type=int, default=2, help="LiteRT threads per interpreter")
    bench.add_argument("--workers", type=int, default=1, help="interpreters run in parallel by the pipeline")
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
    bench.add_argument("--append", action="store_true", help="append the model sections to --report")
    bench.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="instead: distinct JPEGs at concurrency 64 (or the last --concurrency) for MINUTES; "
        "reports settled RSS after warm-up vs the end (appended to --report)",
    )
    bench.add_argument(
        "--peers",
        metavar="MLSERVER_VENV",
        help="instead: MLServer (from this venv) and the appliance under the same KServe v2 load "
        "(JSON, binary, gRPC); replaces the peers section of --report (make bench-peers)",
    )
    bench.set_defaults(handler=cmd_bench)
