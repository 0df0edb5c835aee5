"""Fake filesystem trees of the machines the platform probe must understand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.platform import LITE_PACKAGE, ProbeSources

# bytes around the version string, as in the real shared library
LIBRARY_NOISE = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4


@dataclass(frozen=True)
class Board:
    soc: str | None = "rk3588"
    board: str = "radxa,rock-5b"
    driver: str | None = "0.9.8"  # None: no RKNPU driver
    rknnrt: str | None = "2.3.2"  # None: no librknnrt.so
    rknnlite: str | None = "2.3.2"  # None: rknn-toolkit-lite2 not installed
    teflon: bool = False
    rocket: bool = False
    machine: str = "aarch64"


RK3588 = Board()
RK3588_TEFLON = Board(teflon=True)
NO_DRIVER = Board(driver=None)
RK3566 = Board(soc="rk3566", board="radxa,zero3")
MAINLINE = Board(driver=None, rknnrt=None, rknnlite=None, teflon=True, rocket=True)
X86_HOST = Board(soc=None, driver=None, rknnrt=None, rknnlite=None, machine="x86_64")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_board(root: Path, board: Board = RK3588) -> ProbeSources:
    """Write the files the probe reads under `root`; returns probe sources pointing at them."""
    root.mkdir(parents=True, exist_ok=True)
    if board.soc is not None:
        compatible = f"{board.board}\0rockchip,{board.soc}\0".encode()
        _write(root / "proc/device-tree/compatible", compatible)
    if board.driver is not None:
        _write(root / "sys/module/rknpu/version", f"{board.driver}\n".encode())
    if board.rocket:
        (root / "sys/module/rocket").mkdir(parents=True, exist_ok=True)
    if board.rknnrt is not None:
        version = f"librknnrt version: {board.rknnrt} (c949ad889d@2024-11-07T11:35:33)".encode()
        _write(root / "usr/lib/librknnrt.so", LIBRARY_NOISE + version + b"\0" + LIBRARY_NOISE)
    if board.teflon:
        _write(root / "usr/lib/aarch64-linux-gnu/libteflon.so", LIBRARY_NOISE)
    lite = board.rknnlite
    return ProbeSources(root, board.machine, lambda name: lite if name == LITE_PACKAGE else None)
