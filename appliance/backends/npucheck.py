"""`appliance doctor`'s proof that the NPU works, beyond what is installed (platform.py):

- the library the lite2 binding really loads: `/usr/lib/librknnrt.so`, or `LIBRKNNRT_PATH` when set
  (strings of rknnlite/api/rknn_runtime, 2.3.2); one in another folder is not used;
- its version against rknn-toolkit-lite2's and against the toolkit that converted the model;
- the RKNPU device node (the DRM render node whose driver is RKNPU) readable and writable by the
  service user, from the root's /etc/passwd and /etc/group (also for a mounted image);
- one real inference of a model with its latency;
- the NPU load from /sys/kernel/debug/rknpu/load when it is readable.

Each failed check says how to fix it. All paths are under `root`, so tests use fake board trees.
"""

from __future__ import annotations

import os
import stat
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.backends.rknn import NPUModel, Slot, open_runtime, vendor_class
from appliance.errors import ApplianceError
from appliance.platform import Check, library_version

BINDING_LIBRARY = "/usr/lib/librknnrt.so"
LIBRARY_ENV = "LIBRKNNRT_PATH"
LOAD_FILE = "sys/kernel/debug/rknpu/load"
DRM_CLASS = "sys/class/drm"
LEGACY_NODE = "dev/rknpu"
SERVICE_USER = "appliance"
TIMED_RUNS = 10


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gids: frozenset[int]


def _lines(path: Path) -> list[list[str]]:
    try:
        return [line.split(":") for line in path.read_text(encoding="utf-8").splitlines() if ":" in line]
    except OSError:
        return []


def identity(root: Path, user: str) -> Identity | None:
    """The user's uid and groups from root/etc/passwd and root/etc/group (None: no such user)."""
    entry = next((f for f in _lines(root / "etc/passwd") if f[0] == user and len(f) > 3), None)
    if entry is None:
        return None
    gids = {int(entry[3])}
    for group in _lines(root / "etc/group"):
        if len(group) > 3 and user in group[3].split(","):
            gids.add(int(group[2]))
    return Identity(user, int(entry[2]), frozenset(gids))


def group_name(root: Path, gid: int) -> str:
    return next((g[0] for g in _lines(root / "etc/group") if len(g) > 2 and g[2] == str(gid)), str(gid))


def library_check(root: Path, env: Mapping[str, str], lite: str | None) -> Check:
    wanted = env.get(LIBRARY_ENV) or BINDING_LIBRARY
    path = root / wanted.lstrip("/")
    source = f"{LIBRARY_ENV}={wanted}" if env.get(LIBRARY_ENV) else wanted
    if not path.is_file():
        return Check(
            "binding",
            False,
            f"{source} does not exist: rknnlite loads only that file",
            f"put Rockchip's librknnrt.so at {BINDING_LIBRARY} (or point {LIBRARY_ENV} at it); a copy in "
            "another folder is not used",
        )
    version = library_version(path)
    if version and lite and version.split(".")[:2] != lite.split(".")[:2]:
        return Check(
            "binding",
            False,
            f"{source} is {version}, rknn-toolkit-lite2 is {lite}",
            f"install librknnrt.so {lite} (same release as rknn-toolkit-lite2 and the converting toolkit)",
        )
    return Check("binding", True, f"{source} ({version or 'version unknown'})")


def npu_nodes(root: Path) -> list[Path]:
    """The RKNPU device nodes: DRM nodes whose driver is RKNPU, or the legacy /dev/rknpu."""
    found = []
    drm = root / DRM_CLASS
    if drm.is_dir():
        for entry in sorted(drm.iterdir()):
            try:
                uevent = (entry / "device" / "uevent").read_text(encoding="utf-8")
            except OSError:
                continue
            if "DRIVER=RKNPU" in uevent.upper() and entry.name.startswith(("renderD", "card")):
                found.append(root / "dev" / "dri" / entry.name)
    found.sort(key=lambda node: not node.name.startswith("renderD"))  # librknnrt opens the render node
    legacy = root / LEGACY_NODE
    return found or ([legacy] if legacy.exists() else [])


