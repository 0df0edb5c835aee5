"""A pty pair standing in for a USB-serial cable, for the simulator and tests.

The *slave* path is what a serial client (``SerialTransport``) opens; the *master* fd is the
device end (use it with :class:`firmware_bridge.fdtransport.FdTransport`). With ``link`` set, a
symlink at that path always points at the current slave, so "unplug" (:meth:`close`) followed by
"replug" (:meth:`open`) gives clients a stable path even though the pty number changes.
"""

import logging
import os
import tty
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)


class VirtualPort:
    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self._link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""

    @property
    def is_open(self) -> bool:
        return self._master is not None

    @property
    def master_fd(self) -> int:
        if self._master is None:
            raise RuntimeError("VirtualPort is closed")
        return self._master

    @property
    def slave_path(self) -> str:
        return self._slave_path

    @property
    def path(self) -> str:
        """The path clients should open: the symlink if configured, else the slave device."""
        return str(self._link) if self._link is not None else self._slave_path

    def open(self) -> None:
        """Create a new pty pair in raw mode and point the symlink at its slave ("plug in")."""
        if self._master is not None:
            raise RuntimeError("VirtualPort already open")
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        if self._link is not None:
            tmp = self._link.with_name(f".{self._link.name}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self._slave_path)
            tmp.replace(self._link)
        logger.info("virtual port %s -> %s", self.path, self._slave_path)

    def close(self) -> None:
        """Close both ends ("unplug"): clients of the slave get I/O errors. The symlink is kept."""
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def remove_link(self) -> None:
        if self._link is not None:
            self._link.unlink(missing_ok=True)

    def __enter__(self) -> "VirtualPort":
        if not self.is_open:
            self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        self.remove_link()
