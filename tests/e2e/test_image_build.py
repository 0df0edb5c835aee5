"""build_image.sh without building: input checks that fail fast and clearly, the manifest's
determinism, the wheel lock's agreement with pyproject.toml, and shellcheck. Seconds, no root."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build_image.sh"
TOOLS = ROOT / "images" / "tools"


def run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_rock5b_without_vendor_dir_names_what_it_needs() -> None:
    done = run_build("--board", "rock5b")
    assert done.returncode == 1
    assert "needs --vendor-dir" in done.stderr
    assert "librknnrt.so" in done.stderr and "docs/flash.md" in done.stderr


def test_rock5b_vendor_dir_missing_files_are_all_listed(tmp_path: Path) -> None:
    (tmp_path / "Image").write_bytes(b"kernel")
    done = run_build("--board", "rock5b", "--vendor-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    for name in ("rk3588-rock-5b.dtb", "librknnrt.so", "u-boot-rockchip.bin (or idbloader.img + u-boot.itb)"):
        assert f"  - {name}" in done.stderr, done.stderr
    assert "  - Image" not in done.stderr
    assert not (tmp_path / "out").exists(), "nothing is created before the inputs are checked"


def test_rock5b_vendor_dir_that_does_not_exist(tmp_path: Path) -> None:
    done = run_build("--board", "rock5b", "--vendor-dir", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert "no such directory" in done.stderr


def test_unknown_board_and_argument() -> None:
    done = run_build("--board", "pi5")
    assert done.returncode == 1 and "unknown board 'pi5'; boards: qemu-virt rock5b" in done.stderr
    done = run_build("--frobnicate")
    assert done.returncode == 1 and "unknown argument: --frobnicate" in done.stderr


def test_help() -> None:
    done = run_build("--help")
    assert done.returncode == 0
    assert "--vendor-dir" in done.stdout and "apt-get install" in done.stdout


@pytest.mark.parametrize("board", ["qemu-virt", "rock5b"])
def test_wheel_lock_matches_pyproject(board: str) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOLS / "wheels.py"), "check", "--board", board],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _manifest_inputs(tmp: Path) -> list[str]:
    (tmp / "dpkg.txt").write_text("python3 3.11.2-1+b1\nbash 5.2.15-2+b2\n", encoding="utf-8")
    wheel = tmp / "edge_appliance-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    model = tmp / "models" / "face" / "1"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text(
        json.dumps(
            {"name": "face", "version": 1, "task": "detect", "sha256": "ab", "size": 2, "created": "now"}
        ),
        encoding="utf-8",
    )
    vendor = tmp / "vendor"
    vendor.mkdir()
    (vendor / "librknnrt.so").write_bytes(b"so")
    # fmt: off
    return [
        "--board", "rock5b", "--version", "0.1.0", "--git-commit", "abc", "--git-dirty", "false",
        "--dpkg", str(tmp / "dpkg.txt"), "--lock", str(ROOT / "images" / "wheels" / "rock5b.lock"),
        "--wheel", str(wheel), "--models", str(tmp / "models"), "--rootfs-key", "k",
        "--layout", "boot=128MiB", "--vendor", str(vendor),
    ]
    # fmt: on


def test_manifest_is_the_same_for_the_same_inputs(tmp_path: Path) -> None:
    args = [sys.executable, str(TOOLS / "manifest.py"), *_manifest_inputs(tmp_path)]
    first = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert first == second
    manifest = json.loads(first)
    assert list(manifest["debian"]["packages"]) == ["bash", "python3"]
    assert manifest["models"] == [{"name": "face", "version": 1, "task": "detect", "sha256": "ab", "size": 2}]
    assert manifest["vendor"][0]["file"] == "librknnrt.so"
    assert "created" not in first and "rknn-toolkit-lite2==" in first


def test_shell_scripts_pass_shellcheck() -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: `make test` installs it (APT_PACKAGES)"
    scripts = [
        BUILD,
        *sorted((ROOT / "images").rglob("*.sh")),
        ROOT / "images/rootfs/usr/local/sbin/appliance-grow-data",
        ROOT / "images/rootfs/usr/local/sbin/appliance-usb-update",
    ]
    done = subprocess.run(
        ["shellcheck", "-x", *map(str, scripts)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
