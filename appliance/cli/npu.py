"""`appliance doctor` (is this board ready for the NPU?) and `appliance models convert` (host tool)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.convert import DEFAULT_SAMPLES, TARGETS
from appliance.platform import PlatformReport, ProbeSources, probe_platform

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

Common = Callable[[argparse.ArgumentParser], None]


def probe_sources(root: str) -> ProbeSources:
    return ProbeSources(root=Path(root))


def render(report: PlatformReport) -> str:
    lines = []
    for check in report.checks:
        mark = "ok" if check.ok else ("MISSING" if check.blocking else "--")
        lines.append(f"{check.name:<10} {mark:<8} {check.value}")
        if not check.ok and check.fix:
            lines.append(f"{'':<10} {'':<8} fix: {check.fix}")
    lines.append(f"verdict: {report.verdict()}")
    return "\n".join(lines) + "\n"


def cmd_doctor(args: argparse.Namespace) -> int:
    report = probe_platform(probe_sources(args.root))
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render(report))
    return 0 if report.rknn_blocker() is None or report.teflon_ready else 1


def _progress(stage: str, message: str) -> None:
    sys.stderr.write(f"convert: {stage:<9} {message}\n")
    sys.stderr.flush()


def _summary(ref: str, report: dict[str, Any]) -> str:
    lines = [f"{ref}  .rknn for {report['target']} ({report['dtype']})"]
    for row in report["outputs"]:
        lines.append(
            f"  output {row['name']}: max abs error {row['max_abs_error']:.4g}, cosine {row['cosine']:.5f}"
        )
    if report.get("same_label") is not None:
        lines.append(f"  top-1 class agrees on {report['same_label']:.0%} of {report['samples']} samples")
    if report.get("box_agreement") is not None:
        mean = report.get("mean_box_iou")
        paired = f"mean IoU {mean:.3f}" if mean is not None else "no box paired"
        lines.append(f"  boxes agree {report['box_agreement']:.0%} ({paired})")
    if report["passed"]:
        lines.append("verification passed")
    else:
        problems = "; ".join(report["problems"])
        lines.append(f"verification FAILED: {problems}. The version is flagged: do not activate it.")
    return "\n".join(lines) + "\n"


def cmd_convert(args: argparse.Namespace) -> int:
    from appliance.cli import config_from_args
    from appliance.convert.conversion import ConvertRequest, convert
    from appliance.convert.toolkit import Toolkit
    from appliance.convert.verify import VerifyThresholds
    from appliance.services import open_registry

    config = config_from_args(args)
    b = config.backend
    limits = VerifyThresholds(
        args.min_cosine if args.min_cosine is not None else b.verify_min_cosine,
        args.min_same_label if args.min_same_label is not None else b.verify_min_same_label,
        args.min_boxes if args.min_boxes is not None else b.verify_min_boxes,
    )
    request = ConvertRequest(
        Path(args.source),
        args.model or "",
        args.target,
        args.int8,
        Path(args.calib) if args.calib else None,
        args.samples,
        limits,
    )
    registry = open_registry(config.data_dir)
    toolkit = Toolkit.in_venv(Path(args.venv or b.rknn_venv))
    manifest = convert(registry, toolkit, request, _progress)
    report = manifest.report or {}
    sys.stdout.write(_summary(manifest.ref, report))
    if report.get("passed") and args.activate:
        registry.activate(manifest.name, manifest.version)
        sys.stdout.write(f"active: {manifest.ref}\n")
    return 0 if report.get("passed") else 1


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
    convert.add_argument(
        "--calib", help="folder of images (or .npy tensors) for calibration and verification"
    )
    convert.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="inputs compared in the report")
    convert.add_argument("--venv", help="rknn-toolkit2 venv (default: backend.rknn_venv)")
    convert.add_argument("--min-cosine", type=float, help="override backend.verify_min_cosine")
    convert.add_argument("--min-same-label", type=float, help="override backend.verify_min_same_label")
    convert.add_argument("--min-boxes", type=float, help="override backend.verify_min_boxes")
    convert.add_argument("--activate", action="store_true", help="activate the new version if it passes")
    convert.set_defaults(handler=cmd_convert)
