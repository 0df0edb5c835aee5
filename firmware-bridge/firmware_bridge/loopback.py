"""In-memory transport pair (no OS resources), for tests of code built on a Session.

Each end delivers received bytes from its own thread, like a real transport. ``set_link(False)``
simulates an unplugged cable on both ends; ``drop`` (a predicate on each written chunk) simulates
lost frames.
"""

import queue
import threading
from collections.abc import Callable

from firmware_bridge.transport import (
    DataCallback,
    LinkMonitor,
    LinkState,
    MonitoredTransport,
    StateCallback,
)

DropFilter = Callable[[bytes], bool]


class LoopbackTransport(MonitoredTransport):
    def __init__(self, name: str = "loopback") -> None:
        self._monitor = LinkMonitor(name)
        self._inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._peer: LoopbackTransport | None = None
        self._link_up = True
        self._thread: threading.Thread | None = None
        self.drop: DropFilter | None = None

    @classmethod
    def pair(cls) -> tuple["LoopbackTransport", "LoopbackTransport"]:
        """Two connected ends, ``("a", "b")``."""
        a, b = cls("loopback-a"), cls("loopback-b")
        a._peer, b._peer = b, a
        return a, b

    def start(self, on_data: DataCallback, on_state: StateCallback) -> None:
        if self._thread is not None:
            raise RuntimeError("LoopbackTransport already started")
        self._monitor.attach(on_data, on_state)
        self._thread = threading.Thread(target=self._run, name="loopback-rx", daemon=True)
        self._thread.start()
        if self._link_up:
            self._monitor.count("opens")
            self._monitor.set_state(LinkState.CONNECTED)

    def stop(self) -> None:
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join()
            self._thread = None
        self._monitor.set_state(LinkState.DISCONNECTED)

    def write(self, data: bytes) -> bool:
        peer = self._peer
        if not self._link_up or self._thread is None or peer is None:
            self._monitor.count("writes_dropped")
            return False
        self._monitor.count("bytes_tx", len(data))
        if self.drop is None or not self.drop(data):
            peer._inbox.put(bytes(data))
        return True

    def set_link(self, up: bool) -> None:
        """Plug (``True``) or unplug (``False``) the virtual cable; affects both ends."""
        for end in (self, self._peer):
            if end is not None:
                end._set_link(up)

    def _set_link(self, up: bool) -> None:
        self._link_up = up
        if self._thread is None:
            return
        if up:
            self._monitor.count("opens")
            self._monitor.set_state(LinkState.CONNECTED)
        else:
            self._monitor.failure("losses", "unplugged")
            self._monitor.set_state(LinkState.LOST)

    def _run(self) -> None:
        while True:
            data = self._inbox.get()
            if data is None:
                return
            if self._link_up:
                self._monitor.deliver(data)
