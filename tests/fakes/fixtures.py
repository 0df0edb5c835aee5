"""Fixtures for the NPU tests: the fake rknnlite on sys.path, fake boards, configured backends.

Test modules bind the ones they use at module level (`fake_npu = fixtures.fake_npu`), which pytest
finds like fixtures defined there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from appliance.backends.registry import Backends
from appliance.config import BackendConfig
from appliance.platform import ProbeSources
from tests.fakes.boards import RK3588, make_board

FAKES = Path(__file__).resolve().parent


def _forget_fake_modules() -> None:
    for name in [n for n in sys.modules if n == "rknnlite" or n.startswith("rknnlite.")]:
        del sys.modules[name]


@pytest.fixture
def fake_npu(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The fake rknnlite importable as `rknnlite`; yields its `device` module (reset to an RK3588)."""
    _forget_fake_modules()
    monkeypatch.syspath_prepend(str(FAKES))
    import rknnlite.device  # noqa: PLC0415 the fake, importable only once its folder is on sys.path

    rknnlite.device.reset()
    yield rknnlite.device
    _forget_fake_modules()


@pytest.fixture
def rk3588(tmp_path: Path) -> ProbeSources:
    return make_board(tmp_path / "board", RK3588)


@pytest.fixture
def npu_backends(fake_npu: ModuleType, rk3588: ProbeSources) -> Backends:
    """Backends for an RK3588 (the fake NPU) with the per-core policy and a fast retry."""
    config = BackendConfig(
        order=("rknn", "litert"), core_policy="per-core", retry_s=0.05, retry_max_s=0.2, deadline_s=10.0
    )
    return Backends.from_config(config, rk3588)
