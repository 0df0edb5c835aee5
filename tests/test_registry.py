from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.errors import Conflict, ModelRejected, NotFound
from appliance.models.manifest import InputSpec
from appliance.models.registry import AddRequest, Registry
from appliance.services import open_registry


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".lock" not in p.name)


def test_add_stores_model_with_full_manifest(tmp_path: Path, model_files: dict[str, Path]) -> None:
    registry = open_registry(tmp_path)
    face = model_files["face_detection_short_range.tflite"]
    manifest = registry.add(AddRequest(face, "detect", "face", ("face",), InputSpec(resize="letterbox")))
    assert (manifest.name, manifest.version, manifest.task) == ("face", 1, "detect")
    assert manifest.size == face.stat().st_size
    assert len(manifest.sha256) == 64
    assert [t.shape for t in manifest.inputs] == [(1, 128, 128, 3)]
    assert sorted(t.shape for t in manifest.outputs) == [(1, 896, 1), (1, 896, 16)]
    stored = json.loads((tmp_path / "models" / "face" / "1" / "manifest.json").read_text())
    assert stored["input"]["resize"] == "letterbox"
    assert stored["labels"] == ["face"]
    again = registry.add(AddRequest(face, "detect", "face"))
    assert again.version == 2


def test_a_manifest_from_a_newer_build_stays_readable(tmp_path: Path, model_files: dict[str, Path]) -> None:
    """After a rollback, an older build reads manifests a newer one wrote: unknown keys are left out."""
    registry = open_registry(tmp_path)
    manifest = registry.add(AddRequest(model_files["face_detection_short_range.tflite"], "detect", "face"))
    path = tmp_path / "models" / "face" / "1" / "manifest.json"
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "from_a_newer_build": {"anything": [1, 2]}}))
    assert open_registry(tmp_path).get("face", 1) == manifest


@pytest.mark.parametrize(
    ("task", "labels", "message"),
    [
        ("classify", (), "one output"),  # the face detector has two outputs
        ("segment", (), "one output shaped 1xHxWxC"),
    ],
)
def test_model_that_does_not_fit_the_task_is_rejected(
    tmp_path: Path, model_files: dict[str, Path], task: str, labels: tuple[str, ...], message: str
) -> None:
    registry = open_registry(tmp_path)
    before = tree(tmp_path)
    face = model_files["face_detection_short_range.tflite"]
    with pytest.raises(ModelRejected, match=message):
        registry.add(AddRequest(face, task, "bad", labels))
    assert tree(tmp_path) == before


def test_label_count_must_match_classes(tmp_path: Path, registry: Registry) -> None:
    stripes = registry.files_of(registry.get("stripes"))[".tflite"]
    with pytest.raises(ModelRejected, match="3 classes but 2 labels"):
        registry.add(AddRequest(stripes, "classify", "stripes2", ("a", "b")))


def test_garbage_file_is_rejected_and_registry_unchanged(data_dir: Path, registry: Registry) -> None:
    bad = data_dir.parent / "broken.tflite"
    bad.write_bytes(b"TFL3 this is not a flatbuffer" * 10)
    before = tree(data_dir)
    with pytest.raises(ModelRejected, match=r"broken\.tflite: LiteRT cannot load the model"):
        registry.add(AddRequest(bad, "classify"))
    assert tree(data_dir) == before
    with pytest.raises(ModelRejected, match="must end in"):
        registry.add(AddRequest(bad.with_suffix(".onnx"), "classify"))


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", "x" * 65])
def test_unsafe_names_are_refused(registry: Registry, model_files: dict[str, Path], name: str) -> None:
    face = model_files["face_detection_short_range.tflite"]
    with pytest.raises(ModelRejected):
        registry.add(AddRequest(face, "detect", name or "/"))


def test_activate_rollback_delete(registry: Registry) -> None:
    assert registry.active() is not None and registry.active().name == "face"  # type: ignore[union-attr]
    registry.activate("selfie")
    registry.activate("stripes")
    assert registry.active().name == "stripes"  # type: ignore[union-attr]
    assert registry.rollback().name == "selfie"
    assert registry.rollback().name == "face"
    with pytest.raises(Conflict, match="nothing to roll back"):
        registry.rollback()
    with pytest.raises(Conflict, match="is active"):
        registry.delete("face", 1)
    registry.delete("selfie", 1)
    with pytest.raises(NotFound):
        registry.get("selfie")
    with pytest.raises(NotFound, match="no version 7"):
        registry.get("face", 7)


def test_models_cli(data_dir: Path, model_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    face = str(model_files["face_detection_short_range.tflite"])
    assert (
        main(["models", "add", face, "--task", "detect", "--name", "face", "--data-dir", str(data_dir)]) == 0
    )
    assert json.loads(capsys.readouterr().out)["version"] == 2
    assert main(["models", "activate", "face", "--version", "2", "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--data-dir", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "* face:2" in listing and "  face:1" in listing and "stripes_uint8:1" in listing
    assert main(["models", "rollback", "--data-dir", str(data_dir)]) == 0
    assert "active: face:1" in capsys.readouterr().out
    assert main(["models", "add", face, "--task", "classify", "--data-dir", str(data_dir)]) == 1
    assert "one output" in capsys.readouterr().err
