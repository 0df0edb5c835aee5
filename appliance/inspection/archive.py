"""The NG-first image archive: every NG image, OK images at a sample rate, under a disk quota.

Files are named `<UTC time>_job<NNN>_<NG|OK>_<seq>.jpg`, e.g. `20261201T224501.123456Z_job007_NG_42.jpg`,
so that name order is time order. When the archive grows over its quota it deletes OK images,
oldest first, and only when no OK image is left NG images, oldest first. Each file is written to a
temp file, fsynced and renamed, so a listing never shows half an image.

With an `FtpTarget`, every archived image is also queued for upload. A worker thread uploads it
(as `<name>.part`, renamed when complete) and retries every `retry_s` while the server is down or
refuses; the queue is bounded (the oldest pending upload is dropped when full, and counted). Each
queued image has an empty marker file in `.push/` beside it, made before it is queued and removed once
it is stored on the server (or deleted by the quota, or dropped): after a restart or a power cut the
pusher queues every marked image again, oldest first, so no image is left unpushed. A marker made in
the last instant before a power cut may be lost with it (markers are not fsynced); an image whose
upload was cut off may be stored twice (the `.part` name is overwritten, then renamed again).
SFTP and SMB targets are not implemented.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance import atomic
from appliance.inspection.recipe import SnapshotPolicy

logger = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)_job(\d{3})_(NG|OK)_(\d+)\.jpg$")
JPEG_QUALITY = 90
PUSH_MARKS = ".push"  # folder in the archive: one empty file per image still to upload


@dataclass(frozen=True)
class FtpTarget:
    host: str
    port: int = 21
    user: str = "anonymous"
    password: str = ""
    directory: str = ""
    timeout_s: float = 10.0
    retry_s: float = 5.0
    queue_size: int = 1000


@dataclass(frozen=True)
class ArchivedImage:
    path: Path
    ts: str
    job: int
    ng: bool
    seq: int
    size: int


def archive_name(job: int, ok: bool, ts: float, seq: int) -> str:
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}_job{job:03d}_{'OK' if ok else 'NG'}_{seq}.jpg"


def parse_name(path: Path, size: int) -> ArchivedImage | None:
    match = NAME.match(path.name)
    if match is None:
        return None
    stamp, job, verdict, seq = match.groups()
    return ArchivedImage(path, stamp, int(job), verdict == "NG", int(seq), size)


class OkSampler:
    """Keeps OK images at `rate` evenly (rate 0.25: the 4th, 8th, ... OK image), no randomness."""

    def __init__(self) -> None:
        self._seen: dict[float, int] = {}

    def take(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        n = self._seen.get(rate, 0) + 1
        self._seen[rate] = n
        return int(n * rate) > int((n - 1) * rate)


class Archive:
    """The image archive in `root`; thread-safe."""

    def __init__(self, root: Path, quota_bytes: int, ftp: FtpTarget | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.quota_bytes = root, quota_bytes
        self._lock = threading.Lock()
        self._sampler = OkSampler()
        self._files = self._scan()
        self.write_errors = 0
        self.pusher = FtpPusher(ftp, root / PUSH_MARKS) if ftp is not None else None

    def _scan(self) -> list[ArchivedImage]:
        found = []
        for path in self.root.iterdir():
            if path.name.startswith(".tmp-") and path.is_file():
                path.unlink(missing_ok=True)  # a write that a crash interrupted
                continue
            with contextlib.suppress(OSError):
                item = parse_name(path, path.stat().st_size)
                if item is not None:
                    found.append(item)
        return sorted(found, key=lambda f: f.path.name)

    def wanted(self, ok: bool, policy: SnapshotPolicy) -> bool:
        """Whether the policy keeps this verdict's image (call once per verdict: it samples OKs)."""
        if policy.keep == "none":
            return False
        if not ok:
            return True
        with self._lock:
            return policy.keep == "all" and self._sampler.take(policy.ok_sample_rate)

    def keep(self, image: np.ndarray | bytes, job: int, ok: bool, ts: float, seq: int) -> Path | None:
        """Store one image (a BGR frame is JPEG-encoded); None when it could not be stored."""
        data = image if isinstance(image, bytes) else _encode(image)
        if data is None or len(data) > self.quota_bytes:
            self.write_errors += 1
            logger.warning(
                "archive: image of job %d seq %d not kept (cannot encode or over the quota)", job, seq
            )
            return None
        path = self.root / archive_name(job, ok, ts, seq)
        with self._lock:
            try:
                self._make_room(len(data))
                atomic.write_bytes(path, data)
            except OSError as err:
                self.write_errors += 1
                logger.warning("archive: cannot write %s: %s", path.name, err)
                return None
            item = parse_name(path, len(data))
            if item is not None:
                self._files = sorted([*self._files, item], key=lambda f: f.path.name)
        if self.pusher is not None:
            self.pusher.push(path)
        return path

    def _make_room(self, incoming: int) -> None:
        total = sum(f.size for f in self._files)
        while self._files and total + incoming > self.quota_bytes:
            victim = next((f for f in self._files if not f.ng), self._files[0])
            victim.path.unlink(missing_ok=True)
            if self.pusher is not None:
                self.pusher.forget(victim.path)
            self._files = [f for f in self._files if f is not victim]
            total -= victim.size

    def images(self, ng_only: bool = False) -> list[ArchivedImage]:
        """Archived images, newest first."""
        with self._lock:
            files = list(reversed(self._files))
        return [f for f in files if f.ng] if ng_only else files

    def used_bytes(self) -> int:
        with self._lock:
            return sum(f.size for f in self._files)

    def close(self) -> None:
        if self.pusher is not None:
            self.pusher.close()


