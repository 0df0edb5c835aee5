"""The image's arm64 wheels: a lock file per board, checked against pyproject.toml, fetched into a cache.

    python3 images/tools/wheels.py lock  --board qemu-virt --python .venv/bin/python
    python3 images/tools/wheels.py check --board qemu-virt
    python3 images/tools/wheels.py fetch --board qemu-virt --dest CACHE/wheels --python PY

A lock line is `name==version sha256 filename`. The lock's `# inputs:` header is a hash of the runtime
dependencies in pyproject.toml and the board's extra packages, so a dependency change that was not
re-locked is caught before anything is built. Standard library only: it runs on the build host.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = ROOT / "images" / "wheels"
PYTHON_VERSION = "3.11"  # Debian bookworm
GLIBC_MINOR = range(17, 37)  # manylinux_2_17 .. manylinux_2_36 (bookworm has glibc 2.36)
BOARD_EXTRAS = {"qemu-virt": (), "rock5b": ("rknn-toolkit-lite2",)}
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    sha256: str
    filename: str

    def line(self) -> str:
        return f"{self.name}=={self.version} {self.sha256} {self.filename}"


def platform_args() -> list[str]:
    """pip does not widen --platform to older manylinux tags: name every one bookworm can run."""
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for minor in GLIBC_MINOR:
        args += ["--platform", f"manylinux_2_{minor}_aarch64"]
    return [*args, "--platform", "manylinux2014_aarch64"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


PYPROJECT = ROOT / "pyproject.toml"


LOCAL = ("firmware-bridge",)  # distributions built from this repository (build_image.sh), never fetched


def requirements(board: str, pyproject: Path = PYPROJECT) -> list[str]:
    """Runtime dependencies of the project (no extras, no in-repo distributions) plus the board's own."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    fetched = [r for r in project["dependencies"] if r.split("==")[0].strip() not in LOCAL]
    return sorted(fetched) + list(BOARD_EXTRAS[board])


def inputs_hash(board: str, pyproject: Path = PYPROJECT) -> str:
    text = "\n".join([PYTHON_VERSION, *platform_args(), *requirements(board, pyproject)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lock_path(board: str) -> Path:
    return LOCK_DIR / f"{board}.lock"


def read_lock(board: str) -> tuple[str, list[Locked]]:
    inputs, entries = "", []
    for raw in lock_path(board).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("# inputs:"):
            inputs = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            spec, digest, filename = line.split()
            name, version = spec.split("==")
            entries.append(Locked(name, version, digest, filename))
    return inputs, entries


def from_wheel(path: Path) -> Locked:
    name, version = path.name.split("-")[:2]
    return Locked(name.replace("_", "-").lower(), version, sha256_of(path), path.name)


def pip_download(python: str, args: list[str], dest: Path) -> None:
    command = [python, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", str(dest)]
    done = subprocess.run(command + platform_args() + args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pip download failed:\n{done.stderr.strip()[-2000:]}")


def cmd_lock(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        pip_download(args.python, requirements(args.board), Path(tmp))
        entries = sorted((from_wheel(p) for p in Path(tmp).glob("*.whl")), key=lambda e: e.name)
    header = [
        f"# arm64 wheels of the {args.board} image (cp311, manylinux aarch64); do not edit:",
        f"# python3 images/tools/wheels.py lock --board {args.board} --python PYTHON_WITH_PIP",
        f"# inputs: {inputs_hash(args.board)}",
    ]
    lock_path(args.board).write_text("\n".join(header + [e.line() for e in entries]) + "\n", "utf-8")
    sys.stdout.write(f"{lock_path(args.board)}: {len(entries)} wheels\n")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = lock_path(args.board)
    if not path.exists():
        sys.stderr.write(f"{path} is missing: run images/tools/wheels.py lock --board {args.board}\n")
        return 1
    inputs, _ = read_lock(args.board)
    if inputs != inputs_hash(args.board, Path(args.pyproject)):
        sys.stderr.write(
            f"{path} is stale: pyproject.toml dependencies changed since it was made; run\n"
            f"  python3 images/tools/wheels.py lock --board {args.board} --python .venv/bin/python\n"
        )
        return 1
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Every locked wheel in --dest with its locked hash; pip runs only for the missing ones."""
    if cmd_check(args):
        return 1
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    _, entries = read_lock(args.board)
    missing = [e for e in entries if not _cached(dest / e.filename, e.sha256)]
    if missing:
        pip_download(args.python, ["--no-deps", *(f"{e.name}=={e.version}" for e in missing)], dest)
    bad = [e.filename for e in entries if not _cached(dest / e.filename, e.sha256)]
    if bad:
        sys.stderr.write(f"wheels missing or with a hash other than the lock's: {', '.join(bad)}\n")
        return 1
    for entry in entries:
        sys.stdout.write(f"{entry.filename}\n")
    return 0


def _cached(path: Path, digest: str) -> bool:
    return path.is_file() and sha256_of(path) == digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("lock", cmd_lock), ("check", cmd_check), ("fetch", cmd_fetch)):
        p = sub.add_parser(name)
        p.add_argument("--board", required=True, choices=sorted(BOARD_EXTRAS))
        p.add_argument("--python", default=sys.executable, help="a Python with pip")
        p.add_argument("--dest", help="wheel cache directory (fetch)")
        p.add_argument("--pyproject", default=str(PYPROJECT), help="check against this pyproject.toml")
        p.set_defaults(handler=handler)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
