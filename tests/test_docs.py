"""Docs are tested against the code: every HTTP route is documented in docs/api.md."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Mount, Route

from appliance.api.app import API_ROUTES

ROOT = Path(__file__).resolve().parents[1]


def test_every_api_route_is_documented() -> None:
    docs = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^## `([A-Z]+) (/[^`]*)`", docs, re.MULTILINE))
    routes: set[tuple[str, str]] = set()
    for route in API_ROUTES:
        assert isinstance(route, Route | Mount)
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            routes.add((method, route.path))
    assert routes - documented == set(), "routes missing from docs/api.md"
    assert documented - routes == set(), "docs/api.md documents routes that do not exist"


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make run" in first_block and "make test" in first_block


def test_architecture_names_files_that_exist_and_a_frame_path_of_six() -> None:
    docs = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"\b((?:appliance/)?[a-z_]+/[a-z_]+\.py)\b", docs))
    missing = {n for n in named if not (ROOT / n).is_file() and not (ROOT / "appliance" / n).is_file()}
    assert missing == set(), "docs/architecture.md names files that do not exist"
    path = docs.split("## The path of one frame")[1].split("\n## ")[0]
    steps = re.findall(r"^\d+\. \*\*(appliance/[a-z_/]+\.py)\*\*", path, re.MULTILINE)
    assert 1 < len(steps) <= 6 and len(set(steps)) == len(steps)
