"""Hard examples on disk and their export: parses as YOLO and (pycocotools) as COCO, boxes match."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from appliance.cli import main
from appliance.config import parse_config
from appliance.errors import BadRequest
from appliance.inspection.dataset import Dataset, HardExamplePolicy, reason_for
from appliance.pipeline.oneshot import OneShot
from appliance.pipeline.results import Result
from appliance.services import open_registry


@pytest.fixture
def results(seeded_registry_dir: Path, astronaut: np.ndarray) -> list[tuple[np.ndarray, Result]]:
    registry = open_registry(seeded_registry_dir)
    two = np.concatenate([astronaut[20:260, 110:350]] * 2, axis=1)
    with OneShot(registry, registry.get("face"), parse_config("")) as face:
        return [(img, face.run(np.ascontiguousarray(img))) for img in (astronaut, two)]


def test_reasons() -> None:
    policy = HardExamplePolicy(band=(0.4, 0.6))
    base = Result(1, 1, 0.0, "s", "m", 1, "classify", "litert", "a", 0, 0.5, 1, (), None)  # type: ignore[arg-type]
    assert reason_for(base, True, policy) == "band"
    assert reason_for(base, False, policy) == "ng"
    sure = Result(1, 1, 0.0, "s", "m", 1, "classify", "litert", "a", 0, 0.9, 1, (), None)  # type: ignore[arg-type]
    assert reason_for(sure, True, policy) is None


def test_export_yolo_and_coco_match_the_results(
    tmp_path: Path, results: list[tuple[np.ndarray, Result]]
) -> None:
    data_dir = tmp_path / "data"
    dataset = Dataset(data_dir / "dataset")
    kept = [dataset.add(image, result, "ng", job=7) for image, result in results]
    flagged = dataset.flag(kept[1].id, "wrong")
    assert flagged.reason == "wrong" and dataset.get(kept[1].id).reason == "wrong"
    assert sum(len(r.detections) for _, r in results) == 3

    for fmt in ("yolo", "coco"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert (
                main(
                    [
                        "dataset",
                        "export",
                        "--format",
                        fmt,
                        "--out",
                        str(tmp_path / fmt),
                        "--data-dir",
                        str(data_dir),
                    ]
                )
                == 0
            )
        assert "2 example(s)" in out.getvalue()

    yolo = tmp_path / "yolo"
    assert (yolo / "classes.txt").read_text() == "face\n"
    assert 'names:\n  0: "face"' in (yolo / "data.yaml").read_text()
    for example, (image, result) in zip(kept, results, strict=True):
        assert (yolo / "images" / f"{example.id}.jpg").is_file()
        rows = [line.split() for line in (yolo / "labels" / f"{example.id}.txt").read_text().splitlines()]
        h, w = image.shape[:2]
        assert len(rows) == len(result.detections)
        for row, det in zip(rows, result.detections, strict=True):
            assert row[0] == "0" and len(row) == 5
            cx, cy, bw, bh = (float(v) for v in row[1:])
            assert all(0.0 <= v <= 1.0 for v in (cx, cy, bw, bh))
            x1, y1, x2, y2 = det.box
            assert (cx * w, cy * h, bw * w, bh * h) == pytest.approx(
                ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), abs=0.01
            )

    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["face"]
    for image_id, (image, result) in zip(sorted(coco.getImgIds()), results, strict=True):
        info = coco.loadImgs(image_id)[0]
        assert (info["width"], info["height"]) == (image.shape[1], image.shape[0])
        assert (tmp_path / "coco" / info["file_name"]).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        got = [a["bbox"] for a in anns]
        want = [[d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]] for d in result.detections]
        assert np.allclose(got, want)


def test_export_refuses_a_non_empty_target_and_bad_formats(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "dataset")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(BadRequest, match="not an empty directory"):
        dataset.export(tmp_path / "out", "yolo")
    with pytest.raises(BadRequest, match="format must be one of yolo, coco"):
        dataset.export(tmp_path / "new", "voc")
    assert dataset.export(tmp_path / "empty", "coco") == 0


def test_trim_keeps_flagged_examples(tmp_path: Path, results: list[tuple[np.ndarray, Result]]) -> None:
    dataset = Dataset(tmp_path / "dataset", HardExamplePolicy(max_examples=2))
    image, result = results[0]
    first = dataset.add(image, dataclasses.replace(result, seq=1, ts=1000.0), "band")
    dataset.flag(first.id, "right")
    for seq in (2, 3, 4):
        dataset.add(image, dataclasses.replace(result, seq=seq, ts=1000.0 + seq), "band")
    assert [e.seq for e in dataset.examples()] == [1, 4]
