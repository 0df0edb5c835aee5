"""`appliance demo prepare`: demo models in the registry, the demo video, and a config to serve them.

Safe to rerun: models whose file is already registered (same sha256) are not added again, and an
existing config file is left as the user edited it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from appliance.atomic import write_bytes
from appliance.inspection.activation import ACTIVE_FILE
from appliance.inspection.recipe import parse_job
from appliance.inspection.store import JobStore, jobs_dir
from appliance.models.manifest import InputSpec, Thresholds
from appliance.models.registry import AddRequest, Registry, sha256_of
from appliance.services import open_registry
from appliance_tools.demo import stripes, vibration
from appliance_tools.demo.assets import fetch_mediapipe_models
from appliance_tools.demo.video import write_demo_video

logger = logging.getLogger(__name__)

# pixels to [-1, 1], letterboxed so that boxes keep the face's proportions
SIGNED_UNIT = InputSpec(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5), resize="letterbox")
UNIT = InputSpec()  # pixels to [0, 1]

CONFIG_TEMPLATE = """\
# edge-appliance demo configuration (written by `appliance demo prepare`; see docs/config.md)
[server]
host = "127.0.0.1"
port = 8080

[data]
dir = "{data_dir}"

[source]
kind = "video"
name = "demo"
path = "{video}"
loop = true
rate = 15.0

[model]
name = "face"

[store]
snapshots = "detections"
max_bytes = 536870912

[auth]
# Demo convenience: status and results readable without a token. Writes always need one.
anonymous_read = true
"""


@dataclass(frozen=True)
class DemoModel:
    file: Path
    request: AddRequest


def demo_models(cache: Path) -> list[DemoModel]:
    """The demo models: two from the mediapipe wheel, three the project builds itself."""
    mediapipe = fetch_mediapipe_models(cache)
    built = stripes.write_models(cache / "models")
    shaker = vibration.write_model(cache / "models")["model"]
    stripe_labels, face = tuple(stripes.LABELS), mediapipe["face_detection_short_range.tflite"]
    table: list[tuple[Path, str, str, tuple[str, ...], InputSpec, str]] = [
        (face, "detect", "face", ("face",), SIGNED_UNIT, "BlazeFace short range (MediaPipe 0.10.21)"),
        (
            mediapipe["selfie_segmentation.tflite"],
            "segment",
            "selfie",
            ("person",),
            UNIT,
            "Selfie segmentation (MediaPipe 0.10.21)",
        ),
        (
            built["model"],
            "classify",
            "stripes",
            stripe_labels,
            UNIT,
            "Stripe direction classifier built here",
        ),
        (
            built["model_uint8"],
            "classify",
            "stripes_uint8",
            stripe_labels,
            UNIT,
            "uint8 quantised stripes classifier",
        ),
        (
            shaker,
            "classify",
            "vibration",
            tuple(vibration.LABELS),
            UNIT,
            "Accelerometer windows (128x3, in g): idle, normal, fault",
        ),
    ]
    return [
        DemoModel(file, AddRequest(file, task, name, labels, spec, Thresholds(), description=text))
        for file, task, name, labels, spec, text in table
    ]


def register_models(registry: Registry, models: list[DemoModel], active: str = "face") -> None:
    for model in models:
        known = {m.sha256 for m in registry.versions(model.request.name)}
        if sha256_of(model.file) not in known:
            registry.add(model.request)
    if registry.active() is None:
        registry.activate(active)


SERIAL_TEMPLATE = """\
# edge-appliance serial demo (written by `appliance demo prepare --serial`; see docs/config.md)
[server]
host = "127.0.0.1"
port = 8080

[data]
dir = "{data_dir}"

[source]
kind = "serial"
name = "shaker"

[serial]
port = "{port}"
results = "all"
reject_output = 0
reject_when = "fail"

[model]
name = "vibration"

[inspection]
pass_labels = ["idle", "normal"]

[auth]
anonymous_read = true
"""


def prepare_serial_demo(data_dir: Path, cache: Path) -> Path:
    """The serial demo: the vibration classifier on windows from the firmware-bridge simulator."""
    registry = open_registry(data_dir)
    register_models(registry, demo_models(cache), active="vibration")
    config = data_dir / "config.toml"
    if not config.exists():
        port = (data_dir / "ttyFB0").resolve()
        config.write_text(SERIAL_TEMPLATE.format(data_dir=data_dir.resolve(), port=port), encoding="utf-8")
    return config


def demo_job(face_version: int) -> dict[str, object]:
    """Job 1: a face in the picture (NG "missing label face" when the rocket shows), and a face
    detected with at least 0.6 in the left half (NG on the right, e.g. "region 2: missing label face")."""
    model = {"name": "face", "version": face_version}
    whole, left = [[0, 0], [640, 480]], [[0, 0], [320, 480]]
    return {
        "number": 1,
        "name": "demo face check",
        "model": model,
        "snapshot": {"keep": "all", "ok_sample_rate": 0.05},
        "regions": [
            {"id": 1, "name": "picture", "shape": "rect", "points": whole, "required": ["face"]},
            {
                "id": 2,
                "name": "left half",
                "shape": "rect",
                "points": left,
                "required": ["face"],
                "min_score": 0.6,
            },
        ],
    }


def prepare_demo_job(data_dir: Path, registry: Registry) -> None:
    """Store the demo job and make it the active one, unless jobs exist already."""
    store = JobStore(jobs_dir(data_dir))
    if store.numbers():
        return
    job = store.save(parse_job(demo_job(registry.get("face").version)))
    state = store.root / ACTIVE_FILE
    if not state.exists():
        write_bytes(state, json.dumps({"number": job.number, "version": job.version}).encode())


def prepare_demo(data_dir: Path, cache: Path) -> Path:
    """Returns the path of the demo config file."""
    registry = open_registry(data_dir)
    register_models(registry, demo_models(cache))
    prepare_demo_job(data_dir, registry)
    video = data_dir / "demo" / "demo.mp4"
    if not video.exists():
        write_demo_video(video)
    config = data_dir / "config.toml"
    if not config.exists():
        config.write_text(
            CONFIG_TEMPLATE.format(data_dir=data_dir.resolve(), video=video.resolve()), encoding="utf-8"
        )
    logger.info("demo prepared in %s", data_dir)
    return config
