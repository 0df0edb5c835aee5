"""Model options (thresholds, labels) are checked before anything is stored, over HTTP and in the CLI,
and a damaged manifest already on disk never breaks the model list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.models.manifest import MAX_LABELS
from tests.conftest import LiveServer

FACE = "face_detection_short_range.tflite"
BAD_OPTIONS = [
    ({"score": "nan", "iou": "-5"}, "score"),
    ({"score": "inf"}, "score"),
    ({"score": "1.5"}, "score"),
    ({"iou": "-5"}, "iou"),
    ({"mask": "1e300"}, "mask"),
    ({"top_k": "0"}, "top_k"),
    ({"mean": "nan"}, "mean and std"),
    ({"std": "0"}, "std"),
    ({"labels": ",".join(f"l{i}" for i in range(MAX_LABELS + 1))}, f"at most {MAX_LABELS}"),
    ({"labels": "x" * 200}, "at most 128 characters"),
]


def stored(data_dir: Path) -> list[str]:
    models = data_dir / "models"
    return sorted(str(p.relative_to(models)) for p in models.rglob("*"))


@pytest.mark.parametrize(("options", "needle"), BAD_OPTIONS, ids=[str(o)[:40] for o, _ in BAD_OPTIONS])
def test_bad_thresholds_and_labels_are_400_and_store_nothing(
    live_server: LiveServer,
    model_files: dict[str, Path],
    data_dir: Path,
    options: dict[str, str],
    needle: str,
) -> None:
    api = live_server.client()
    before = stored(data_dir)
    reply = api.post(
        "/api/v1/models",
        params={"task": "detect", "name": "face", **options},
        content=model_files[FACE].read_bytes(),
    )
    assert reply.status_code == 400, reply.text[:300]
    assert needle in reply.json()["error"]
    assert stored(data_dir) == before
    listing = api.get("/api/v1/models")
    assert listing.status_code == 200 and [
        m["version"] for m in listing.json()["models"] if m["name"] == "face"
    ] == [1]


def test_classifier_labels_must_match_its_classes(live_server: LiveServer, data_dir: Path) -> None:
    api = live_server.client()
    stripes = live_server.services.registry.files_of(live_server.services.registry.get("stripes"))[".tflite"]
    reply = api.post(
        "/api/v1/models",
        params={"task": "classify", "name": "stripes", "labels": "a,b"},
        content=stripes.read_bytes(),
    )
    assert reply.status_code == 400 and "3 classes but 2 labels" in reply.json()["error"]


def test_a_damaged_manifest_on_disk_does_not_break_the_list(live_server: LiveServer, data_dir: Path) -> None:
    face = data_dir / "models" / "face" / "1" / "manifest.json"
    good = json.loads(face.read_text())
    broken = [
        {**good, "version": 2, "thresholds": {**good["thresholds"], "score": float("nan")}},
        {**good, "version": 3, "labels": [f"l{i}" for i in range(100_000)]},
        {**good, "version": 4, "thresholds": "high"},
    ]
    for manifest in broken:
        folder = face.parent.parent / str(manifest["version"])
        folder.mkdir()
        folder.joinpath("manifest.json").write_text(json.dumps(manifest))  # NaN: as Python writes it
    (face.parent.parent / "5").mkdir()
    (face.parent.parent / "5" / "manifest.json").write_bytes(b"{\xff")
    api = live_server.client()
    listing = api.get("/api/v1/models")
    assert listing.status_code == 200
    assert [m["version"] for m in listing.json()["models"] if m["name"] == "face"] == [1]
    assert api.get("/v2/models/face").json()["versions"] == ["1"]
    assert api.get("/models").status_code in (200, 303)  # the UI page too


def test_cli_checks_options_before_storing(
    data_dir: Path, model_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ndir = "{data_dir}"\n')
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"l{i}" for i in range(1_000_000)))
    before = stored(data_dir)
    common = [str(model_files[FACE]), "--task", "detect", "--name", "face", "--config", str(config)]
    for extra, needle in (
        (["--score", "nan"], "score"),
        (["--iou", "-5"], "iou"),
        (["--max-detections", "0"], "max_detections"),
        (["--labels", str(labels)], "1000000 labels"),
    ):
        assert main(["models", "add", *common, *extra]) == 1
        assert needle in capsys.readouterr().err
    assert stored(data_dir) == before


def test_an_upload_after_a_damaged_version_takes_the_next_number(
    live_server: LiveServer, model_files: dict[str, Path], data_dir: Path
) -> None:
    damaged = data_dir / "models" / "face" / "2"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{not json")
    reply = live_server.client().post(
        "/api/v1/models",
        params={"task": "detect", "name": "face", "mean": "127.5", "std": "127.5"},
        content=model_files[FACE].read_bytes(),
    )
    assert reply.status_code == 201 and reply.json()["version"] == 3
    assert (damaged / "manifest.json").read_text() == "{not json"  # left for a person to look at
