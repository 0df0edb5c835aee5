"""`appliance models add|list|activate|rollback|delete|shadow|promote` and `appliance infer`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.cli.arguments import config_from_args
from appliance.errors import ApplianceError, BadRequest, Busy, ImageRejected, ModelRejected, PayloadTooLarge
from appliance.models.manifest import (
    DECODERS,
    LAYOUTS,
    RESIZE_MODES,
    TASKS,
    DecoderSpec,
    InputSpec,
    Thresholds,
    check_labels,
)
from appliance.models.registry import AddRequest, Registry
from appliance.shadow import mailbox

Common = Callable[[argparse.ArgumentParser], None]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected") from err


def _labels(path: str | None) -> tuple[str, ...]:
    if not path:
        return ()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise BadRequest(f"cannot read labels file {path}: {err.strerror}") from err
    return tuple(line.strip() for line in lines if line.strip())


def _registry(args: argparse.Namespace) -> Registry:
    from appliance.services import open_registry  # noqa: PLC0415 heavy: the `appliance serve` supervisor imports every command module

    return open_registry(config_from_args(args).data_dir)


def _check_size(path: Path, limit: int) -> None:
    """The same cap as an upload over the API (server.max_model_bytes), checked before any copy."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ModelRejected(f"{path}: {err.strerror}") from err
    if size > limit:
        raise PayloadTooLarge(f"{path.name} is {size} bytes, over server.max_model_bytes ({limit} bytes)")


