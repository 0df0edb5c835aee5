"""The machine the appliance runs on: CPU, memory, temperatures, disk, uptime, read from /proc and /sys.

Every reading is optional: a board or container that does not expose one gives None (or an empty
list), and the page says "not available".
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
THERMAL = Path("/sys/class/thermal")
CPU_SAMPLE_S = 0.1


@dataclass(frozen=True)
class Disk:
    path: str
    total: int
    used: int
    free: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.used / self.total, 1) if self.total else 0.0


@dataclass(frozen=True)
class Temperature:
    zone: str
    kind: str
    celsius: float


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def disk(path: Path) -> Disk | None:
    target = path if path.exists() else path.parent
    try:
        usage = shutil.disk_usage(target)
    except OSError:
        return None
    return Disk(str(path), usage.total, usage.used, usage.free)


def file_bytes(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def temperatures(root: Path = THERMAL) -> list[Temperature]:
    found = []
    for zone in sorted(root.glob("thermal_zone*")):
        raw = _read(zone / "temp")
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        found.append(Temperature(zone.name, _read(zone / "type") or "?", int(raw) / 1000.0))
    return found


def memory(root: Path = PROC) -> dict[str, int] | None:
    """Total and available memory in bytes (from meminfo), or None."""
    text = _read(root / "meminfo")
    if text is None:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemTotal", "MemAvailable") and parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    if "MemTotal" not in values:
        return None
    return {"total": values["MemTotal"], "available": values.get("MemAvailable", 0)}


def rss_bytes(root: Path = PROC) -> int | None:
    """Resident memory of this process now (not the peak)."""
    text = _read(root / "self" / "statm")
    if text is None or len(text.split()) < 2:
        return None
    return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_times(root: Path) -> tuple[int, int] | None:
    text = _read(root / "stat")
    if text is None or not text.startswith("cpu "):
        return None
    fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def cpu_percent(root: Path = PROC, sample_s: float = CPU_SAMPLE_S) -> float | None:
    """Busy share of all cores over a short sample (blocks `sample_s`: call it in a worker thread)."""
    first = _cpu_times(root)
    time.sleep(sample_s)
    second = _cpu_times(root)
    if first is None or second is None or second[0] == first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return round(100.0 * (total - idle) / total, 1)


def system_uptime_s(root: Path = PROC) -> float | None:
    text = _read(root / "uptime")
    return float(text.split()[0]) if text else None


def board() -> str:
    model = _read(Path("/proc/device-tree/model"))
    return model.rstrip("\x00") if model else platform.machine()


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Everything the System page shows (blocks for the CPU sample)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    found_disk = disk(data_dir)
    return {
        "board": board(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "cpu_percent": cpu_percent(),
        "load": [round(v, 2) for v in load] if load else None,
        "memory": memory(),
        "rss": rss_bytes(),
        "temperatures": [asdict(t) for t in temperatures()],
        "disk": {**asdict(found_disk), "percent": found_disk.percent} if found_disk else None,
        "system_uptime_s": system_uptime_s(),
    }
