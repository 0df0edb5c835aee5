"""What each distribution contains: the runtime wheel (the only one the device installs) has the code
and the web UI, and none of the tools; the tools' commands say how to get them when they are absent."""

from __future__ import annotations

import argparse
import email.parser
import importlib.resources
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from appliance.api.app import web_dir
from appliance.cli import tools
from appliance.cli.arguments import add_common

ROOT = Path(__file__).resolve().parents[1]
DATA_PACKAGES = {"appliance.web", "appliance.web.static", "appliance.web.templates"}


def listed_packages() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(pyproject["tool"]["setuptools"]["packages"])


def test_every_package_is_listed_for_the_wheel() -> None:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "appliance").rglob("__init__.py")}
    assert listed_packages() == found | DATA_PACKAGES


@pytest.fixture(scope="module")
def runtime_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of a copy of the checkout (the build leaves nothing in the tree)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "appliance", "web"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
    subprocess.run([*pip, str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("edge_appliance-*.whl")
    return wheel


def test_the_runtime_wheel_has_the_web_ui_and_no_tools(runtime_wheel: Path) -> None:
    names = zipfile.ZipFile(runtime_wheel).namelist()
    templates = {p.name for p in (ROOT / "web" / "templates").iterdir()}
    static = {p.name for p in (ROOT / "web" / "static").iterdir()}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("appliance/web/templates/")} == templates
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("appliance/web/static/")} == static
    tops = {n.split("/")[0] for n in names}
    assert tops == {"appliance", "edge_appliance-0.1.0.dist-info"}
    assert not [n for n in names if any(w in n for w in ("demo", "bench", "loadgen", "soak"))]


def test_the_runtime_wheel_does_not_require_the_workbench(runtime_wheel: Path) -> None:
    with zipfile.ZipFile(runtime_wheel) as whl:
        metadata = email.parser.Parser().parsestr(
            whl.read("edge_appliance-0.1.0.dist-info/METADATA").decode()
        )
    required = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    names = {r.split("==")[0].strip().lower() for r in required}
    assert "firmware-bridge" in names
    assert not names & {"py-spy", "scikit-image", "edge-appliance-tools", "httpx"}


def test_the_web_ui_is_found_through_importlib_resources() -> None:
    assert web_dir() == importlib.resources.files("appliance.web")
    assert (web_dir() / "templates" / "base.html").is_file()


def test_tool_commands_come_from_the_tools_distribution() -> None:
    parser = argparse.ArgumentParser(prog="appliance")
    tools.register(parser.add_subparsers(dest="command"), add_common)
    args = parser.parse_args(["demo", "prepare", "--data-dir", "x"])
    assert args.handler.__module__ == "appliance_tools.commands.demo"


def test_without_the_tools_their_commands_say_what_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="appliance")
    tools.register(parser.add_subparsers(dest="command"), add_common, group="appliance.no-such-group")
    args = parser.parse_args(["bench", "--model", "face"])
    assert args.handler(args) == 2
    assert "install edge-appliance-tools" in capsys.readouterr().err