def _encode(image: np.ndarray) -> bytes | None:
    try:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    except cv2.error:
        return None
    return encoded.tobytes() if ok else None


class FtpPusher:
    """Uploads queued files to one FTP server in a worker thread, retrying until each is stored; the
    queue is mirrored by marker files in `marks`, so that it survives a restart."""

    def __init__(self, target: FtpTarget, marks: Path) -> None:
        self.target, self.marks = target, marks
        self._queue: deque[Path] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.pushed = 0
        self.failures = 0
        self.dropped = 0
        self.last_error: str | None = None
        marks.mkdir(exist_ok=True)
        self.resumed = self._resume(marks.parent)
        self._thread = threading.Thread(target=self._run, name="archive-ftp", daemon=True)
        self._thread.start()

    def _resume(self, root: Path) -> int:
        """Queue the images an earlier run left marked (name order is time order); forget the rest."""
        for mark in sorted(self.marks.iterdir()):
            image = root / mark.name
            if image.is_file():
                self._enqueue(image)
            else:
                mark.unlink(missing_ok=True)
        if self._queue:
            logger.info(
                "archive: %d image(s) not yet pushed to %s are queued again",
                len(self._queue),
                self.target.host,
            )
        return len(self._queue)

    def push(self, path: Path) -> None:
        with contextlib.suppress(OSError):  # no marker (disk full): pushed all the same, if not resumed
            (self.marks / path.name).touch()
        with self._cond:
            self._enqueue(path)
            self._cond.notify()

    def _enqueue(self, path: Path) -> None:
        if len(self._queue) >= self.target.queue_size:
            self.forget(self._queue.popleft())
            self.dropped += 1
        self._queue.append(path)

    def forget(self, path: Path) -> None:
        """The image needs no upload any more (stored, deleted or dropped): remove its marker."""
        (self.marks / path.name).unlink(missing_ok=True)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def status(self) -> dict[str, Any]:
        return {
            "pending": self.pending(),
            "pushed": self.pushed,
            "failures": self.failures,
            "dropped": self.dropped,
            "resumed": self.resumed,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                path = self._queue[0]
            if self._upload(path):
                self.forget(path)
                with self._cond:
                    if self._queue and self._queue[0] == path:
                        self._queue.popleft()
                continue
            with self._cond:
                self._cond.wait_for(lambda: self._stop, timeout=self.target.retry_s)

    def _upload(self, path: Path) -> bool:
        t = self.target
        try:
            with path.open("rb") as fh, ftplib.FTP(timeout=t.timeout_s) as ftp:
                ftp.connect(t.host, t.port)
                ftp.login(t.user, t.password)
                if t.directory:
                    ftp.cwd(t.directory)
                ftp.storbinary(f"STOR {path.name}.part", fh)
                ftp.rename(f"{path.name}.part", path.name)
        except FileNotFoundError:
            return True  # deleted by the quota before it was pushed: nothing to push
        except (OSError, EOFError, ftplib.Error) as err:
            self.failures += 1
            self.last_error = f"{path.name}: {err}"
            logger.warning(
                "archive: FTP push to %s:%d failed (%s); retrying in %.0f s", t.host, t.port, err, t.retry_s
            )
            return False
        self.pushed += 1
        self.last_error = None
        return True

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=self.target.timeout_s + 5)
