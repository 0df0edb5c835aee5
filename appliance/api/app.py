"""create_app(): the HTTP application with the services on app.state."""

from __future__ import annotations

import contextlib
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
    infer,
    inspect,
    kserve,
    models,
    observability,
    openapi,
    results,
    settings,
    status,
    ui,
    update,
)
from appliance.api.errors import HANDLERS
from appliance.services import Services

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
PACKAGED_WEB_DIR = Path(__file__).resolve().parents[1] / "web"


def web_dir() -> Path:
    """web/ beside the package in a checkout, or the copy installed inside the package."""
    return WEB_DIR if (WEB_DIR / "templates").is_dir() else PACKAGED_WEB_DIR


API_ROUTES = [
    Route("/api/v1/health", status.health, methods=["GET"]),
    Route("/api/v1/status", status.status, methods=["GET"]),
    Route("/api/v1/results/latest", results.latest, methods=["GET"]),
    Route("/api/v1/results", results.listing, methods=["GET"]),
    Route("/api/v1/infer", infer.infer, methods=["POST"]),
    Route("/api/v1/frames", infer.push_frame, methods=["POST"]),
    Route("/api/v1/trigger", inspect.trigger, methods=["POST"]),
    Route("/api/v1/jobs", inspect.create_job, methods=["POST"]),
    Route("/api/v1/jobs/{job_id}", inspect.get_job, methods=["GET"]),
    Route("/api/v1/models", models.list_models, methods=["GET"]),
    Route("/api/v1/models", models.upload_model, methods=["POST"]),
    Route("/api/v1/models/rollback", models.rollback_model, methods=["POST"]),
    Route("/api/v1/models/{name}/activate", models.activate_model, methods=["POST"]),
    Route("/api/v1/models/{name}/versions/{version}", models.delete_model, methods=["DELETE"]),
    Route("/api/v1/config", settings.read_config, methods=["GET"]),
    Route("/api/v1/config", settings.update_config, methods=["PATCH"]),
    Route("/api/v1/restart", settings.restart, methods=["POST"]),
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
]


def create_app(services: Services, manage_lifecycle: bool = True) -> Starlette:
    """The app; with manage_lifecycle it starts and stops the services with the server."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            services.start()
        try:
            yield
        finally:
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
    app.state.services = services
    app.state.api_routes = API_ROUTES
    app.state.auth = services.auth
    app.state.limiter = services.limiter
    app.state.templates = Jinja2Templates(directory=root / "templates")
    return app
