"""What the UI keeps between requests, on app.state.ui: login backoff, live viewers, pending restart."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from starlette.requests import Request

from appliance.api.ui.throttle import LoginBackoff

MAX_VIEWERS = 3


class ViewerSlots:
    """A cap on concurrent live views: each MJPEG stream holds one slot while it is open."""

    def __init__(self, cap: int = MAX_VIEWERS) -> None:
        self.cap = cap
        self.open = 0
        self.frames_sent = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.cap:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)

    def sent(self) -> None:
        with self._lock:
            self.frames_sent += 1


@dataclass
class UiState:
    backoff: LoginBackoff = field(default_factory=LoginBackoff)
    viewers: ViewerSlots = field(default_factory=ViewerSlots)
    restart_pending: tuple[str, ...] = ()  # saved keys that take effect after a restart


def ui_state(request: Request) -> UiState:
    """The app's UiState, created on first use."""
    state = getattr(request.app.state, "ui", None)
    if not isinstance(state, UiState):
        state = UiState()
        request.app.state.ui = state
    return state
