"""Job recipes: validation listing every problem, the versioned store, export/import, a fuzzed loader."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.errors import NotFound
from appliance.inspection.recipe import ModelRef, RecipeError, parse_job
from appliance.inspection.store import JobStore, jobs_dir, parse_document

GOOD: dict[str, Any] = {
    "number": 12,
    "name": "bottle caps",
    "description": "two caps per crate row",
    "model": {"name": "caps", "version": 3},
    "second_stage": {"name": "cap_colour", "version": 1},
    "snapshot": {"keep": "all", "ok_sample_rate": 0.1},
    "regions": [
        {
            "id": 1,
            "name": "left",
            "shape": "rect",
            "points": [[0, 0], [100, 200]],
            "required": ["cap"],
            "counts": [{"label": "cap", "min": 1, "max": 2}],
            "min_score": 0.6,
            "box_width": {"min": 10, "max": 80},
            "box_height": {"max": 90},
        },
        {
            "id": 2,
            "shape": "polygon",
            "points": [[100, 0], [200, 0], [150, 120]],
            "forbidden": ["scratch"],
            "coverage": {"min": 0.1, "max": 0.9},
        },
    ],
}


def test_a_good_job_round_trips() -> None:
    job = parse_job(GOOD)
    assert job.number == 12 and job.model == ModelRef("caps", 3)
    assert job.second_stage == ModelRef("cap_colour", 1)
    assert job.regions[1].name == "region 2"
    assert job.regions[0].rule.counts[0].max == 2
    assert parse_job(job.to_json()) == job


def test_every_problem_is_listed_with_its_key() -> None:
    bad = {
        "number": 1000,
        "name": "",
        "model": {"name": "caps"},
        "colour": "red",
        "snapshot": {"keep": "sometimes", "ok_sample_rate": 2},
        "regions": [
            {"id": 1, "shape": "rect", "points": [[10, 10], [5, 20]], "min_score": "high"},
            {
                "id": 1,
                "shape": "circle",
                "points": [[0, 0]],
                "required": ["a"],
                "forbidden": ["a"],
                "counts": [{"label": "a", "min": 3, "max": 1}],
                "box_width": {"min": 5, "max": 1},
            },
        ],
    }
    with pytest.raises(RecipeError) as caught:
        parse_job(bad)
    problems = caught.value.problems
    expected = [
        "number: must be 1..999, got 1000",
        "name: '' is not a valid job name",
        "model.version: missing (a job pins its model's version)",
        "colour: unknown key",
        "snapshot.keep: must be one of none, ng, all",
        "snapshot.ok_sample_rate: must be a number in 0..1",
        "regions[0].points: a rect is [[x1, y1], [x2, y2]] with x1 < x2 and y1 < y2",
        "regions[0].min_score: must be a number, got a string",
        "regions[1].shape: must be one of rect, polygon",
        "regions[1]: label 'a' is both required and forbidden",
        "regions[1].counts[0]: min 3 is above max 1",
        "regions[1].box_width: min 5 is above max 1",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert str(caught.value).startswith("invalid job: ")


def test_regions_must_be_a_short_unique_list() -> None:
    spec = {**GOOD, "regions": [GOOD["regions"][0]] * 2}
    with pytest.raises(RecipeError, match="region id 1 is used twice"):
        parse_job(spec)
    with pytest.raises(RecipeError, match=r"1\.\.16 regions"):
        parse_job({**GOOD, "regions": [GOOD["regions"][0]] * 17})
    with pytest.raises(RecipeError, match="a polygon needs at least 3 points enclosing an area"):
        parse_job({**GOOD, "regions": [{"id": 1, "shape": "polygon", "points": [[0, 0], [1, 1], [2, 2]]}]})


def test_store_keeps_every_version(tmp_path: Path) -> None:
    store = JobStore(jobs_dir(tmp_path))
    first = store.save(parse_job(GOOD))
    second = store.save(parse_job({**GOOD, "name": "bottle caps v2"}))
    assert (first.version, second.version) == (1, 2)
    assert store.get(12).name == "bottle caps v2"
    assert store.get(12, 1).name == "bottle caps"
    assert store.versions(12) == [1, 2]
    assert [j.number for j in store.jobs()] == [12]
    assert not [p for p in (tmp_path / "jobs" / "012").iterdir() if p.name.startswith(".")]
    with pytest.raises(NotFound, match="no version 5"):
        store.get(12, 5)
    with pytest.raises(NotFound):
        store.get(0)
    store.delete(12)
    with pytest.raises(NotFound):
        store.get(12)


def _save_many(root: str, count: int) -> None:
    store = JobStore(Path(root))
    for _ in range(count):
        store.save(parse_job(GOOD))


def test_concurrent_saves_from_processes_never_share_a_version(tmp_path: Path) -> None:
    root = jobs_dir(tmp_path)
    JobStore(root)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_save_many, args=(str(root), 10)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    assert JobStore(root).versions(12) == list(range(1, 31))


def test_damaged_stored_version_is_named(tmp_path: Path) -> None:
    store = JobStore(jobs_dir(tmp_path))
    store.save(parse_job(GOOD))
    (tmp_path / "jobs" / "012" / "v1.json").write_text("{", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"stored job 12 v1 .* is damaged"):
        store.get(12)


def test_export_then_import_as_json_and_toml(tmp_path: Path) -> None:
    source = JobStore(tmp_path / "a")
    source.save(parse_job(GOOD))
    source.save(parse_job({**GOOD, "number": 3, "second_stage": None}))
    exported = source.export()
    document = json.loads(exported)
    assert document["format"] == "appliance-jobs" and [j["number"] for j in document["jobs"]] == [3, 12]
    target = JobStore(tmp_path / "b")
    imported = target.import_document(exported)
    assert [(j.number, j.version) for j in imported] == [(3, 1), (12, 1)]
    assert target.get(12).regions == source.get(12).regions
    toml = """
