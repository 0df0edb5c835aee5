"""Offline update: install a wheel bundle into a fresh venv, switch, restart, health-check, roll back.

On the device (images/README.md, "Updates"):

    /opt/appliance/venvs/<name>/        one venv per installed version
    /opt/appliance/current -> venvs/<name>   what appliance.service runs

A bundle is a tar holding `bundle.json` (format, version, requirements, sha256 of every file), the
wheels under `wheels/` (the appliance and all its dependencies, for the device's platform) and,
optionally, the web UI under `web/`. build_image.sh writes one next to every image. Every path is
injectable so that tests can run an update on any machine with a temporary root and a fake restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from appliance.errors import ApplianceError, BadRequest
from appliance.models.registry import sha256_of

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
BUNDLE_INDEX = "bundle.json"
PIP_TAIL = 1500  # characters of pip's output quoted in an error

HealthCheck = Callable[[], bool]


class UpdateFailed(ApplianceError):
    status = 500


@dataclass(frozen=True)
class BundleIndex:
    version: str
    requirements: tuple[str, ...]
    files: dict[str, str]  # path inside the bundle -> sha256

    def to_json(self) -> dict[str, object]:
        return {
            "format": BUNDLE_FORMAT,
            "version": self.version,
            "requirements": list(self.requirements),
            "files": dict(sorted(self.files.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> BundleIndex:
        if data.get("format") != BUNDLE_FORMAT:
            raise BadRequest(f"bundle format {data.get('format')!r} is not supported (want {BUNDLE_FORMAT})")
        try:
            files = data["files"]
            requirements = data["requirements"]
            if not isinstance(files, dict) or not isinstance(requirements, list):
                raise TypeError("files must be an object, requirements a list")
            return cls(str(data["version"]), tuple(str(r) for r in requirements), dict(files))
        except (KeyError, TypeError) as err:
            raise BadRequest(f"bundle.json is malformed: {err}") from err

    @property
    def has_web(self) -> bool:
        return any(name.startswith("web/") for name in self.files)


@dataclass(frozen=True)
class Layout:
    """Where venvs live and which one is current."""

    root: Path = Path("/opt/appliance")

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def current_venv(self) -> Path | None:
        if not self.current.is_symlink():
            return None
        return (self.root / os.readlink(self.current)).resolve()


@dataclass(frozen=True)
class UpdateOptions:
    layout: Layout = field(default_factory=Layout)
    python: str = "/usr/bin/python3"  # interpreter of the new venv
    restart: tuple[str, ...] = ("systemctl", "restart", "appliance.service")
    timeout_s: float = 180.0  # how long the new version has to become healthy
    keep: int = 1  # older venvs kept besides the current one (rollback targets)


@dataclass(frozen=True)
class UpdateResult:
    version: str
    venv: Path
    previous: Path | None


# -- bundles ---------------------------------------------------------------------------------------


def write_bundle(
    out: Path, version: str, wheels: Path, requirements: tuple[str, ...], web: Path | None = None
) -> BundleIndex:
    """A bundle of every wheel in `wheels` (and the `web` folder), installing `requirements`."""
    members = {f"wheels/{p.name}": p for p in sorted(wheels.glob("*.whl"))}
    if web is not None:
        members |= {f"web/{p.relative_to(web).as_posix()}": p for p in sorted(web.rglob("*")) if p.is_file()}
    index = BundleIndex(version, requirements, {name: sha256_of(p) for name, p in members.items()})
    data = json.dumps(index.to_json(), indent=2).encode()
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w") as tar:
        info = tarfile.TarInfo(BUNDLE_INDEX)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
        for name, path in members.items():
            tar.add(path, arcname=name, recursive=False, filter=_normalised)
    tmp.replace(out)
    return index


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def open_bundle(path: Path, staging: Path) -> BundleIndex:
    """Extract the bundle into `staging` and check every file against bundle.json."""
    try:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                _check_member(member)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                tar.extractall(staging, filter="data")
            else:
                tar.extractall(staging)  # members were checked above
    except (OSError, tarfile.TarError) as err:
        raise BadRequest(f"{path}: not a readable bundle: {err}") from err
    try:
        data = json.loads((staging / BUNDLE_INDEX).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BadRequest(f"{path}: bundle.json missing or unreadable: {err}") from err
    index = BundleIndex.from_json(data)
    for name, digest in index.files.items():
        file = staging / name
        if not file.is_file() or sha256_of(file) != digest:
            raise BadRequest(f"{path}: {name} is missing or does not match its sha256 in bundle.json")
    if not any(name.startswith("wheels/") for name in index.files):
        raise BadRequest(f"{path}: the bundle holds no wheels")
    return index


def _check_member(member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
        raise BadRequest(f"bundle member {member.name!r} is not allowed")


# -- venvs and the current link --------------------------------------------------------------------


def new_venv_path(layout: Layout, version: str) -> Path:
    candidate, n = layout.venvs / version, 1
    while candidate.exists():
        n += 1
        candidate = layout.venvs / f"{version}-{n}"
    return candidate


def build_venv(index: BundleIndex, staging: Path, target: Path, python: str) -> None:
    """A fresh venv at `target` with the bundle's requirements, installed from its wheels only."""
    _run([python, "-m", "venv", str(target)], "creating the venv")
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-cache-dir"]
    pip += ["--disable-pip-version-check", "--find-links", str(staging / "wheels"), *index.requirements]
    _run(pip, "installing the bundle's wheels")
    if index.has_web:
        _install_web(target, staging / "web")


