"""The mainline route: LiteRT with Mesa's Teflon external delegate, falling back without it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.backends import litert
from appliance.backends.base import BackendOptions
from appliance.backends.litert import LiteRTBackend, load_external_delegate
from appliance.backends.registry import Backends
from appliance.config import BackendConfig
from tests.conftest import CACHE
from tests.fakes.boards import MAINLINE, RK3588, make_board

STRIPES = CACHE / "models" / "stripes.tflite"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litert, "_warned", set())


def run_once(backend: LiteRTBackend) -> tuple[str, np.ndarray]:
    context = backend.open(STRIPES, BackendOptions(threads=1, contexts=2))[0]
    try:
        return context.label, context.run([np.zeros((1, 64, 64, 3), np.float32)])[0]
    finally:
        context.close()


def test_without_libteflon_the_cpu_runs_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board = make_board(tmp_path, RK3588)
    backend = LiteRTBackend("teflon", board.root)
    label, outputs = run_once(backend)
    run_once(backend)
    assert label == "litert" and outputs.shape[-1] == 3
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1
    assert "without the teflon delegate" in lines[0] and "mesa-teflon-delegate" in lines[0]


def test_a_library_that_does_not_load_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    board = make_board(tmp_path, MAINLINE)  # libteflon.so here is not a real library
    delegate, why = load_external_delegate("teflon", board.root)
    assert delegate is None and "cannot load" in why and "libteflon.so" in why and "external delegate" in why
    label, _ = run_once(LiteRTBackend("teflon", board.root))
    assert label == "litert"
    assert any("cannot load" in r.getMessage() for r in caplog.records)


def test_a_loaded_delegate_is_passed_to_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = make_board(tmp_path, MAINLINE)
    seen: dict[str, Any] = {}

    def load_delegate(path: str) -> object:
        seen["path"] = path
        return "teflon-delegate"

    class Interpreter:
        def __init__(
            self, model_path: str, num_threads: int, experimental_delegates: list[Any] | None = None
        ) -> None:
            seen["delegates"] = experimental_delegates

        def allocate_tensors(self) -> None:
            return None

        def get_input_details(self) -> list[dict[str, Any]]:
            return []

        def get_output_details(self) -> list[dict[str, Any]]:
            return []

    import ai_edge_litert.interpreter as vendor  # noqa: PLC0415 optional vendor module (tflite_runtime is the fallback)

    monkeypatch.setattr(vendor, "load_delegate", load_delegate)
    monkeypatch.setattr(litert, "delegate_library_problem", lambda path: None)  # no real libteflon.so here
    monkeypatch.setattr(litert, "interpreter_class", lambda: (Interpreter, "ai_edge_litert"))
    context = LiteRTBackend("teflon", board.root).open(STRIPES, BackendOptions(threads=1, contexts=1))[0]
    assert context.label == "litert:teflon"
    assert seen == {
        "path": str(board.root / "usr/lib/aarch64-linux-gnu/libteflon.so"),
        "delegates": ["teflon-delegate"],
    }


def test_config_selects_the_delegate(tmp_path: Path) -> None:
    backends = Backends.from_config(
        BackendConfig(delegate="teflon", core_policy="core1"), make_board(tmp_path, RK3588)
    )
    litert = backends.get("litert")
    assert isinstance(litert, LiteRTBackend) and litert.delegate == "teflon"
    assert backends.get("rknn").settings.core_policy == "core1"  # type: ignore[attr-defined]
