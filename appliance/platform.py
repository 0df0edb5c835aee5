"""What this machine offers for NPU inference: SoC, RKNPU driver, librknnrt.so, rknnlite, Teflon.

Every fact is read from files under an injectable root, so tests build a fake board under tmp_path,
and every missing piece carries a plain-words fix. `appliance doctor` prints the report, the status
API shows the same facts, and the rknn backend asks it how many NPU cores the SoC has.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform as _stdlib_platform
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# NPU cores per SoC (Rockchip datasheets): core masks beyond these are rejected by the runtime.
SOC_CORES: dict[str, int] = {
    "rk3588": 3,
    "rk3588s": 3,
    "rk3576": 2,
    "rk3568": 1,
    "rk3566": 1,
    "rk3562": 1,
}
NPU_ARCH = "aarch64"
COMPATIBLE = "proc/device-tree/compatible"
DRIVER_MODULE_VERSION = "sys/module/rknpu/version"
DRIVER_DEBUGFS_VERSION = "sys/kernel/debug/rknpu/version"
DRIVER_MODULE = "sys/module/rknpu"
ROCKET_MODULE = "sys/module/rocket"
LIB_DIRS = (
    "usr/lib",
    "usr/lib/aarch64-linux-gnu",
    "usr/local/lib",
    "lib",
    "lib/aarch64-linux-gnu",
    "usr/lib64",
)
RKNNRT = "librknnrt.so"
TEFLON = "libteflon.so"
LITE_PACKAGE = "rknn-toolkit-lite2"
RKNNRT_VERSION = re.compile(rb"librknnrt version: ([0-9][0-9A-Za-z.+-]*)")
DRIVER_VERSION = re.compile(r"v?([0-9]+\.[0-9]+(?:\.[0-9]+)?)")

RKNNRT_FIX = (
    "install librknnrt.so from Rockchip (github.com/airockchip/rknn-toolkit2, "
    "rknpu2/runtime/Linux/librknn_api/aarch64/librknnrt.so) to /usr/lib/, the same version as "
    "rknn-toolkit-lite2"
)
DRIVER_FIX = (
    "the RKNPU kernel driver is not loaded: boot the board vendor's BSP kernel (5.10 or 6.1, "
    "CONFIG_ROCKCHIP_RKNPU=y); on a mainline kernel (6.18+) use the rocket driver with the Teflon "
    'delegate instead (backend.delegate = "teflon")'
)
LITE_FIX = (
    "pip install rknn-toolkit-lite2 into the appliance's venv on the board "
    "(aarch64 wheels only, Python 3.8-3.12), the same version as librknnrt.so"
)
TEFLON_FIX = (
    "only for mainline kernels with the rocket NPU driver: apt install mesa-teflon-delegate "
    '(Debian trixie or newer) and set backend.delegate = "teflon"'
)


def installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class ProbeSources:
    """Where facts come from: a filesystem root, the CPU architecture and the installed packages."""

    root: Path = Path("/")
    machine: str = field(default_factory=_stdlib_platform.machine)
    package_version: Callable[[str], str | None] = installed_version


@dataclass(frozen=True)
class Check:
    """One fact: what was found and, when it is missing, what to do. `blocking`: rknn needs it."""

    name: str
    ok: bool
    value: str
    fix: str = ""
    blocking: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "value": self.value, "fix": self.fix}


@dataclass(frozen=True)
class PlatformReport:
    machine: str
    soc: str | None
    npu_cores: int
    driver: str | None
    librknnrt: str | None
    rknnlite: str | None
    teflon: str | None
    checks: tuple[Check, ...]

    def rknn_blocker(self) -> str | None:
        """None when the rknn backend can run here, else the first missing piece and its fix."""
        for check in self.checks:
            if check.blocking and not check.ok:
                return f"{check.name}: {check.value}; {check.fix}"
        return None

    @property
    def teflon_ready(self) -> bool:
        return self.teflon is not None

    def verdict(self) -> str:
        blocker = self.rknn_blocker()
        if blocker is None:
            policy = ' (use backend.core_policy = "per-core")' if self.npu_cores > 1 else ""
            return f"the rknn backend can run here: {self.soc}, {self.npu_cores} NPU core(s){policy}"
        if self.teflon_ready and self.driver == "rocket":
            return 'the mainline route can run here: backend.delegate = "teflon" with backend litert'
        return f"the rknn backend cannot run here: {blocker}"

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "soc": self.soc,
            "npu_cores": self.npu_cores,
            "driver": self.driver,
            "librknnrt": self.librknnrt,
            "rknnlite": self.rknnlite,
            "teflon": self.teflon,
            "rknn_ready": self.rknn_blocker() is None,
            "verdict": self.verdict(),
            "checks": [c.to_json() for c in self.checks],
        }


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def read_soc(root: Path) -> tuple[str | None, list[str]]:
    """The Rockchip SoC named in the device tree, and every compatible string found."""
    try:
        raw = (root / COMPATIBLE).read_bytes()
    except OSError:
        return None, []
    names = [part.decode("ascii", "replace") for part in raw.split(b"\0") if part]
    for name in names:
        vendor, _, chip = name.partition(",")
        if vendor == "rockchip" and chip in SOC_CORES:
            return chip, names
    return None, names


def npu_cores(soc: str | None) -> int:
    return SOC_CORES.get(soc or "", 0)


def read_driver(root: Path) -> str | None:
    """'rknpu 0.9.8', 'rknpu (version readable by root only)', 'rocket', or None."""
    for relative in (DRIVER_MODULE_VERSION, DRIVER_DEBUGFS_VERSION):
        text = _read_text(root / relative)
        if text:
            found = DRIVER_VERSION.search(text)
            return f"rknpu {found.group(1) if found else text}"
    if (root / DRIVER_MODULE).is_dir():
        return "rknpu (version readable by root only, in /sys/kernel/debug/rknpu/version)"
    if (root / ROCKET_MODULE).is_dir():
        return "rocket"
    return None


def find_library(name: str, root: Path) -> Path | None:
    for folder in LIB_DIRS:
        candidate = root / folder / name
        if candidate.is_file():
            return candidate
    return None


def library_version(path: Path) -> str | None:
    """The 'librknnrt version: x.y.z' string compiled into the library."""
    try:
        found = RKNNRT_VERSION.search(path.read_bytes())
    except OSError:
        return None
    return found.group(1).decode("ascii") if found else None


def _same_release(a: str, b: str) -> bool:
    return a.split(".")[:2] == b.split(".")[:2]


def _machine_check(machine: str) -> Check:
    if machine == NPU_ARCH:
        return Check("machine", True, machine)
    return Check(
        "machine",
        False,
        machine,
        "the Rockchip NPU runtime runs only on aarch64 RK35xx boards; on this machine convert models "
        "(appliance models convert) and run the litert CPU backend",
    )


def _soc_check(soc: str | None, names: list[str]) -> Check:
    if soc is not None:
        return Check("soc", True, f"{soc} ({npu_cores(soc)} NPU core(s))")
    found = ", ".join(names) if names else "no /proc/device-tree/compatible"
    known = ", ".join(sorted(SOC_CORES))
    return Check("soc", False, f"no Rockchip NPU SoC ({found})", f"the rknn backend needs one of: {known}")


def _runtime_checks(root: Path, library: Path | None, version: str | None, lite: str | None) -> list[Check]:
    checks = [
        Check("librknnrt", True, f"{version or 'unknown version'} at /{library.relative_to(root)}")
        if library is not None
        else Check("librknnrt", False, "librknnrt.so not found", RKNNRT_FIX),
        Check("rknnlite", True, lite) if lite else Check("rknnlite", False, "not installed", LITE_FIX),
    ]
    if version and lite and not _same_release(version, lite):
        checks.append(
            Check(
                "versions",
                False,
                f"librknnrt.so {version} but rknn-toolkit-lite2 {lite}",
                "models built by a newer toolkit fail with 'Invalid RKNN model version': install the "
                f"librknnrt.so of release {'.'.join(lite.split('.')[:2])} and convert with the same "
                "rknn-toolkit2 release",
                blocking=False,
            )
        )
    return checks


def probe_platform(sources: ProbeSources | None = None) -> PlatformReport:
    """Read every fact once; cheap enough to call at startup and from `appliance doctor`."""
    src = sources or ProbeSources()
    soc, names = read_soc(src.root)
    driver = read_driver(src.root)
    lite = src.package_version(LITE_PACKAGE)
    teflon = find_library(TEFLON, src.root)
    library = find_library(RKNNRT, src.root)
    version = library_version(library) if library is not None else None
    checks = [
        _machine_check(src.machine),
        _soc_check(soc, names),
        Check("driver", True, driver)
        if driver is not None and driver != "rocket"
        else Check("driver", False, driver or "not loaded", DRIVER_FIX),
        *_runtime_checks(src.root, library, version, lite),
        Check("teflon", True, f"/{teflon.relative_to(src.root)}", blocking=False)
        if teflon is not None
        else Check("teflon", False, "libteflon.so not found", TEFLON_FIX, blocking=False),
    ]
    return PlatformReport(
        machine=src.machine,
        soc=soc,
        npu_cores=npu_cores(soc),
        driver=driver,
        librknnrt=version,
        rknnlite=lite,
        teflon=str(teflon) if teflon is not None else None,
        checks=tuple(checks),
    )


@functools.lru_cache(maxsize=1)
def cached_report() -> PlatformReport:
    """The report of this machine, probed once per process (for the status API)."""
    return probe_platform()
