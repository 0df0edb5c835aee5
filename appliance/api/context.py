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
    GrpcView,
    InferenceView,
    InspectionView,
    JobsView,
    LiveView,
    MetricsView,
    ModelsView,
    PanelView,
    RestartControl,
    ResultsView,
    ServingView,
    StatusView,
    TriggerView,
)
from appliance.services import Services


def attach(state: State, services: Services) -> None:
    """Put every view on `state` (the same object under each name, typed as the view)."""
    config: ConfigView = services
    config_control: ConfigControl = services
    restart: RestartControl = services
    status: StatusView = services
    panel: PanelView = services
    results: ResultsView = services
    live: LiveView = services
    state.config_view = config
    state.config_control = config_control
    state.restart = restart
    state.status = status
    state.panel = panel
    state.results = results
    state.live = live
    inference: InferenceView = services
    trigger: TriggerView = services
    serving: ServingView = services
    models: ModelsView = services
    jobs: JobsView = services
    inspection: InspectionView = services
    state.inference = inference
    state.trigger = trigger
    state.serving = serving
    state.models = models
    state.jobs = jobs
    state.inspection = inspection


def grpc_view(services: Services) -> GrpcView:
    """The gRPC server's view (it has no request: create_app hands it over)."""
    return services


def metrics_view(services: Services) -> MetricsView:
    """/metrics' view, read by its collector at every scrape."""
    return services


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


def inference_view(request: Request) -> InferenceView:
    view: InferenceView = request.app.state.inference
    return view


def trigger_view(request: Request) -> TriggerView:
    view: TriggerView = request.app.state.trigger
    return view


def serving_view(request: Request) -> ServingView:
    view: ServingView = request.app.state.serving
    return view


def models_view(request: Request) -> ModelsView:
    view: ModelsView = request.app.state.models
    return view


def jobs_view(request: Request) -> JobsView:
    view: JobsView = request.app.state.jobs
    return view


def inspection_view(request: Request) -> InspectionView:
    view: InspectionView = request.app.state.inspection
    return view