format = "appliance-jobs"
[[jobs]]
number = 5
name = "from toml"
model = { name = "face", version = 1 }
[[jobs.regions]]
id = 1
shape = "rect"
points = [[0, 0], [64, 64]]
required = ["face"]
"""
    path = tmp_path / "jobs.toml"
    path.write_text(toml, encoding="utf-8")
    assert [j.name for j in target.import_file(path)] == ["from toml"]


def test_import_is_all_or_nothing(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    bad = {"format": "appliance-jobs", "jobs": [GOOD, {**GOOD, "number": 4, "model": "caps"}, GOOD]}
    with pytest.raises(RecipeError) as caught:
        store.import_document(json.dumps(bad).encode())
    assert "jobs[1].model: must be a table/object, got a string" in caught.value.problems
    assert "jobs: number 12 appears twice" in caught.value.problems
    assert store.numbers() == []
    with pytest.raises(RecipeError, match="limit"):
        store.import_document(b" " * (2 << 20))
    with pytest.raises(RecipeError, match="not UTF-8"):
        store.import_document(b"\xff\xfe{")
    with pytest.raises(RecipeError, match="not valid JSON"):
        store.import_document(b'{"jobs": [')
    with pytest.raises(RecipeError, match="not valid TOML"):
        store.import_document(b"jobs = [", "x.toml")


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=40,
)
KEYS = st.sampled_from(
    [
        "number",
        "name",
        "model",
        "regions",
        "snapshot",
        "second_stage",
        "id",
        "shape",
        "points",
        "required",
        "forbidden",
        "counts",
        "min_score",
        "box_width",
        "coverage",
        "label",
        "min",
        "max",
        "version",
        "keep",
        "ok_sample_rate",
        "jobs",
        "format",
    ]
)
JOBISH = st.recursive(
    JSONISH,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=8),
    max_leaves=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JOBISH)
def test_fuzzed_job_values_give_a_job_or_a_recipe_error(value: object) -> None:
    try:
        job = parse_job(value)
    except RecipeError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
    else:
        assert parse_job(job.to_json()) == job


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=300) | JOBISH.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_documents_give_jobs_or_a_recipe_error(data: bytes) -> None:
    try:
        jobs = parse_document(data)
    except RecipeError as err:
        assert err.problems
    else:
        assert jobs


def test_deeply_nested_document_is_an_error_not_a_crash() -> None:
    with pytest.raises(RecipeError):
        parse_document(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(RecipeError):
        parse_document(b"a = " + b"[" * 100_000, "x.toml")
