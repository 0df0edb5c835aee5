"""The image manifest: what went into an image, as sorted JSON without timestamps.

Same inputs (git commit, cached Debian rootfs, locked wheels, vendor files) give a byte-identical
manifest, so two manifests can be compared with diff. Standard library only: runs on the build host.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HASH_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def debian_packages(dpkg_list: Path) -> dict[str, str]:
    """`name version` lines (dpkg-query -W) -> {name: version}."""
    pairs = (line.split(maxsplit=1) for line in dpkg_list.read_text(encoding="utf-8").splitlines() if line)
    return dict(sorted((name, version.strip()) for name, version in pairs))


def locked_wheels(lock: Path) -> list[dict[str, str]]:
    wheels = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            spec, digest, filename = line.split()
            wheels.append({"file": filename, "requirement": spec, "sha256": digest})
    return sorted(wheels, key=lambda w: w["file"])


def registry_models(models: Path) -> list[dict[str, Any]]:
    found = []
    for manifest in sorted(models.glob("*/*/manifest.json")):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        found.append({k: data[k] for k in ("name", "version", "task", "sha256", "size")})
    return found


def vendor_files(vendor: Path) -> list[dict[str, str]]:
    files = sorted(p for p in vendor.rglob("*") if p.is_file())
    return [{"file": p.relative_to(vendor).as_posix(), "sha256": sha256_of(p)} for p in files]


def build(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "manifest_format": 1,
        "board": args.board,
        "appliance": {
            "version": args.version,
            "git_commit": args.git_commit,
            "uncommitted_changes": args.git_dirty == "true",
            "wheel": {"file": args.wheel.name, "sha256": sha256_of(args.wheel)},
        },
        "debian": {"rootfs_key": args.rootfs_key, "packages": debian_packages(args.dpkg)},
        "wheels": locked_wheels(args.lock),
        "models": registry_models(args.models),
        "vendor": vendor_files(args.vendor) if args.vendor else [],
        "layout": args.layout,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--git-commit", required=True)
    parser.add_argument("--git-dirty", choices=("true", "false"), required=True)
    parser.add_argument("--dpkg", type=Path, required=True, help="dpkg-query -W output of the rootfs")
    parser.add_argument("--lock", type=Path, required=True, help="images/wheels/BOARD.lock")
    parser.add_argument("--wheel", type=Path, required=True, help="the appliance's own wheel")
    parser.add_argument("--models", type=Path, required=True, help="models/ of the data partition")
    parser.add_argument("--rootfs-key", required=True)
    parser.add_argument("--layout", required=True)
    parser.add_argument("--vendor", type=Path)
    args = parser.parse_args(argv)
    json.dump(build(args), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
