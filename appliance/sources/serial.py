"""The serial link to a microcontroller (firmware-bridge protocol) and the source fed by it.

`SerialLink` owns the firmware-bridge Session on one port: it reopens the port with backoff after an
unplug, hands SENSOR_FRAME tensors to the `SerialSource` (newest window wins, drops counted) and
TRIGGERs to whoever registered for them (the result sink runs inspections on its own thread).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from firmware_bridge import IoSet, Message, Result, SensorFrame, Session, Trigger

from appliance.config import SerialConfig
from appliance.sources.base import Frame, FrameCounter, LatestSlot, SourceState, SourceStatus

logger = logging.getLogger(__name__)

TRIGGER_QUEUE = 64
SESSION_STATES = {
    "ready": SourceState.CONNECTED,
    "connecting": SourceState.RECONNECTING,
    "link_lost": SourceState.LOST,
    "stopped": SourceState.STOPPED,
}


class SerialLink:
    def __init__(self, config: SerialConfig) -> None:
        self.config = config
        self.session = Session.open(config.port, baudrate=config.baudrate, on_message=self._on_message)
        self.triggers: queue.Queue[Trigger] = queue.Queue(TRIGGER_QUEUE)
        self._frame_handler: Callable[[SensorFrame], None] | None = None
        self.triggers_dropped = 0
        self.frames_ignored = 0
        self._started = False

    def on_frames(self, handler: Callable[[SensorFrame], None]) -> None:
        self._frame_handler = handler

    def _on_message(self, message: Message) -> None:
        """Runs on the link's reader thread: hand off and return at once."""
        if isinstance(message, SensorFrame):
            if self._frame_handler is None:
                self.frames_ignored += 1
            else:
                self._frame_handler(message)
        elif isinstance(message, Trigger):
            try:
                self.triggers.put_nowait(message)
            except queue.Full:
                self.triggers_dropped += 1

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.session.start()
            logger.info("serial link on %s at %d baud", self.config.port, self.config.baudrate)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.session.stop()

    def send(self, message: Result | IoSet) -> None:
        self.session.send(message)  # never blocks; delivery is tracked by the session's counters

    def state(self) -> SourceState:
        return SESSION_STATES.get(self.session.state.value, SourceState.RECONNECTING)

    def status(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.session.stats().as_dict()
        stats.update(
            port=self.config.port, triggers_dropped=self.triggers_dropped, frames_ignored=self.frames_ignored
        )
        return stats


class SerialSource:
    """SENSOR_FRAME tensors from the microcontroller as frames; a live source (newest window wins)."""

    kind = "serial"
    live = True

    def __init__(self, name: str, link: SerialLink) -> None:
        self.name = name
        self.link = link
        self.counter = FrameCounter()
        self._slot = LatestSlot(self.counter)

    @property
    def ended(self) -> bool:
        return False

    def _frame(self, message: SensorFrame) -> None:
        try:
            tensor = message.to_array()
        except ValueError as err:
            self.counter.error(f"bad sensor frame: {err}")
            return
        self._slot.put(Frame(self.counter.frame(), time.time(), self.name, tensor=tensor))

    def start(self) -> None:
        self.link.on_frames(self._frame)
        self.link.start()

    def read(self, timeout: float) -> Frame | None:
        return self._slot.take(timeout)

    def status(self) -> SourceStatus:
        c = self.counter
        link = self.link.status()
        reconnects = int(link.get("transport", {}).get("losses", 0))
        return SourceStatus(
            self.name,
            self.kind,
            self.link.state().value,
            True,
            c.fps(),
            c.frames,
            c.dropped,
            c.errors,
            reconnects,
            c.last_error,
            {"serial": link},
        )

    def stop(self) -> None:
        self.link.on_frames(lambda _message: None)
