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
    rknnrt_dir: str = "usr/lib"  # where librknnrt.so is (the binding loads only /usr/lib/librknnrt.so)
    npu_node: bool = True  # /dev/dri/renderD129, the RKNPU DRM render node (when the driver is there)
    node_mode: int = 0o660  # crw-rw---- root:render on Radxa/Armbian images
    service_groups: tuple[str, ...] = ("render",)  # groups of the `appliance` service user
    load: str | None = "NPU load:  Core0:  0%, Core1:  0%, Core2:  0%,"  # None: debugfs not readable


RK3588 = Board()
LIB_ELSEWHERE = Board(rknnrt_dir="usr/local/lib")
NODE_LOCKED = Board(service_groups=())
NO_DEBUGFS = Board(load=None)
RK3588_TEFLON = Board(teflon=True)
NO_DRIVER = Board(driver=None)
RK3566 = Board(soc="rk3566", board="radxa,zero3")
MAINLINE = Board(driver=None, rknnrt=None, rknnlite=None, teflon=True, rocket=True)
X86_HOST = Board(soc=None, driver=None, rknnrt=None, rknnlite=None, machine="x86_64")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _npu_node(root: Path, board: Board) -> None:
    """The RKNPU render node, its sysfs entry, and the service user in /etc/passwd and /etc/group."""
    node = root / "dev/dri/renderD129"
    _write(node, b"")
    node.chmod(board.node_mode)
    _write(root / "sys/class/drm/renderD129/device/uevent", b"DRIVER=RKNPU\nOF_NAME=npu\n")
    _write(root / "sys/class/drm/card1/device/uevent", b"DRIVER=RKNPU\nOF_NAME=npu\n")
    gid = node.stat().st_gid  # whoever runs the test owns the file; its group is "render" here
    members = "appliance" if "render" in board.service_groups else ""
    _write(root / "etc/group", f"render:x:{gid}:{members}\nroot:x:0:\nappliance:x:998:\n".encode())
    _write(
        root / "etc/passwd",
        b"root:x:0:0::/root:/bin/sh\nappliance:x:998:998::/var/lib/appliance:/usr/sbin/nologin\n",
    )


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
        _write(root / board.rknnrt_dir / "librknnrt.so", LIBRARY_NOISE + version + b"\0" + LIBRARY_NOISE)
    if board.driver is not None and board.npu_node:
        _npu_node(root, board)
    if board.driver is not None and board.load is not None:
        _write(root / "sys/kernel/debug/rknpu/load", f"{board.load}\n".encode())
    if board.teflon:
        _write(root / "usr/lib/aarch64-linux-gnu/libteflon.so", LIBRARY_NOISE)
    lite = board.rknnlite
    return ProbeSources(root, board.machine, lambda name: lite if name == LITE_PACKAGE else None)