def _print(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cmd_add(args: argparse.Namespace) -> int:
    _check_size(Path(args.file), config_from_args(args).server.max_model_bytes)
    labels = _labels(args.labels)
    check_labels(args.task, labels)
    request = AddRequest(
        source=Path(args.file),
        task=args.task,
        name=args.name or "",
        labels=labels,
        input=InputSpec(args.layout, args.color, args.mean, args.std, args.resize),
        thresholds=Thresholds(args.score, args.iou, args.top_k, args.mask, args.max_detections),
        decoder=DecoderSpec(args.decoder),
        description=args.description or "",
    )
    registry = _registry(args)
    manifest = registry.add(request)
    if args.activate:
        registry.activate(manifest.name, manifest.version)
    _print(manifest.to_json())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    active = registry.active()
    for m in registry.list():
        mark = "*" if active is not None and active.ref == m.ref else " "
        sys.stdout.write(f"{mark} {m.ref:<32} {m.task:<9} {m.size:>10} B  {m.sha256[:12]}  {m.created}\n")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    """Prove the model first (checksum, load, one run on an input fitting the configured source):
    a model that cannot run is refused and the registry is unchanged."""
    from appliance.pipeline.oneshot import check_candidate  # noqa: PLC0415 heavy: the `appliance serve` supervisor imports every command module

    config = config_from_args(args)
    registry = _registry(args)
    manifest = registry.get(args.name, args.version)
    check_candidate(registry, manifest, config)
    _print(registry.activate(manifest.name, manifest.version).to_json())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    manifest = _registry(args).rollback()
    sys.stdout.write(f"active: {manifest.ref}\n")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _registry(args).delete(args.name, args.version)
    return 0


def _ref(text: str) -> tuple[str, int | None]:
    name, _, version = text.partition(":")
    if version and not version.isdigit():
        raise BadRequest(f"{text!r}: NAME or NAME:VERSION")
    return name, int(version) if version else None


def _ask_server(args: argparse.Namespace, request: dict[str, object]) -> dict[str, object]:
    """Hand a request to the appliance serving this data dir (mailbox.py) and wait for its answer."""
    folder = config_from_args(args).data_dir / "shadow"
    request_id = mailbox.send(folder, request)
    answer = mailbox.wait_answer(folder, request_id, args.timeout)
    if answer is None:
        mailbox.withdraw(folder, request_id)
        raise Busy(
            f"no running appliance answered within {args.timeout:g} s: shadow runs happen in "
            "`appliance serve` on this data directory (is it running with the same --data-dir?)"
        )
    if not answer.get("ok"):
        error = ApplianceError(str(answer.get("error")))
        error.status = int(str(answer.get("code", 500)))
        raise error
    run = answer.get("run")
    return run if isinstance(run, dict) else {}


def cmd_shadow(args: argparse.Namespace) -> int:
    """Start (NAME[:VERSION]), stop (--stop) or show (--status) the running appliance's shadow run."""
    if args.status:
        status = mailbox.read_status(config_from_args(args).data_dir / "shadow")
        if status is None:
            raise BadRequest("no shadow status yet: is `appliance serve` running on this data dir?")
        status.pop("answers", None)
        _print(status)
        return 0
    if args.stop:
        run = _ask_server(args, {"action": "stop"})
    elif args.model:
        name, version = _ref(args.model)
        run = _ask_server(args, {"action": "start", "name": name, "version": version})
    else:
        raise BadRequest("name the model to shadow (NAME or NAME:VERSION), or give --stop or --status")
    run.pop("answers", None)
    _print(run)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Promote a shadowed candidate in the running appliance (refused, naming the shortfall, unless
    its shadow run earned it or --override)."""
    name, version = _ref(args.model)
    by = f"cli:{args.by or getpass.getuser()}"
    request = {"action": "promote", "name": name, "version": version, "override": args.override, "by": by}
    run = _ask_server(args, request)
    sys.stdout.write(f"active: {name}{f':{version}' if version else ''} (promoted; {run.get('reason')})\n")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    import cv2  # noqa: PLC0415 heavy (OpenCV), as below

    from appliance.pipeline.oneshot import OneShot  # noqa: PLC0415 heavy: the `appliance serve` supervisor imports every command module

    config = config_from_args(args)
    registry = _registry(args)
    name, _, version = args.model.partition(":")
    manifest = registry.get(name, int(version) if version else None)
    with OneShot(registry, manifest, config) as runner:
        for path in args.images:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise ImageRejected(f"{path}: not a readable image")
            result = runner.run(image, source=path)
            sys.stdout.write(json.dumps(result.to_json()) + "\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="models", required=True)

    add = models.add_parser("add", help="validate a .tflite model and store it as a new version")
    common(add)
    add.add_argument("file")
    add.add_argument("--task", required=True, choices=TASKS)
    add.add_argument("--name", help="registry name (default: file name without suffix)")
    add.add_argument("--labels", help="text file, one label per line, in class order")
    add.add_argument("--layout", default="nhwc", choices=LAYOUTS)
    add.add_argument("--color", default="rgb", choices=("rgb", "bgr", "gray"))
    add.add_argument(
        "--mean", type=_floats, default=(0.0, 0.0, 0.0), help="per-channel mean, e.g. 127.5,127.5,127.5"
    )
    add.add_argument(
        "--std", type=_floats, default=(255.0, 255.0, 255.0), help="per-channel std: x=(p-mean)/std"
    )
    add.add_argument("--resize", default="stretch", choices=RESIZE_MODES)
    add.add_argument("--score", type=float, default=0.5, help="score threshold (detect)")
    add.add_argument("--iou", type=float, default=0.3, help="NMS IoU threshold (detect)")
    add.add_argument("--top-k", type=int, default=5, help="labels reported (classify)")
    add.add_argument("--mask", type=float, default=0.5, help="mask threshold (segment)")
    add.add_argument("--max-detections", type=int, default=100)
    add.add_argument("--decoder", default="auto", choices=DECODERS, help="detector output format")
    add.add_argument("--description")
    add.add_argument("--activate", action="store_true", help="activate the new version")
    add.set_defaults(handler=cmd_add)

    for name, handler, text in (
        ("list", cmd_list, "list models (* = active)"),
        ("rollback", cmd_rollback, "re-activate the previously active model"),
    ):
        p = models.add_parser(name, help=text)
        common(p)
        p.set_defaults(handler=handler)

    activate = models.add_parser("activate", help="make a model version the active one")
    common(activate)
    activate.add_argument("name")
    activate.add_argument("--version", type=int, help="default: the newest version")
    activate.set_defaults(handler=cmd_activate)

    delete = models.add_parser("delete", help="delete an inactive model version")
    common(delete)
    delete.add_argument("name")
    delete.add_argument("version", type=int)
    delete.set_defaults(handler=cmd_delete)

    _register_shadow(models, common)

    infer = sub.add_parser("infer", help="run a registry model on image files and print JSON lines")
    common(infer)
    infer.add_argument("--model", required=True, help="NAME or NAME:VERSION")
    infer.add_argument("images", nargs="+")
    infer.set_defaults(handler=cmd_infer)


def _register_shadow(models: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    shadow = models.add_parser(
        "shadow", help="run a candidate beside the active model on live frames (in the running appliance)"
    )
    common(shadow)
    shadow.add_argument("model", nargs="?", help="NAME or NAME:VERSION to shadow")
    shadow.add_argument("--stop", action="store_true", help="stop the shadow run")
    shadow.add_argument("--status", action="store_true", help="print the shadow run's statistics")
    shadow.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the appliance")
    shadow.set_defaults(handler=cmd_shadow)

    promote = models.add_parser(
        "promote", help="activate a shadowed candidate if it agreed enough (or --override), recorded"
    )
    common(promote)
    promote.add_argument("model", help="NAME or NAME:VERSION")
    promote.add_argument("--override", action="store_true", help="promote even if the evidence falls short")
    promote.add_argument("--by", help="who promotes (default: the login name)")
    promote.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the appliance")
    promote.set_defaults(handler=cmd_promote)
