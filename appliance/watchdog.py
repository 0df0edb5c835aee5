"""systemd notifications: READY=1 once serving, WATCHDOG=1 while healthy, STOPPING=1 on the way out.

A plain datagram to $NOTIFY_SOCKET (the sd_notify protocol); without that variable (not started by
systemd) everything here does nothing. The ping is sent only while the health object says no part of
the process is dead (Health.feed_watchdog: no fault; appliance/health.py), so a wedged pipeline or
writer gets the service restarted by systemd (WatchdogSec in the unit). Conditions a restart cannot
cure (no model installed, disk full, camera unplugged) answer 503 on the health endpoints but keep
the ping going. The server runs as a child of `appliance serve`, so the unit has NotifyAccess=all.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from appliance.health import Health

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 10.0


def notify_address() -> str:
    address = os.environ.get("NOTIFY_SOCKET", "")
    return "\0" + address[1:] if address.startswith("@") else address


def sd_notify(message: str) -> None:
    """One sd_notify datagram; nothing without $NOTIFY_SOCKET."""
    address = notify_address()
    if not address:
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as err:
        logger.warning("sd_notify %s failed: %s", message.replace("\n", " "), err)


def watchdog_usec() -> int:
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) if usec.isdigit() else 0


def extend_for_restart(seconds: float) -> None:
    """Called by the supervisor between two servers: one ping and a longer timeout for the start."""
    if watchdog_usec():
        sd_notify(f"WATCHDOG=1\nWATCHDOG_USEC={int(seconds * 1e6)}")


class Watchdog:
    def __init__(self, health: Callable[[], Health]) -> None:
        self._health = health
        self._address = notify_address()
        usec = watchdog_usec()
        self.interval_s = usec / 2e6 if usec > 0 else DEFAULT_INTERVAL_S
        self.pinging = usec > 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, message: str) -> None:
        sd_notify(message)

    def start(self) -> None:
        self.notify("READY=1")
        if self.enabled and self.pinging:
            # the supervisor may have lengthened the timeout for this start: back to the unit's
            self.notify(f"WATCHDOG_USEC={watchdog_usec()}")
            self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last: tuple[str, ...] = ()
        while not self._stop.wait(self.interval_s):
            health = self._health()
            if health.feed_watchdog:
                self.notify("WATCHDOG=1")
            if health.reasons != last:
                self._report(health)
                last = health.reasons

    def _report(self, health: Health) -> None:
        if not health.reasons:
            logger.info("healthy again")
        elif health.faults:
            logger.error("unhealthy, not pinging the systemd watchdog: %s", "; ".join(health.faults))
        else:
            logger.warning("not producing results: %s", "; ".join(health.reasons))

    def stop(self, restarting: bool = False) -> None:
        """STOPPING=1 tells systemd the service goes down: not sent when the supervisor restarts it."""
        self._stop.set()
        if not restarting:
            self.notify("STOPPING=1")
        if self._thread is not None:
            self._thread.join(timeout=5)
