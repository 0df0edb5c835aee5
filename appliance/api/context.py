"""The narrow views on app.state (appliance/control.py): create_app attaches them, handlers take one.

Each accessor gives one view of the running appliance, typed so that a handler can reach only what
that view declares; `attach` is where mypy checks that `Services` provides every view.
"""

from __future__ import annotations

from starlette.datastructures import State
from starlette.requests import Request

from appliance.control import (
    ConfigControl,
    ConfigView,
    LiveView,
    ModelControl,
    PanelView,
    RestartControl,
    ResultsView,
    StatusView,
)
from appliance.services import Services


def attach(state: State, services: Services) -> None:
    """Put every view on `state` (the same object under each name, typed as the view)."""
    config: ConfigView = services
    config_control: ConfigControl = services
    model_control: ModelControl = services
    restart: RestartControl = services
    status: StatusView = services
    panel: PanelView = services
    results: ResultsView = services
    live: LiveView = services
    state.config_view = config
    state.config_control = config_control
    state.model_control = model_control
    state.restart = restart
    state.status = status
    state.panel = panel
    state.results = results
    state.live = live


def config_view(request: Request) -> ConfigView:
    view: ConfigView = request.app.state.config_view
    return view


def config_control(request: Request) -> ConfigControl:
    view: ConfigControl = request.app.state.config_control
    return view


def restart_control(request: Request) -> RestartControl:
    view: RestartControl = request.app.state.restart
    return view


def status_view(request: Request) -> StatusView:
    view: StatusView = request.app.state.status
    return view


def panel_view(request: Request) -> PanelView:
    view: PanelView = request.app.state.panel
    return view


def results_view(request: Request) -> ResultsView:
    view: ResultsView = request.app.state.results
    return view


def live_view(request: Request) -> LiveView:
    view: LiveView = request.app.state.live
    return view
