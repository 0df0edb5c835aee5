"""Where a session puts received application messages: a callback or a bounded queue."""

import logging
import queue
import threading
from collections.abc import Callable

from firmware_bridge.messages import Message

logger = logging.getLogger(__name__)

MessageCallback = Callable[[Message], None]


class Inbox:
    """Delivers messages to ``callback`` if given, else into a bounded FIFO read with :meth:`receive`.

    When the queue is full the *oldest* message is dropped (counted in ``dropped``); sessions check
    :meth:`has_room` first for reliable messages and NACK them with BUSY instead, so only
    unreliable messages (sensor frames) are ever dropped. Thread-safe.
    """

    def __init__(self, capacity: int, callback: MessageCallback | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"inbox capacity must be >= 1, got {capacity}")
        self._callback = callback
        self._queue: queue.Queue[Message] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self.delivered = 0
        self.dropped = 0
        self.callback_errors = 0

    @property
    def uses_callback(self) -> bool:
        return self._callback is not None

    def has_room(self) -> bool:
        return self._callback is not None or not self._queue.full()

    def deliver(self, message: Message) -> bool:
        """Hand over ``message``; ``False`` only if the callback raised."""
        with self._lock:
            self.delivered += 1
        if self._callback is not None:
            try:
                self._callback(message)
            except Exception:
                logger.exception("on_message callback failed for %s", message.TYPE.name)
                with self._lock:
                    self.callback_errors += 1
                return False
            return True
        while True:
            try:
                self._queue.put_nowait(message)
                return True
            except queue.Full:
                self._drop_oldest()

    def receive(self, timeout: float | None = None) -> Message | None:
        if self._callback is not None:
            raise RuntimeError("messages go to on_message; receive() is only for queue mode")
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _drop_oldest(self) -> None:
        try:
            dropped = self._queue.get_nowait()
        except queue.Empty:
            return
        with self._lock:
            self.dropped += 1
        logger.warning("receive queue full: dropped %s seq=%d", dropped.TYPE.name, dropped.seq)
