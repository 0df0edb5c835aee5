"""Model registry on disk: DATA/models/<name>/<version>/{model file, manifest.json} plus state.json.

Adding validates the model with LiteRT before anything is written to its final place (a staging folder
is renamed into place), so a rejected model leaves the registry unchanged. Activation and rollback
rewrite state.json atomically (write, fsync, rename) under a file lock shared with other processes,
so `appliance models activate` works against a running server, which watches the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import atomic
from appliance.errors import Conflict, ModelRejected, NotFound
from appliance.models.manifest import (
    DecoderSpec,
    InputSpec,
    Manifest,
    Thresholds,
    check_name,
    check_options,
    manifest_from_json,
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATE = "state.json"
SUFFIXES = (".tflite", ".rknn")
HASH_CHUNK = 1 << 20

Validator = Callable[[Manifest, Path], Manifest]


@dataclass(frozen=True)
class AddRequest:
    """Everything `models add` needs besides the file."""

    source: Path
    task: str
    name: str = ""
    labels: tuple[str, ...] = ()
    input: InputSpec = field(default_factory=InputSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    decoder: DecoderSpec = field(default_factory=DecoderSpec)
    description: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    atomic.write_bytes(path, json.dumps(data, indent=2).encode("utf-8"))


def check_activatable(manifest: Manifest) -> None:
    """A version whose conversion check failed is kept for inspection but never activated."""
    report = manifest.report
    if report is not None and report.get("passed") is False and not report.get("forced"):
        problems = "; ".join(report.get("problems", []))
        raise Conflict(
            f"model {manifest.ref} failed its conversion check ({problems}); "
            "convert it again or lower the thresholds"
        )


class Registry:
    def __init__(self, root: Path, validator: Validator) -> None:
        self.root = root
        self._validate = validator
        root.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.root / STATE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"active": None, "history": []}
        except (OSError, json.JSONDecodeError) as err:
            raise ModelRejected(f"registry state {self.root / STATE} is damaged: {err}") from err
        return data

    def state_version(self) -> float:
        """Changes whenever activation state changes (mtime of state.json), for watchers."""
        try:
            return (self.root / STATE).stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return 0.0

    def version_dir(self, name: str, version: int) -> Path:
        return self.root / check_name(name) / str(int(version))

    def files_of(self, manifest: Manifest) -> dict[str, Path]:
        folder = self.version_dir(manifest.name, manifest.version)
        return {suffix: folder / file for suffix, file in manifest.files.items()}

    def get(self, name: str, version: int | None = None) -> Manifest:
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"no model named {name!r}")
        if version is None:
            return versions[-1]
        for manifest in versions:
            if manifest.version == version:
                return manifest
        raise NotFound(f"model {name!r} has no version {version}")

    def versions(self, name: str) -> list[Manifest]:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.iterdir():
            if path.name.isdigit() and (path / MANIFEST).exists():
                try:
                    found.append(self._read(path))
                except ModelRejected as err:  # one damaged version must not hide the others
                    logger.error("skipping model version %s: %s", path, err)
        return sorted(found, key=lambda m: m.version)

    def list(self) -> list[Manifest]:
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return [m for name in names for m in self.versions(name)]

    def _read(self, folder: Path) -> Manifest:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelRejected(f"manifest is damaged: {err}") from err
        return manifest_from_json(data)

    def active(self) -> Manifest | None:
        active = self._state().get("active")
        if not active:
            return None
        try:
            return self.get(active[0], int(active[1]))
        except NotFound:
            logger.error("active model %s:%s is missing from the registry", active[0], active[1])
            return None

    def verify(self, manifest: Manifest) -> None:
        """The model file is there and has the checksum recorded when it was added."""
        path = self.version_dir(manifest.name, manifest.version) / manifest.file
        try:
            digest = sha256_of(path)
        except OSError as err:
            raise ModelRejected(f"model {manifest.ref}: cannot read {path}: {err.strerror}") from err
        if digest != manifest.sha256:
            raise ModelRejected(
                f"model {manifest.ref}: {path.name} is corrupt (its checksum differs from the manifest)"
            )

    def history(self) -> tuple[Manifest, ...]:
        """Previously active versions that still exist, most recent first (no duplicates)."""
        state = self._state()
        active = state.get("active")
        seen = {tuple(active)} if active else set()
        found = []
        for entry in reversed(state.get("history", [])):
            key = (entry[0], int(entry[1]))
            if key in seen:
                continue
            seen.add(key)
            try:
                found.append(self.get(key[0], key[1]))
            except NotFound:
                continue
        return tuple(found)

    def previous(self) -> Manifest:
        """What `rollback()` would activate."""
        state = self._state()
        for name, version in reversed(state.get("history", [])):
            try:
                return self.get(name, int(version))
            except NotFound:
                continue
        raise Conflict("nothing to roll back to: no earlier active model")

    def add(self, request: AddRequest) -> Manifest:
        """Validate and store a model as the next version of its name. Nothing changes on failure."""
        source = request.source
        suffix = source.suffix.lower()
        if suffix not in SUFFIXES:
            raise ModelRejected(f"{source.name}: model files must end in {' or '.join(SUFFIXES)}")
        if not source.is_file():
            raise ModelRejected(f"{source}: no such file")
        name = check_name(request.name or source.stem)
        check_options(request.task, request.input, request.decoder)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".staging-"))
        try:
            shutil.copyfile(source, staging / f"model{suffix}")
            draft = Manifest(
                name=name,
                version=0,
                task=request.task,
                file=f"model{suffix}",
                sha256=sha256_of(staging / f"model{suffix}"),
                size=source.stat().st_size,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                labels=request.labels,
                input=request.input,
                thresholds=request.thresholds,
                decoder=request.decoder,
                files={suffix: f"model{suffix}"},
                description=request.description,
            )
            try:
                checked = self._validate(draft, staging / f"model{suffix}")
            except ModelRejected as err:
                raise ModelRejected(f"{source.name}: {err}") from err
            with self._locked():
                folder = self.root / name
                taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
                manifest = dataclasses.replace(checked, version=max(taken, default=0) + 1)  # damaged ones too
                write_json_atomic(staging / MANIFEST, manifest.to_json())
                (self.root / name).mkdir(exist_ok=True)
                os.rename(staging, self.version_dir(name, manifest.version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("model %s added (%s, %s)", manifest.ref, manifest.task, manifest.sha256[:12])
        return manifest

    def activate(self, name: str, version: int | None = None) -> Manifest:
        with self._locked():
            manifest = self.get(name, version)
            check_activatable(manifest)
            state = self._state()
            current = state.get("active")
            if current and list(current) != [manifest.name, manifest.version]:
                state["history"] = [*state.get("history", []), current][-50:]
            state["active"] = [manifest.name, manifest.version]
            write_json_atomic(self.root / STATE, state)
        logger.info("model %s activated", manifest.ref)
        return manifest

    def rollback(self) -> Manifest:
        """Re-activate the model that was active before the current one."""
        with self._locked():
            state = self._state()
            history = list(state.get("history", []))
            while history:
                name, version = history.pop()
                try:
                    manifest = self.get(name, int(version))
                except NotFound:
                    continue
                state.update(active=[name, int(version)], history=history)
                write_json_atomic(self.root / STATE, state)
                logger.info("rolled back to model %s", manifest.ref)
                return manifest
        raise Conflict("nothing to roll back to: no earlier active model")

    def record_promotion(self, name: str, version: int, promotion: dict[str, Any] | None) -> Manifest:
        """Rewrite one version's manifest with its promotion record (atomically); returns the old one."""
        with self._locked():
            manifest = self.get(name, version)
            updated = dataclasses.replace(manifest, promotion=promotion)
            write_json_atomic(self.version_dir(name, version) / MANIFEST, updated.to_json())
        logger.info("model %s: promotion recorded (%s)", manifest.ref, promotion)
        return manifest

    def delete(self, name: str, version: int) -> None:
        with self._locked():
            manifest = self.get(name, version)
            active = self._state().get("active")
            if active and list(active) == [manifest.name, manifest.version]:
                raise Conflict(f"model {manifest.ref} is active; activate another one first")
            shutil.rmtree(self.version_dir(name, version))
