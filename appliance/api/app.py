"""create_app(): the HTTP application with the services on app.state."""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from appliance.api import (
    access,
    configuration,
    context,
    history,
    infer,
    jobs,
    kserve,
    models,
    observability,
    openapi,
    status,
    trigger,
    ui,
    update,
)
from appliance.api.admission import Admission
from appliance.api.errors import HANDLERS
from appliance.api.grpc_server import GrpcServer
from appliance.api.prometheus import metrics_registry
from appliance.api.ui.inline import SelfContained
from appliance.errors import ApplianceError
from appliance.services import Services

logger = logging.getLogger(__name__)

WEB_PACKAGE = "appliance.web"  # web/ in the repository, package data of the wheel (pyproject.toml)


def web_dir() -> Path:
    """The templates and static files, wherever the package is installed (editable or a wheel)."""
    root = importlib.resources.files(WEB_PACKAGE)
    if not isinstance(root, Path):  # a zip import: Starlette and Jinja read directories
        raise ApplianceError(f"{WEB_PACKAGE} must be installed as files, not inside {root}")
    return root


API_ROUTES = [
    Route("/api/v1/health", status.health, methods=["GET"]),
    Route("/api/v1/status", status.status, methods=["GET"]),
    Route("/api/v1/results/latest", history.latest, methods=["GET"]),
    Route("/api/v1/results", history.listing, methods=["GET"]),
    Route("/api/v1/infer", infer.infer, methods=["POST"]),
    Route("/api/v1/frames", infer.push_frame, methods=["POST"]),
    Route("/api/v1/trigger", trigger.trigger, methods=["POST"]),
    Route("/api/v1/jobs", trigger.create_job, methods=["POST"]),
    Route("/api/v1/jobs/{job_id}", trigger.get_job, methods=["GET"]),
    Route("/api/v1/models", models.list_models, methods=["GET"]),
    Route("/api/v1/models", models.upload_model, methods=["POST"]),
    Route("/api/v1/models/rollback", models.rollback_model, methods=["POST"]),
    Route("/api/v1/models/shadow", models.shadow_status, methods=["GET"]),
    Route("/api/v1/models/shadow", models.start_shadow, methods=["POST"]),
    Route("/api/v1/models/shadow", models.stop_shadow, methods=["DELETE"]),
    Route("/api/v1/models/shadow/examples/{example_id}", models.shadow_example, methods=["GET"]),
    Route("/api/v1/models/{name}/promote", models.promote_model, methods=["POST"]),
    Route("/api/v1/models/{name}/activate", models.activate_model, methods=["POST"]),
    Route("/api/v1/models/{name}/versions/{version}", models.delete_model, methods=["DELETE"]),
    Route("/api/v1/config", configuration.read_config, methods=["GET"]),
    Route("/api/v1/config", configuration.update_config, methods=["PATCH"]),
    Route("/api/v1/restart", configuration.restart, methods=["POST"]),
    Route("/api/v1/system", update.system_status, methods=["GET"]),
    Route("/api/v1/system/update", update.upload_update, methods=["POST"]),
    Route("/api/v1/system/reboot", update.reboot, methods=["POST"]),
    Route("/api/v1/setup", access.setup_state, methods=["GET"]),
    Route("/api/v1/setup", access.setup, methods=["POST"]),
    Route("/api/v1/tokens", access.list_tokens, methods=["GET"]),
    Route("/api/v1/tokens", access.create_token, methods=["POST"]),
    Route("/api/v1/tokens/{token_id}", access.revoke_token, methods=["DELETE"]),
    Route("/api/openapi.json", openapi.openapi, methods=["GET"]),
    Route("/metrics", observability.metrics, methods=["GET"]),
    Route("/api/v1/debug/profile", observability.profile, methods=["GET"]),
    *kserve.routes(),
    *jobs.routes(),
]


def create_app(services: Services, manage_lifecycle: bool = True) -> Starlette:
    """The app; with manage_lifecycle it starts and stops the services with the server."""

    admission = Admission(services.config.server.max_inflight)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            services.start()
        grpc_server = None
        try:
            if services.config.grpc.enabled:  # KServe v2 over gRPC beside HTTP, same lifetime
                grpc_server = GrpcServer(context.grpc_view(services), admission, services.config.grpc)
                grpc_server.start()
            yield
        finally:
            if grpc_server is not None:
                grpc_server.stop()
            if manage_lifecycle:
                services.stop()

    root = web_dir()
    routes = [
        *API_ROUTES,
        *ui.routes(),
        Mount("/static", StaticFiles(directory=root / "static"), name="static"),
    ]
    auth = services.config.auth
    session = Middleware(
        SessionMiddleware,
        secret_key=services.auth.secret,
        session_cookie="appliance_session",
        max_age=int(auth.session_hours * 3600),
        same_site="strict",
        https_only=services.config.server.secure_cookies,
    )
    app = Starlette(routes=routes, exception_handlers=HANDLERS, lifespan=lifespan, middleware=[session])
    app.state.admission = admission
    context.attach(app.state, services)
    app.state.api_routes = API_ROUTES
    app.state.auth = services.auth
    app.state.limiter = services.limiter
    app.state.templates = Jinja2Templates(directory=root / "templates")
    app.state.restart_page = SelfContained.read(root / "static", script="restart.js", style="app.css")
    app.state.metrics = metrics_registry(observability.LiveMetrics(context.metrics_view(services)))
    return app
