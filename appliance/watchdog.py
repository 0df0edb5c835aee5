"""systemd notifications: READY=1 once serving, WATCHDOG=1 while healthy, STOPPING=1 on the way out.

A plain datagram to $NOTIFY_SOCKET (the sd_notify protocol); without that variable (not started by
systemd) everything here does nothing. The watchdog pings only while `healthy()` holds, so a wedged
pipeline or writer gets the service restarted by systemd (WatchdogSec in the unit).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 10.0


class Watchdog:
    def __init__(self, healthy: Callable[[], bool]) -> None:
        self._healthy = healthy
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else DEFAULT_INTERVAL_S
        self.pinging = bool(usec)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unhealthy_since: float | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as err:
            logger.warning("sd_notify %s failed: %s", message, err)

    def start(self) -> None:
        self.notify("READY=1")
        if self.enabled and self.pinging:
            self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self._healthy():
                self.notify("WATCHDOG=1")
            else:
                logger.error("unhealthy: not pinging the systemd watchdog (the service will be restarted)")

    def stop(self) -> None:
        self._stop.set()
        self.notify("STOPPING=1")
        if self._thread is not None:
            self._thread.join(timeout=5)
