"""Job recipes on disk beside the model registry: data_dir/jobs/<number>/v<version>.json.

Every save writes a new version (never overwrites one): the file is written to a temp file, fsynced,
then hard-linked to its version name (the version lives in the name, not in the file),
which fails if another writer took that version first (the save then takes the next one), and
the directory is fsynced. The newest version of a job is the current one.

Export writes one JSON document with the current version of every (or the chosen) job; import reads
such a document as JSON or TOML, validates every job in it first and saves them only when all are
valid, so a bad file changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.errors import NotFound
from appliance.inspection.recipe import MAX_JOB, MIN_JOB, Job, RecipeError, parse_job

FORMAT = "appliance-jobs"
FORMAT_VERSION = 1
MAX_DOCUMENT_BYTES = 1 << 20
VERSION_FILE = re.compile(r"^v([0-9]{1,9})\.json$")


def jobs_dir(data_dir: Path) -> Path:
    return data_dir / "jobs"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_number(number: int) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or not MIN_JOB <= number <= MAX_JOB:
        raise NotFound(f"job numbers are {MIN_JOB}..{MAX_JOB}, got {number!r}")
    return number


class JobStore:
    """Versioned job recipes in one directory; safe for several threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _dir(self, number: int) -> Path:
        return self.root / f"{_check_number(number):03d}"

    def versions(self, number: int) -> list[int]:
        folder = self._dir(number)
        if not folder.is_dir():
            return []
        found = (VERSION_FILE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def numbers(self) -> list[int]:
        names = (p.name for p in self.root.iterdir() if p.is_dir())
        return sorted(int(n) for n in names if n.isdigit() and MIN_JOB <= int(n) <= MAX_JOB)

    def get(self, number: int, version: int | None = None) -> Job:
        versions = self.versions(number)
        if not versions:
            raise NotFound(f"no job {number}")
        chosen = versions[-1] if version is None else version
        if chosen not in versions:
            raise NotFound(f"job {number} has no version {version} (versions: {versions})")
        path = self._dir(number) / f"v{chosen}.json"
        try:
            job = parse_job(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RecipeError([f"stored job {number} v{chosen} ({path}) is damaged: {err}"]) from err
        return replace(job, version=chosen)

    def jobs(self) -> list[Job]:
        """The current version of every job (a damaged one raises RecipeError naming it)."""
        return [self.get(n) for n in self.numbers() if self.versions(n)]

    def save(self, job: Job) -> Job:
        """Store `job` as a new version of its number; returns it with that version."""
        folder = self._dir(job.number)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".save-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                data = job.to_json()
                del data["version"]  # the file name says which version it is
                json.dump(data, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            version = self._link(folder, Path(tmp))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(folder)
        return replace(job, version=version)

    def _link(self, folder: Path, tmp: Path) -> int:
        existing = self.versions(int(folder.name))
        version = (existing[-1] if existing else 0) + 1
        while True:
            try:
                os.link(tmp, folder / f"v{version}.json")
                return version
            except FileExistsError:
                version += 1

    def delete(self, number: int) -> None:
        """Remove a job and all its versions (moved aside first, so readers never see half of it)."""
        folder = self._dir(number)
        if not folder.is_dir():
            raise NotFound(f"no job {number}")
        trash = self.root / f".deleted-{number:03d}-{time.time_ns()}"
        os.rename(folder, trash)
        _fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------ export / import
    def export(self, numbers: list[int] | None = None) -> bytes:
        jobs = self.jobs() if numbers is None else [self.get(n) for n in numbers]
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "jobs": [j.to_json() for j in jobs]}
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    def import_document(self, data: bytes, filename: str = "") -> list[Job]:
        """Validate every job of the document, then save each as a new version. All or nothing."""
        jobs = parse_document(data, filename)
        return [self.save(job) for job in jobs]

    def import_file(self, path: Path) -> list[Job]:
        try:
            size = path.stat().st_size
            if size > MAX_DOCUMENT_BYTES:
                raise RecipeError([f"{path}: {size} bytes, the limit is {MAX_DOCUMENT_BYTES}"])
            data = path.read_bytes()
        except OSError as err:
            raise RecipeError([f"{path}: cannot read: {err.strerror or err}"]) from err
        return self.import_document(data, path.name)


def _decode(data: bytes, filename: str) -> Any:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise RecipeError([f"document is {len(data)} bytes, the limit is {MAX_DOCUMENT_BYTES}"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError([f"document is not UTF-8 text: {err}"]) from err
    as_toml = filename.lower().endswith(".toml") or not text.lstrip().startswith(("{", "["))
    try:
        return tomllib.loads(text) if as_toml else json.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RecipeError([f"not valid TOML: {err}"]) from err
    except (json.JSONDecodeError, RecursionError) as err:
        raise RecipeError([f"not valid JSON: {err}"]) from err


def parse_document(data: bytes, filename: str = "") -> list[Job]:
    """The jobs of an export document (JSON or TOML), or one bare job; RecipeError lists every problem."""
    value = _decode(data, filename)
    if isinstance(value, dict) and "jobs" not in value and "format" not in value:
        value = {"format": FORMAT, "jobs": [value]}  # a single job, as written by hand
    if not isinstance(value, dict):
        raise RecipeError([f"document must be a table/object with a jobs list, got {type(value).__name__}"])
    problems: list[str] = []
    if value.get("format") != FORMAT:
        problems.append(f"format: must be {FORMAT!r}, got {str(value.get('format'))[:40]!r}")
    items = value.get("jobs")
    if not isinstance(items, list) or not items:
        raise RecipeError([*problems, "jobs: must be a non-empty list of jobs"])
    jobs: list[Job] = []
    for i, item in enumerate(items):
        try:
            jobs.append(parse_job(item))
        except RecipeError as err:
            problems.extend(f"jobs[{i}].{p}" for p in err.problems)
    numbers = [j.number for j in jobs]
    problems.extend(
        f"jobs: number {n} appears twice" for n in sorted({n for n in numbers if numbers.count(n) > 1})
    )
    if problems:
        raise RecipeError(problems)
    return jobs
