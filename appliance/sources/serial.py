"""The serial link to a microcontroller (firmware-bridge protocol) and the source fed by it.

`SerialLink` owns the firmware-bridge Session on one port: it reopens the port after an unplug, hands
SENSOR_FRAME tensors to the `SerialSource` (newest window wins, drops counted) and TRIGGERs to the
result sink's queue. A TRIGGER is ACKed only once it is queued for inspection; with the queue full it
is NACKed BUSY (the device retries it), so an ACK always means "this part will be inspected".
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge import (
    Delivery,
    ErrorCode,
    IoSet,
    Message,
    Result,
    SensorFrame,
    SerialTransport,
    Session,
    TransportConfig,
    Trigger,
)

from appliance.config import SerialConfig
from appliance.sources.base import Frame, FrameCounter, LatestSlot, SourceState, SourceStatus

logger = logging.getLogger(__name__)

TRIGGER_QUEUE = 64
FRAME_REFS = 512  # how many recent SENSOR_FRAME seqs are remembered for RESULT.ref_seq
SESSION_STATES = {
    "ready": SourceState.CONNECTED,
    "connecting": SourceState.RECONNECTING,
    "link_lost": SourceState.LOST,
    "stopped": SourceState.STOPPED,
}


@dataclass(frozen=True)
class QueuedTrigger:
    trigger: Trigger
    arrived: float
    """time.monotonic() when it arrived: the deadlines of its RESULT and IO_SET count from here."""


class SerialLink:
    def __init__(self, config: SerialConfig) -> None:
        self.config = config
        transport = SerialTransport(config.port, TransportConfig(baudrate=config.baudrate))
        self.session = Session(transport, on_message=self._on_message, accept=self._accept)
        self.triggers: queue.Queue[QueuedTrigger] = queue.Queue(TRIGGER_QUEUE)
        self._frame_handler: Callable[[SensorFrame], None] | None = None
        self._frame_refs: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._refs_lock = threading.Lock()
        self.triggers_busy = 0
        self.frames_ignored = 0
        self._started = False

    def on_frames(self, handler: Callable[[SensorFrame], None]) -> None:
        self._frame_handler = handler

    def _accept(self, message: Message) -> int | None:
        """Runs on the reader thread before the ACK: a TRIGGER is ACKed only if it could be queued."""
        if not isinstance(message, Trigger) or not self.config.trigger:
            return None
        try:
            self.triggers.put_nowait(QueuedTrigger(message, time.monotonic()))
        except queue.Full:
            self.triggers_busy += 1
            logger.warning("photo-eye trigger seq %d refused (BUSY): %d waiting", message.seq, TRIGGER_QUEUE)
            return int(ErrorCode.BUSY)
        return None

    def _on_message(self, message: Message) -> None:
        """Runs on the link's reader thread: hand off and return at once."""
        if isinstance(message, SensorFrame):
            if self._frame_handler is None:
                self.frames_ignored += 1
            else:
                self._frame_handler(message)

    def note_frame(self, source: str, frame_id: int, seq: int) -> None:
        """Remember which SENSOR_FRAME a source frame came from (for RESULT.ref_seq)."""
        with self._refs_lock:
            self._frame_refs[(source, frame_id)] = seq
            while len(self._frame_refs) > FRAME_REFS:
                self._frame_refs.popitem(last=False)

    def frame_ref(self, source: str, frame_id: int) -> int | None:
        with self._refs_lock:
            return self._frame_refs.get((source, frame_id))

    def wall_time(self, device_ms: int) -> float | None:
        """Host wall-clock time of a device timestamp, if the clocks are synchronised (1.1)."""
        at = self.session.peer_time(device_ms)
        return None if at is None else time.time() - (time.monotonic() - at)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.session.start()
            logger.info("serial link on %s at %d baud", self.config.port, self.config.baudrate)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.session.stop()

    def send(self, message: Result | IoSet, expires_in: float | None = None) -> Delivery:
        """Never blocks; a message still un-ACKed after ``expires_in`` s is dropped (counted)."""
        return self.session.send(message, expires_in=expires_in)

    def enter_bootloader(self) -> Delivery:
        """Put the device into firmware-update mode (PROTOCOL.md R12); DROPPED if it cannot."""
        return self.session.enter_bootloader()

    def state(self) -> SourceState:
        return SESSION_STATES.get(self.session.state.value, SourceState.RECONNECTING)

    def status(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.session.stats().as_dict()
        stats.update(
            port=self.config.port,
            triggers_busy=self.triggers_busy,
            triggers_waiting=self.triggers.qsize(),
            frames_ignored=self.frames_ignored,
        )
        return stats


class SerialSource:
    """SENSOR_FRAME tensors from the microcontroller as frames; a live source (newest window wins).

    A frame's `ts` is the device's timestamp of its first sample mapped to host time when the link
    has time sync (protocol 1.1), else its arrival time (a 1.0 device)."""

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
        stamp = self.link.wall_time(message.timestamp_ms)
        frame = Frame(self.counter.frame(), time.time() if stamp is None else stamp, self.name, tensor=tensor)
        self.link.note_frame(self.name, frame.frame_id, message.seq)
        self._slot.put(frame)

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