def _install_web(target: Path, web: Path) -> None:
    """The UI files inside the installed package, where appliance/api/app.py looks for them."""
    where = "import appliance, pathlib; print(pathlib.Path(appliance.__file__).parent)"
    done = subprocess.run(
        [str(target / "bin" / "python"), "-I", "-c", where], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise UpdateFailed(f"the new venv cannot import appliance: {done.stderr.strip()[-PIP_TAIL:]}")
    package = Path(done.stdout.strip())
    if not (package / "web" / "templates").is_dir():
        shutil.copytree(web, package / "web", dirs_exist_ok=True)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-PIP_TAIL:]
        raise UpdateFailed(f"{what} failed (exit {done.returncode}): {output}")


def switch(layout: Layout, venv: Path) -> None:
    """Point `current` at `venv` atomically (a new symlink renamed over the old one)."""
    tmp = layout.root / ".current.new"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(venv.relative_to(layout.root))
    os.replace(tmp, layout.current)
    logger.info("current -> %s", venv.name)


def prune(layout: Layout, keep: int, current: Path, previous: Path | None) -> list[Path]:
    """Delete all but `keep` venvs besides `current`: `previous` first, then the newest."""
    others = [p for p in layout.venvs.iterdir() if p.is_dir() and p.resolve() != current]
    others.sort(key=lambda p: (p.resolve() != previous, -p.stat().st_mtime))
    doomed = others[max(keep, 0) :]
    for path in doomed:
        shutil.rmtree(path)
        logger.info("removed old venv %s", path.name)
    return doomed


# -- health and restart ----------------------------------------------------------------------------


def http_health(url: str, request_timeout_s: float = 3.0) -> HealthCheck:
    """A check that is true when GET url answers 200 with {"status": "ok"}."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=request_timeout_s) as response:
                return bool(response.status == 200 and json.load(response).get("status") == "ok")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    return check


def wait_healthy(check: HealthCheck, timeout_s: float, interval_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def restart_and_check(options: UpdateOptions, check: HealthCheck) -> bool:
    done = subprocess.run(list(options.restart), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        logger.error("restart command failed (exit %d): %s", done.returncode, done.stderr.strip())
        return False
    return wait_healthy(check, options.timeout_s)


# -- the update ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _update_lock(layout: Layout) -> Iterator[None]:
    with (layout.root / ".update.lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise UpdateFailed("another update is running") from err
        yield


def apply_update(bundle: Path, options: UpdateOptions, check: HealthCheck) -> UpdateResult:
    """Install, switch, restart; on an unhealthy start switch back to the previous venv and raise."""
    layout = options.layout
    try:
        layout.venvs.mkdir(parents=True, exist_ok=True)
    except PermissionError as err:
        raise UpdateFailed(f"cannot write {layout.root}: run the update as root") from err
    with _update_lock(layout):
        previous = layout.current_venv()
        with tempfile.TemporaryDirectory(dir=layout.root, prefix=".bundle-") as tmp:
            index = open_bundle(bundle, Path(tmp))
            target = new_venv_path(layout, index.version)
            logger.info("installing %s into %s", index.version, target)
            try:
                build_venv(index, Path(tmp), target, options.python)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        switch(layout, target)
        if restart_and_check(options, check):
            prune(layout, options.keep, target.resolve(), previous)
            return UpdateResult(index.version, target, previous)
        raise _roll_back(options, check, target, previous, index.version)


def _roll_back(
    options: UpdateOptions, check: HealthCheck, failed: Path, previous: Path | None, version: str
) -> UpdateFailed:
    wait = f"{options.timeout_s:g} s"
    if previous is None:
        return UpdateFailed(f"{version} did not become healthy within {wait}; no previous venv to go back to")
    switch(options.layout, previous)
    healthy = restart_and_check(options, check)
    shutil.rmtree(failed, ignore_errors=True)
    state = "and it is healthy" if healthy else "but it is NOT healthy either: check the service log"
    return UpdateFailed(
        f"{version} did not become healthy within {wait}; rolled back to {previous.name} {state}"
    )
