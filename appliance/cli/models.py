"""`appliance models add|list|activate|rollback|delete` and `appliance infer`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.cli.arguments import config_from_args
from appliance.errors import BadRequest, ImageRejected, ModelRejected, PayloadTooLarge
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
    """The same cap as an upload over the API (server.max_upload_bytes), checked before any copy."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ModelRejected(f"{path}: {err.strerror}") from err
    if size > limit:
        raise PayloadTooLarge(f"{path.name} is {size} bytes, over server.max_upload_bytes ({limit} bytes)")


def _print(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cmd_add(args: argparse.Namespace) -> int:
    _check_size(Path(args.file), config_from_args(args).server.max_upload_bytes)
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

    infer = sub.add_parser("infer", help="run a registry model on image files and print JSON lines")
    common(infer)
    infer.add_argument("--model", required=True, help="NAME or NAME:VERSION")
    infer.add_argument("images", nargs="+")
    infer.set_defaults(handler=cmd_infer)
