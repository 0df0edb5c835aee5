"""Jobs with two regions judged on real face-detector results from generated frames (astronaut faces)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config import parse_config
from appliance.inspection.recipe import Job, Region, parse_job
from appliance.inspection.rules import Cause, evaluate, members, region_mask
from appliance.pipeline.oneshot import OneShot
from appliance.pipeline.results import Result, Timings
from appliance.processing.inference import Detection
from appliance.services import open_registry

SLOT = 240  # the frame is 2x2 slots of 240 px; a face crop fills one slot


def job_spec(**region1: object) -> dict[str, object]:
    return {
        "number": 7,
        "name": "cap check",
        "model": {"name": "face", "version": 1},
        "regions": [
            {
                "id": 1,
                "name": "top row",
                "shape": "rect",
                "points": [[0, 0], [2 * SLOT, SLOT]],
                "required": ["face"],
                "counts": [{"label": "*", "max": 1}],
                "min_score": 0.5,
                **region1,
            },
            {
                "id": 2,
                "name": "bottom right",
                "shape": "polygon",
                "points": [[SLOT, SLOT], [2 * SLOT, SLOT], [2 * SLOT, 2 * SLOT], [SLOT, 2 * SLOT]],
                "forbidden": ["face"],
            },
        ],
    }


@pytest.fixture(scope="module")
def face(seeded_registry_dir: Path) -> Iterator[OneShot]:
    registry = open_registry(seeded_registry_dir)
    with OneShot(registry, registry.get("face"), parse_config("")) as runner:
        yield runner


@pytest.fixture(scope="module")
def face_crop(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[20:260, 110:350])  # 240x240 around her face


def frame(face_crop: np.ndarray, *slots: int) -> np.ndarray:
    """A grey 480x480 frame with the face in the given slots (0 1 / 2 3)."""
    image = np.full((2 * SLOT, 2 * SLOT, 3), 128, np.uint8)
    for slot in slots:
        y, x = divmod(slot, 2)
        image[y * SLOT : (y + 1) * SLOT, x * SLOT : (x + 1) * SLOT] = face_crop
    return image


def run(face: OneShot, image: np.ndarray) -> Result:
    return face.run(image)


def test_ok_frame_passes_both_regions(face: OneShot, face_crop: np.ndarray) -> None:
    result = run(face, frame(face_crop, 0))
    assert result.count == 1
    verdict = evaluate(parse_job(job_spec()), result)
    assert verdict.ok, verdict.reasons
    assert verdict.reasons == ()
    assert verdict.pass_bits == 0b11
    assert (verdict.reason_code, verdict.ng_region) == (0, 0)
    assert [r.count for r in verdict.regions] == [1, 0]


def test_missing_label(face: OneShot, face_crop: np.ndarray) -> None:
    verdict = evaluate(parse_job(job_spec()), run(face, frame(face_crop)))
    assert not verdict.ok
    assert [r.text for r in verdict.reasons] == ["region 1: missing label face"]
    assert verdict.pass_bits == 0b10
    assert (verdict.reason_code, verdict.ng_region) == (Cause.MISSING_LABEL, 1)


def test_too_many_objects(face: OneShot, face_crop: np.ndarray) -> None:
    result = run(face, frame(face_crop, 0, 1))
    assert result.count == 2
    verdict = evaluate(parse_job(job_spec()), result)
    assert [r.text for r in verdict.reasons] == ["region 1: 2 objects, max 1"]
    assert verdict.pass_bits == 0b10
    assert verdict.reason_code == Cause.TOO_MANY


def test_too_few_of_a_label(face: OneShot, face_crop: np.ndarray) -> None:
    job = parse_job(job_spec(counts=[{"label": "face", "min": 2}]))
    verdict = evaluate(job, run(face, frame(face_crop, 0)))
    assert [r.text for r in verdict.reasons] == ["region 1: 1 face, min 2"]
    assert verdict.reason_code == Cause.TOO_FEW


def test_forbidden_label_in_the_other_region(face: OneShot, face_crop: np.ndarray) -> None:
    verdict = evaluate(parse_job(job_spec()), run(face, frame(face_crop, 0, 3)))
    assert [r.text for r in verdict.reasons] == ["region 2: forbidden label face"]
    assert verdict.pass_bits == 0b01
    assert (verdict.reason_code, verdict.ng_region) == (Cause.FORBIDDEN_LABEL, 2)


def test_face_outside_every_region_is_ignored(face: OneShot, face_crop: np.ndarray) -> None:
    result = run(face, frame(face_crop, 0, 2))  # slot 2 (bottom left) is in no region
    assert result.count == 2
    verdict = evaluate(parse_job(job_spec()), result)
    assert verdict.ok, verdict.reasons


def test_low_score(face: OneShot, face_crop: np.ndarray) -> None:
    result = run(face, frame(face_crop, 0))
    score = result.detections[0].score
    verdict = evaluate(parse_job(job_spec(min_score=0.99)), result)
    assert [r.text for r in verdict.reasons] == [f"region 1: face score {score:.2f}, min 0.99"]
    assert verdict.reason_code == Cause.LOW_SCORE


def test_box_size_limits(face: OneShot, face_crop: np.ndarray) -> None:
    result = run(face, frame(face_crop, 0))
    x1, _, x2, _ = result.detections[0].box
    assert 60 < x2 - x1 < 150
    assert evaluate(parse_job(job_spec(box_width={"min": 60, "max": 150})), result).ok
    verdict = evaluate(parse_job(job_spec(box_width={"max": 50})), result)
    assert [r.text for r in verdict.reasons] == [f"region 1: face width {x2 - x1:.0f} px, limits ..50"]
    assert verdict.reason_code == Cause.BOX_SIZE


def test_every_failure_is_listed_in_region_order(face: OneShot, face_crop: np.ndarray) -> None:
    verdict = evaluate(parse_job(job_spec(min_score=0.99)), run(face, frame(face_crop, 0, 1, 3)))
    texts = [r.text for r in verdict.reasons]
    assert texts[0] == "region 1: 2 objects, max 1"
    assert sum("score" in t for t in texts) == 2
    assert texts[-1] == "region 2: forbidden label face"
    assert verdict.pass_bits == 0


def test_result_of_another_model_is_ng(face: OneShot, face_crop: np.ndarray) -> None:
    spec = job_spec()
    spec["model"] = {"name": "face", "version": 2}
    verdict = evaluate(parse_job(spec), run(face, frame(face_crop, 0)))
    assert not verdict.ok
    assert verdict.reasons[0].text == "job 7: result from model face:1, the job pins face:2"
    assert (verdict.reason_code, verdict.ng_region) == (Cause.WRONG_MODEL, 0)
    assert verdict.pass_bits == 0b11  # the regions themselves passed


def _result(*boxes: tuple[float, float, float, float], extra: dict[str, object] | None = None) -> Result:
    detections = tuple(Detection("cap", 0, 0.9, b) for b in boxes)
    return Result(
        1,
        1,
        0.0,
        "t",
        "m",
        1,
        "detect",
        "litert",
        None,
        None,
        None,
        len(boxes),
        detections,
        Timings(0, 0, 0, 0),
        extra or {},
    )


def _region(shape: str, points: list[list[float]], **rule: object) -> Region:
    job = parse_job(
        {
            "number": 1,
            "name": "j",
            "model": {"name": "m", "version": 1},
            "regions": [{"id": 1, "shape": shape, "points": points, **rule}],
        }
    )
    return job.regions[0]


def test_membership_is_by_box_centre() -> None:
    triangle = _region("polygon", [[0, 0], [100, 0], [0, 100]])
    inside = (10.0, 10.0, 50.0, 50.0)  # centre (30, 30)
    straddling = (40.0, 40.0, 90.0, 90.0)  # centre (65, 65): outside the hypotenuse
    assert members(triangle, _result(inside, straddling).detections) == [_result(inside).detections[0]]
    rect = _region("rect", [[0, 0], [30, 30]])
    assert len(members(rect, _result(inside).detections)) == 1  # centre on the edge counts
    concave = _region("polygon", [[0, 0], [100, 0], [100, 100], [50, 20], [0, 100]])
    assert not concave.contains(50, 60) and concave.contains(50, 10) and concave.contains(90, 60)


def test_coverage_with_a_mask_and_without() -> None:
    region = _region("rect", [[0, 0], [10, 10]], coverage={"min": 0.5})
    job = Job(
        1,
        "j",
        parse_job(
            {
                "number": 1,
                "name": "j",
                "model": {"name": "m", "version": 1},
                "regions": [{"id": 1, "shape": "rect", "points": [[0, 0], [1, 1]]}],
            }
        ).model,
        (region,),
    )
    mask = np.zeros((20, 20), bool)
    mask[0:10, 0:4] = True  # 40 % of the region
    verdict = evaluate(job, _result(), mask)
    assert [r.text for r in verdict.reasons] == ["region 1: coverage 0.400, limits 0.5.."]
    mask[0:10, 0:6] = True
    assert evaluate(job, _result(), mask).ok
    assert evaluate(job, _result(extra={"coverage": 0.7})).ok  # whole-frame coverage from the result
    texts = [r.text for r in evaluate(job, _result()).reasons]
    assert texts == ["region 1: no segmentation coverage in the result"]
    assert int(region_mask(region, (20, 20)).sum()) == 100


def test_segmentation_coverage_per_region_on_a_real_mask(
    seeded_registry_dir: Path, astronaut: np.ndarray
) -> None:
    registry = open_registry(seeded_registry_dir)
    with OneShot(registry, registry.get("selfie"), parse_config("")) as selfie:
        result = selfie.run(astronaut)
        model_mask = selfie.runtime.post.mask  # type: ignore[attr-defined]
    h, w = astronaut.shape[:2]
    mask = cv2.resize(model_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    spec = {
        "number": 2,
        "name": "person",
        "model": {"name": "selfie", "version": 1},
        "regions": [
            {"id": 1, "shape": "rect", "points": [[150, 60], [300, 200]], "coverage": {"min": 0.5}},
            {"id": 2, "shape": "rect", "points": [[0, 0], [60, 60]], "coverage": {"max": 0.05}},
        ],
    }
    assert evaluate(parse_job(spec), result, mask).ok
    spec["regions"][1]["coverage"] = {"min": 0.5}  # type: ignore[index]
    verdict = evaluate(parse_job(spec), result, mask)
    assert verdict.pass_bits == 0b01
    assert verdict.reasons[0].text.startswith("region 2: coverage 0.0")


def test_verdict_json_is_plain() -> None:
    job = dataclasses.replace(parse_job(job_spec()), version=3)
    data = evaluate(job, _result((10, 10, 20, 20))).to_json()
    assert data["job"] == 7 and data["job_version"] == 3
    assert data["regions"][1] == {"region": 2, "name": "bottom right", "ok": True, "count": 0, "reasons": []}
