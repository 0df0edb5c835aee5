"""Platform probe and `appliance doctor` on fake filesystem trees of real kinds of machines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from appliance.cli import main
from appliance.cli import npu as npu_cli
from appliance.platform import ProbeSources, probe_platform
from tests.conftest import CACHE
from tests.fakes import fixtures
from tests.fakes.boards import (
    LIB_ELSEWHERE,
    MAINLINE,
    NO_DEBUGFS,
    NO_DRIVER,
    NODE_LOCKED,
    RK3566,
    RK3588,
    RK3588_TEFLON,
    X86_HOST,
    Board,
    make_board,
)
from tests.fakes.models import write_pair

fake_npu = fixtures.fake_npu


def checks(sources: ProbeSources) -> dict[str, tuple[bool, str, str]]:
    return {c.name: (c.ok, c.value, c.fix) for c in probe_platform(sources).checks}


def test_rk3588_with_everything(tmp_path: Path) -> None:
    report = probe_platform(make_board(tmp_path, RK3588_TEFLON))
    assert (report.soc, report.npu_cores, report.driver) == ("rk3588", 3, "rknpu 0.9.8")
    assert (report.librknnrt, report.rknnlite) == ("2.3.2", "2.3.2")
    assert report.teflon is not None and report.teflon.endswith("usr/lib/aarch64-linux-gnu/libteflon.so")
    assert report.rknn_blocker() is None
    assert "per-core" in report.verdict()
    assert all(c.ok for c in report.checks)
    assert checks(make_board(tmp_path, RK3588_TEFLON))["librknnrt"][1] == "2.3.2 at /usr/lib/librknnrt.so"


def test_board_without_driver(tmp_path: Path) -> None:
    report = probe_platform(make_board(tmp_path, NO_DRIVER))
    blocker = report.rknn_blocker()
    assert blocker is not None and blocker.startswith("driver: not loaded")
    assert "BSP kernel" in blocker and "rocket" in blocker


def test_x86_host(tmp_path: Path) -> None:
    found = checks(make_board(tmp_path, X86_HOST))
    assert found["machine"][0] is False and "appliance models convert" in found["machine"][2]
    assert found["soc"][0] is False and "no /proc/device-tree/compatible" in found["soc"][1]
    assert "pip install rknn-toolkit-lite2" in found["rknnlite"][2]
    assert "librknnrt.so" in found["librknnrt"][2] and "/usr/lib/" in found["librknnrt"][2]
    assert "mesa-teflon-delegate" in found["teflon"][2]


def test_small_socs_have_one_core(tmp_path: Path) -> None:
    report = probe_platform(make_board(tmp_path, RK3566))
    assert (report.soc, report.npu_cores) == ("rk3566", 1)
    assert "per-core" not in report.verdict()


def test_version_mismatch_is_explained_but_not_blocking(tmp_path: Path) -> None:
    report = probe_platform(make_board(tmp_path, Board(rknnrt="1.6.0")))
    versions = {c.name: c for c in report.checks}["versions"]
    assert not versions.ok and "Invalid RKNN model version" in versions.fix and "2.3" in versions.fix
    assert report.rknn_blocker() is None


def test_driver_version_sources(tmp_path: Path) -> None:
    sources = make_board(tmp_path, NO_DRIVER)
    (tmp_path / "sys/module/rknpu").mkdir(parents=True)
    assert "root only" in (probe_platform(sources).driver or "")
    debugfs = tmp_path / "sys/kernel/debug/rknpu/version"
    debugfs.parent.mkdir(parents=True)
    debugfs.write_text("RKNPU driver: v0.9.6\n")
    assert probe_platform(sources).driver == "rknpu 0.9.6"


def test_mainline_board_points_at_teflon(tmp_path: Path) -> None:
    report = probe_platform(make_board(tmp_path, MAINLINE))
    assert report.driver == "rocket" and report.rknn_blocker() is not None
    assert "teflon" in report.verdict()


DOCTOR_CASES = [
    (RK3588, 0, "the rknn backend can run here: rk3588, 3 NPU core(s)"),
    (NO_DRIVER, 1, "fix: the RKNPU kernel driver is not loaded"),
    (X86_HOST, 1, "machine    MISSING  x86_64"),
    (MAINLINE, 0, "the mainline route can run here"),
]


@pytest.mark.parametrize("case", DOCTOR_CASES)
def test_doctor_command(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[Board, int, str],
) -> None:
    board, code, expected = case
    sources = make_board(tmp_path / "root", board)
    monkeypatch.setattr(npu_cli, "probe_sources", lambda root: sources)
    assert main(["doctor"]) == code
    assert expected in capsys.readouterr().out
    assert main(["doctor", "--json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert data["rknn_ready"] is (board == RK3588)
    assert {c["name"] for c in data["checks"]} >= {
        "machine",
        "soc",
        "driver",
        "librknnrt",
        "rknnlite",
        "teflon",
    }


def test_doctor_reads_a_mounted_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_board(tmp_path / "image", RK3588)
    main(["doctor", "--root", str(tmp_path / "image")])
    out = capsys.readouterr().out
    assert "soc        ok       rk3588 (3 NPU core(s))" in out
    assert "librknnrt  ok       2.3.2 at /usr/lib/librknnrt.so" in out


@pytest.fixture
def run_doctor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, dict[str, tuple[bool, str, str]]]]:
    roots = iter(range(100))

    def run(board: Board, *args: str) -> tuple[int, dict[str, tuple[bool, str, str]]]:
        sources = make_board(tmp_path / f"root{next(roots)}", board)  # a fresh tree every call
        monkeypatch.setattr(npu_cli, "probe_sources", lambda root: sources)
        capsys.readouterr()
        code = main(["doctor", "--json", *args])
        data = json.loads(capsys.readouterr().out)
        return code, {c["name"]: (c["ok"], c["value"], c["fix"]) for c in data["checks"]}

    return run


Doctor = Callable[..., tuple[int, dict[str, tuple[bool, str, str]]]]


def test_the_binding_loads_only_usr_lib(run_doctor: Doctor, monkeypatch: pytest.MonkeyPatch) -> None:
    code, found = run_doctor(LIB_ELSEWHERE)
    assert found["librknnrt"][0] is True  # installed ...
    assert code == 1 and found["binding"][0] is False  # ... but not where rknnlite looks
    assert "/usr/lib/librknnrt.so" in found["binding"][2] and "LIBRKNNRT_PATH" in found["binding"][2]
    monkeypatch.setenv("LIBRKNNRT_PATH", "/usr/local/lib/librknnrt.so")
    code, found = run_doctor(LIB_ELSEWHERE)
    assert found["binding"] == (True, "LIBRKNNRT_PATH=/usr/local/lib/librknnrt.so (2.3.2)", "")


def test_binding_version_against_the_lite_package(run_doctor: Doctor) -> None:
    code, found = run_doctor(Board(rknnrt="2.1.0"))
    assert code == 1 and "is 2.1.0, rknn-toolkit-lite2 is 2.3.2" in found["binding"][1]


def test_the_service_user_must_open_the_device_node(run_doctor: Doctor) -> None:
    code, found = run_doctor(RK3588)
    assert found["device"][0] is True and "renderD129" in found["device"][1]
    code, found = run_doctor(NODE_LOCKED)
    assert code == 1 and found["device"][0] is False
    assert "appliance cannot open it" in found["device"][1]
    assert found["device"][2].startswith("usermod -aG render appliance")
    code, found = run_doctor(RK3588, "--user", "nobody")
    assert found["device"][0] is False and "no user 'nobody'" in found["device"][1]


def test_npu_load_is_shown_when_readable(run_doctor: Doctor) -> None:
    code, found = run_doctor(RK3588)
    assert found["load"] == (True, "NPU load: Core0: 0%, Core1: 0%, Core2: 0%,", "")
    code, found = run_doctor(NO_DEBUGFS)
    assert code == 0 and found["load"][0] is False and "debugfs" in found["load"][2]  # not blocking


def test_one_real_inference_with_its_latency(
    run_doctor: Doctor, tmp_path: Path, fake_npu: ModuleType
) -> None:
    model = write_pair(tmp_path / "m", CACHE / "models" / "stripes.tflite")
    code, found = run_doctor(RK3588, "--model", str(model))
    assert code == 0 and found["inference"][0] is True
    assert found["inference"][1].startswith("model.rknn on the NPU: median ")
    fake_npu.NPU.fail_init = True
    code, found = run_doctor(RK3588, "--model", str(model))
    assert code == 1 and found["inference"][0] is False and "init_runtime" in found["inference"][1]
    fake_npu.NPU.heal()
    fake_npu.NPU.none_after = 0
    code, found = run_doctor(RK3588, "--model", str(model))
    assert code == 1 and "returned None" in found["inference"][1]
