"""Free space on the data filesystem: the configured reserve, and a small emergency file.

On a full disk even a DELETE cannot commit: its pages go to the WAL, and a WAL that has to grow
gets SQLITE_FULL (tests/test_store_disk.py shows it on a real tmpfs). So the store keeps a small
file of real, allocated blocks next to the database, and unlinks it when a commit fails for want
of space; the freed blocks let that commit (and the deletes that win the space back) go through.
The file is put back once free space is above the reserve again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from pathlib import Path

from appliance.store.database import FILE_MODE

logger = logging.getLogger(__name__)

EMERGENCY_NAME = ".store-emergency"
EMERGENCY_MAX = 8 * 1024**2  # room for a WAL of 1000 pages (SQLite's autocheckpoint) and then some
SQLITE_FULL = 13


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def disk_full(err: BaseException) -> bool:
    """True for an out-of-space error from the OS or from SQLite."""
    if isinstance(err, sqlite3.Error):
        return (getattr(err, "sqlite_errorcode", 0) & 0xFF) == SQLITE_FULL
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskSpace:
    def __init__(self, data_dir: Path, min_free: int) -> None:
        self.data_dir = data_dir
        self._emergency = data_dir / EMERGENCY_NAME
        self.min_free = self.emergency_bytes = 0
        self.set_reserve(min_free)

    def set_reserve(self, min_free: int) -> None:
        self.min_free = min_free
        self.emergency_bytes = min(EMERGENCY_MAX, min_free // 4)

    def free(self) -> int:
        """Bytes an unprivileged process can still write on the data filesystem."""
        st = os.statvfs(self.data_dir)
        return int(st.f_bavail * st.f_frsize)

    def low(self, free: int) -> bool:
        return self.min_free > 0 and free < self.min_free

    def target(self) -> int:
        """Free bytes to reach once under the reserve: room for the emergency file and 10 % more,
        so cleanup is not per batch."""
        return self.min_free + self.emergency_bytes + self.min_free // 10

    def release(self) -> bool:
        """Unlink the emergency file; True if that freed anything."""
        try:
            self._emergency.unlink()
        except FileNotFoundError:
            return False
        logger.warning("disk full: released the %s emergency file", megabytes(self.emergency_bytes))
        return True

    def restore(self, free: int) -> None:
        """Put the emergency file back when there is room for it above the reserve."""
        size = self.emergency_bytes
        if size <= 0 or free < self.min_free + size:
            return
        with contextlib.suppress(FileNotFoundError):
            if self._emergency.stat().st_size >= size:
                return
        try:
            fd = os.open(self._emergency, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.posix_fallocate(fd, 0, size)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            logger.warning("could not create the emergency file: %s", err)
            with contextlib.suppress(OSError):
                self._emergency.unlink()