def _can_use(mode: int, owner: int, group: int, who: Identity) -> bool:
    need = stat.S_IRUSR | stat.S_IWUSR
    if who.uid == 0:
        return True
    if who.uid == owner:
        return mode & need == need
    if group in who.gids:
        return mode & (need >> 3) == need >> 3
    return mode & (need >> 6) == need >> 6


def node_check(root: Path, user: str) -> Check:
    nodes = npu_nodes(root)
    if not nodes:
        return Check(
            "device",
            False,
            "no RKNPU device node (/sys/class/drm/*/device/uevent with DRIVER=RKNPU)",
            "boot the vendor BSP kernel with CONFIG_ROCKCHIP_RKNPU=y (see the driver check)",
        )
    who = identity(root, user)
    if who is None:
        return Check(
            "device", False, f"no user {user!r} in /etc/passwd", "install the appliance service first"
        )
    node = nodes[0]
    try:
        info = node.stat()
    except OSError as err:
        return Check("device", False, f"/{node.relative_to(root)}: {err}", "check the RKNPU driver (dmesg)")
    shown = f"/{node.relative_to(root)} {stat.filemode(info.st_mode)} group {group_name(root, info.st_gid)}"
    if _can_use(info.st_mode, info.st_uid, info.st_gid, who):
        return Check("device", True, f"{shown}: {user} can open it")
    group = group_name(root, info.st_gid)
    return Check(
        "device",
        False,
        f"{shown}: {user} cannot open it (librknnrt then says 'failed to open rknpu module')",
        f"usermod -aG {group} {user} (and restart the service), or a udev rule giving the node to a "
        f"group of {user}",
    )


def load_check(root: Path) -> Check:
    path = root / LOAD_FILE
    try:
        text = " ".join(path.read_text(encoding="utf-8").split())
    except OSError:
        return Check(
            "load",
            False,
            f"/{LOAD_FILE} not readable",
            "mount debugfs (mount -t debugfs none /sys/kernel/debug) and run doctor as root to see the "
            "NPU load",
            blocking=False,
        )
    return Check("load", True, text, blocking=False)


def inference_check(model: Path | None) -> Check:
    """Load `model` (.rknn with its .tflite twin beside it) on the NPU, run it, time TIMED_RUNS runs."""
    if model is None:
        return Check(
            "inference",
            False,
            "not run: no .rknn model (give --model X.rknn, or --data-dir with an active converted model)",
            "convert one with `appliance models convert` and activate it",
            blocking=False,
        )
    try:
        spec = NPUModel.of(model)
        context = open_runtime(vendor_class(), spec, Slot("rknn:doctor", 0))
    except ApplianceError as err:
        return Check(
            "inference", False, f"{model.name}: {err}", "see the checks above; dmesg | grep -i rknpu"
        )
    try:
        zeros = [np.zeros(s.shape, np.dtype(s.dtype)) for s in context.inputs]
        context.run(zeros)  # the first run allocates; not timed
        times = []
        for _ in range(TIMED_RUNS):
            started = time.perf_counter()
            context.run(zeros)
            times.append(time.perf_counter() - started)
    except ApplianceError as err:
        return Check(
            "inference", False, f"{model.name}: {err}", "dmesg | grep -i rknpu; appliance doctor as root"
        )
    finally:
        context.close()
    median = statistics.median(times) * 1e3
    return Check("inference", True, f"{model.name} on the NPU: median {median:.2f} ms of {TIMED_RUNS} runs")


def npu_checks(root: Path, user: str, lite: str | None, model: Path | None) -> list[Check]:
    return [
        library_check(root, os.environ, lite),
        node_check(root, user),
        inference_check(model),
        load_check(root),
    ]
