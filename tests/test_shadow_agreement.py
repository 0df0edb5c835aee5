"""The arithmetic of shadow runs: box matching at IoU 0.5, mask IoU, run totals, promotion limits, and the
request files the command line leaves for the server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.errors import BadRequest, Conflict
from appliance.processing.inference import Detection, Inference
from appliance.shadow import mailbox
from appliance.shadow.agreement import Agreement, compare, compare_boxes, mask_iou
from appliance.shadow.promotion import Decision, Evidence, Policy, record, shortfall


def box(x1: float, y1: float, x2: float, y2: float, label_id: int = 0) -> Detection:
    return Detection(str(label_id), label_id, 0.9, (x1, y1, x2, y2))


def test_boxes_match_one_to_one_at_iou_half_and_same_class() -> None:
    active = [box(0, 0, 10, 10), box(20, 20, 30, 30)]
    assert compare_boxes(active, active).agreement == 1.0
    shifted = [box(0, 0, 10, 10), box(25, 20, 35, 30)]  # second box: IoU 1/3, no match
    assert compare_boxes(active, shifted).matched == 1
    other_class = [box(0, 0, 10, 10, label_id=1)]
    assert compare_boxes(active[:1], other_class).matched == 0
    doubled = [box(0, 0, 10, 10), box(0, 0, 10, 10)]  # one active box cannot match twice
    found = compare_boxes(active[:1], doubled)
    assert (found.matched, found.agreement) == (1, 0.5)
    assert compare_boxes([], []).agreement == 1.0


def test_detector_run_agreement_is_the_lower_of_recall_and_precision() -> None:
    stats = Agreement("detect")
    stats.add(compare_boxes([box(0, 0, 10, 10)], [box(0, 0, 10, 10), box(50, 50, 60, 60)]), 1.0, 2.0, True)
    stats.add(compare_boxes([box(0, 0, 10, 10)], [box(0, 0, 10, 10)]), 1.0, 2.0, False)
    snap = stats.snapshot()
    assert snap["boxes"]["recall"] == 1.0 and snap["boxes"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert snap["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert snap["frames"]["compared"] == 2 and snap["frames"]["disagreed"] == 1


def test_mask_iou_and_classifier_agreement() -> None:
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((8, 8), bool)  # twice the resolution: resized to the active mask's shape
    b[:4, :4] = True
    assert mask_iou(a, b) == pytest.approx(0.5)
    assert mask_iou(np.zeros((2, 2), bool), None) == 1.0  # both empty
    stats = Agreement("classify")
    for active_id, candidate_id in ((1, 1), (1, 2), (0, 0), (2, 2)):
        one, two = Inference("x", active_id, 0.9, 1), Inference("y", candidate_id, 0.9, 1)
        stats.add(compare("classify", one, two), 1.0, 1.0, active_id != candidate_id)
    assert stats.agreement() == 0.75
    assert Agreement("segment").snapshot()["agreement"] is None  # nothing compared yet


def test_promotion_needs_frames_and_agreement_unless_overridden() -> None:
    policy = Policy(min_agreement=0.95, min_frames=100)
    good = Evidence("m:2", "m:1", "top-1 agreement", 0.97, 150)
    assert shortfall(good, "m:2", "m:1", policy) is None
    few = Evidence("m:2", "m:1", "top-1 agreement", 1.0, 40)
    assert "40 frames" in (shortfall(few, "m:2", "m:1", policy) or "")
    low = Evidence("m:2", "m:1", "top-1 agreement", 0.9, 150)
    assert "agrees 90.0%" in (shortfall(low, "m:2", "m:1", policy) or "")
    assert "no shadow run against the active model m:3" in (shortfall(good, "m:2", "m:3", policy) or "")
    with pytest.raises(Conflict, match=r"promotion refused: model m:2 agrees 90\.0%"):
        record(low, "m:2", "m:1", policy, Decision("x"))
    forced = record(low, "m:2", "m:1", policy, Decision("cli:me", override=True))
    assert forced["override"] is True and forced["agreement"] == 0.9 and forced["by"] == "cli:me"
    earned = record(good, "m:2", "m:1", policy, Decision("cli:me", override=True))
    assert earned["override"] is False  # an override is recorded only when it was needed
    with pytest.raises(BadRequest, match="by:"):
        record(good, "m:2", "m:1", policy, Decision(" "))


def test_requests_are_taken_once_and_damaged_ones_dropped(tmp_path: Path) -> None:
    first = mailbox.send(tmp_path, {"action": "start", "name": "m"})
    (tmp_path / "request-broken.json").write_text("{not json")
    taken = mailbox.take(tmp_path)
    assert [r["id"] for r in taken] == [first] and taken[0]["name"] == "m"
    assert mailbox.take(tmp_path) == [] and not list(tmp_path.glob("request-*"))
    mailbox.write_status(tmp_path, {"state": "none"}, {first: {"ok": True}})
    answer = mailbox.wait_answer(tmp_path, first, 1.0)
    assert answer is not None and answer["ok"] is True and answer["run"]["state"] == "none"
    assert mailbox.wait_answer(tmp_path, "other", 0.2) is None
