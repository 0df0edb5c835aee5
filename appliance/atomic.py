"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The data goes to a temporary file in the same folder, is flushed and fsynced, renamed over the
target, and the folder is fsynced so the rename itself survives a power cut. On any failure the
temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DEFAULT_MODE = 0o640


def write_bytes(path: Path, data: bytes, mode: int = DEFAULT_MODE) -> None:
    """Replace `path` by `data` atomically, with permissions `mode`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mode_of(path: Path, default: int = DEFAULT_MODE) -> int:
    """The permissions an existing file has (kept when it is rewritten), else `default`."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return default
