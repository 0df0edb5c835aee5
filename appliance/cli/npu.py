"""`appliance doctor` (is this board ready for the NPU?) and `appliance models convert` (host tool)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.backends.npucheck import npu_checks
from appliance.cli.arguments import config_from_args
from appliance.convert import DEFAULT_SAMPLES, TARGETS
from appliance.convert.conversion import ConvertRequest, convert
from appliance.convert.toolkit import Toolkit
from appliance.convert.verify import VerifyThresholds
from appliance.models.manifest import Manifest
from appliance.models.registry import MANIFEST, Registry, write_json_atomic
from appliance.platform import Check, PlatformReport, ProbeSources, probe_platform

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

Common = Callable[[argparse.ArgumentParser], None]


def probe_sources(root: str) -> ProbeSources:
    return ProbeSources(root=Path(root))


def render(report: PlatformReport, extra: Sequence[Check] = ()) -> str:
    lines = []
    for check in (*report.checks, *extra):
        mark = "ok" if check.ok else ("MISSING" if check.blocking else "--")
        lines.append(f"{check.name:<10} {mark:<8} {check.value}")
        if not check.ok and check.fix:
            lines.append(f"{'':<10} {'':<8} fix: {check.fix}")
    lines.append(f"verdict: {report.verdict()}")
    return "\n".join(lines) + "\n"


def _doctor_model(args: argparse.Namespace) -> Path | None:
    """The .rknn to run: --model, else the active model of --data-dir when it has one."""
    if args.model:
        return Path(args.model)
    if not args.data_dir:
        return None
    from appliance.services import open_registry  # noqa: PLC0415 heavy: the `appliance serve` supervisor imports every command module

    registry = open_registry(Path(args.data_dir))
    active = registry.active()
    return registry.files_of(active).get(".rknn") if active is not None else None


def cmd_doctor(args: argparse.Namespace) -> int:
    sources = probe_sources(args.root)
    report = probe_platform(sources)
    live = args.root == "/" or args.model is not None  # inference only on this machine
    extra: list[Check] = []
    if report.soc is not None:
        model = _doctor_model(args) if live else None
        extra = npu_checks(sources.root, args.user, report.rknnlite, model)
        if not live:
            extra = [c for c in extra if c.name != "inference"]
    if args.json:
        data = report.to_json()
        data["checks"] = [c.to_json() for c in (*report.checks, *extra)]
        data["npu_proven"] = any(c.name == "inference" and c.ok for c in extra)
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render(report, extra))
    npu_ok = report.rknn_blocker() is None and all(c.ok or not c.blocking for c in extra)
    return 0 if npu_ok or report.teflon_ready else 1


def _progress(stage: str, message: str) -> None:
    sys.stderr.write(f"convert: {stage:<9} {message}\n")
    sys.stderr.flush()


def _summary(ref: str, report: dict[str, Any]) -> str:
    lines = [f"{ref}  .rknn for {report['target']} ({report['dtype']})"]
    lines.append(f"  verified on {report['samples']} sample(s): {report.get('verified_on', '?')}")
    for row in report["outputs"]:
        lines.append(
            f"  output {row['name']}: max abs error {row['max_abs_error']:.4g} "
            f"({row.get('relative_error', 0.0):.1%} of range), cosine {row['cosine']:.5f}"
        )
    if report.get("same_label") is not None:
        lines.append(f"  top-1 class agrees on {report['same_label']:.0%} of {report['samples']} samples")
    if report.get("reference_boxes") is not None:
        recall, precision = report.get("box_recall"), report.get("box_precision")
        lines.append(
            f"  boxes: float model {report['reference_boxes']}, converted {report['candidate_boxes']}; "
            f"recall {_share(recall)}, precision {_share(precision)} at IoU 0.5"
        )
    if report["passed"]:
        lines.append("verification passed")
    else:
        problems = "; ".join(report["problems"])
        lines.append(f"verification FAILED: {problems}. The version is flagged and cannot be activated.")
    return "\n".join(lines) + "\n"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _force(registry: Registry, manifest: Manifest) -> Manifest:
    """Record in the manifest that a failed version was activated on purpose (--force)."""
    report = dict(manifest.report or {})
    report["forced"] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "problems": report["problems"]}
    forced = dataclasses.replace(manifest, report=report)
    write_json_atomic(registry.version_dir(manifest.name, manifest.version) / MANIFEST, forced.to_json())
    return forced


def cmd_convert(args: argparse.Namespace) -> int:
    from appliance.services import open_registry  # noqa: PLC0415 heavy: the `appliance serve` supervisor imports every command module

    config = config_from_args(args)
    b = config.backend
    limits = VerifyThresholds(
        args.min_cosine if args.min_cosine is not None else b.verify_min_cosine,
        args.min_same_label if args.min_same_label is not None else b.verify_min_same_label,
        args.min_boxes if args.min_boxes is not None else b.verify_min_boxes,
        args.min_precision if args.min_precision is not None else b.verify_min_precision,
        args.max_error if args.max_error is not None else b.verify_max_error,
    )
    request = ConvertRequest(
        Path(args.source),
        args.model or "",
        args.target,
        args.int8,
        Path(args.calib) if args.calib else None,
        args.samples,
        limits,
        Path(args.verify) if args.verify else None,
        args.uint8_input,
    )
    registry = open_registry(config.data_dir)
    toolkit = Toolkit.in_venv(Path(args.venv or b.rknn_venv))
    manifest = convert(registry, toolkit, request, _progress)
    report = manifest.report or {}
    sys.stdout.write(_summary(manifest.ref, report))
    passed = bool(report.get("passed"))
    if args.activate and (passed or args.force):
        if not passed:
            manifest = _force(registry, manifest)
            sys.stdout.write("--force: activating a version that failed verification (recorded)\n")
        registry.activate(manifest.name, manifest.version)
        sys.stdout.write(f"active: {manifest.ref}\n")
    return 0 if passed else 1


def _models_subparsers(sub: SubParsers) -> SubParsers:
    """The `models` sub-commands (registered by cli/models.py); convert joins them."""
    parser = sub.choices.get("models") or sub.add_parser("models", help="the model registry")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: SubParsers = action
            return found
    return parser.add_subparsers(dest="models", required=True)


def register(sub: SubParsers, common: Common) -> None:
    doctor = sub.add_parser(
        "doctor", help="check this board for the NPU: SoC, driver, librknnrt.so, rknnlite"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--root", default="/", help="filesystem root to inspect (e.g. a mounted board image)")
    doctor.add_argument("--user", default="appliance", help="service user that must open the NPU device node")
    doctor.add_argument("--model", help="X.rknn (with X.tflite beside it) to run once on the NPU and time")
    doctor.add_argument("--data-dir", help="run the active model of this data folder (default: no inference)")
    doctor.set_defaults(handler=cmd_doctor)

    convert = _models_subparsers(sub).add_parser(
        "convert", help="convert a .onnx/.tflite model to .rknn with rknn-toolkit2 and verify it"
    )
    common(convert)
    convert.add_argument("source", help="SRC.onnx or SRC.tflite")
    convert.add_argument("--target", default="rk3588", choices=TARGETS)
    convert.add_argument(
        "--model", help="NAME[:VERSION] whose settings and .tflite twin to use (default: SRC name)"
    )
    convert.add_argument("--int8", action="store_true", help="quantise to int8 (needs --calib)")
    convert.add_argument("--calib", help="folder of images (or .npy tensors) to calibrate int8 on")
    convert.add_argument(
        "--verify",
        help="folder of images to verify on (default for int8: every 4th --calib file, held out)",
    )
    convert.add_argument(
        "--uint8-input",
        action="store_true",
        help="fold the model's mean/std into the .rknn: the NPU is fed raw uint8 pixels, not floats",
    )
    convert.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="inputs compared in the report")
    convert.add_argument("--venv", help="rknn-toolkit2 venv (default: backend.rknn_venv)")
    convert.add_argument("--min-cosine", type=float, help="override backend.verify_min_cosine")
    convert.add_argument("--min-same-label", type=float, help="override backend.verify_min_same_label")
    convert.add_argument("--min-boxes", type=float, help="override backend.verify_min_boxes (box recall)")
    convert.add_argument("--min-precision", type=float, help="override backend.verify_min_precision")
    convert.add_argument("--max-error", type=float, help="override backend.verify_max_error")
    convert.add_argument("--activate", action="store_true", help="activate the new version if it passes")
    convert.add_argument(
        "--force",
        action="store_true",
        help="with --activate: activate even if verification failed (recorded)",
    )
    convert.set_defaults(handler=cmd_convert)
