"""Session state machine value and change notification."""

import logging
import threading
from collections.abc import Callable
from enum import StrEnum

logger = logging.getLogger(__name__)


class SessionState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    """Transport down or handshake not complete since it (re)connected."""
    READY = "ready"
    LINK_LOST = "link_lost"
    """Was ready, then nothing was received for ``link_timeout_s``; HELLO requests are being sent."""


StateListener = Callable[[SessionState], None]


class StateTracker:
    """Current state, a ``ready`` event, and listeners called later via :meth:`announce`.

    :meth:`set` is cheap and may be called under the session lock; :meth:`announce` must be called
    without it, so listeners can call back into the session.
    """

    def __init__(self) -> None:
        self._state = SessionState.STOPPED
        self._lock = threading.Lock()
        self._changes: list[SessionState] = []
        self._listeners: list[StateListener] = []
        self.ready = threading.Event()

    @property
    def state(self) -> SessionState:
        return self._state

    def add_listener(self, listener: StateListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def set(self, state: SessionState, *, starting: bool = False) -> bool:
        """Change state; returns whether it changed. Only `start` (starting=True) leaves STOPPED, so a
        message still in flight while the session stops cannot bring it back to READY."""
        if state is self._state or (self._state is SessionState.STOPPED and not starting):
            return False
        self._state = state
        if state is SessionState.READY:
            self.ready.set()
        else:
            self.ready.clear()
        with self._lock:
            self._changes.append(state)
        return True

    def announce(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
            listeners = list(self._listeners)
        for state in changes:
            logger.info("session %s", state.value)
            for listener in listeners:
                listener(state)
