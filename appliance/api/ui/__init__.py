"""The browser admin panel: server-rendered pages over the same services as the REST API.

`routes()` gives the UI's routes for create_app (and installs the in-memory log ring the System page
reads). Every page but /setup and /login needs an admin session; every POST needs the CSRF token.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from appliance.api.ui import (
    configuration,
    dashboard,
    inspection,
    live,
    logins,
    logs,
    models,
    results,
    system,
    tokens,
)

GET, POST = ["GET"], ["POST"]

UI_ROUTES: list[BaseRoute] = [
    Route("/", dashboard.dashboard, methods=GET),
    Route("/dashboard/panel", dashboard.panel, methods=GET),
    Route("/setup", logins.setup_form, methods=GET),
    Route("/setup", logins.setup, methods=POST),
    Route("/login", logins.login_form, methods=GET),
    Route("/login", logins.login, methods=POST),
    Route("/logout", logins.logout, methods=POST),
    Route("/logout/everywhere", logins.logout_everywhere, methods=POST),
    Route("/live", live.live_page, methods=GET),
    Route("/live/stream", live.stream, methods=GET),
    Route("/live/status", live.live_status, methods=GET),
    Route("/results", results.listing, methods=GET),
    Route("/results/export.{fmt}", results.export, methods=GET),
    Route("/results/{row_id:int}", results.detail, methods=GET),
    Route("/results/{row_id:int}/frame.jpg", results.annotated, methods=GET),
    Route("/snapshots/{path:path}", results.snapshot, methods=GET),
    Route("/models", models.listing, methods=GET),
    Route("/models/upload", models.upload, methods=POST),
    Route("/models/test", models.test_image, methods=POST),
    Route("/models/rollback", models.rollback, methods=POST),
    Route("/models/shadow/stop", models.stop_shadow, methods=POST),
    Route("/models/{name}/{version:int}/shadow", models.shadow, methods=POST),
    Route("/models/{name}/{version:int}/promote", models.promote, methods=POST),
    Route("/models/{name}/{version:int}/activate", models.activate, methods=POST),
    Route("/models/{name}/{version:int}/delete", models.delete, methods=POST),
    Route("/config", configuration.edit, methods=GET),
    Route("/config", configuration.save, methods=POST),
    Route("/restart", configuration.restart, methods=POST),
    Route("/restarting", configuration.restarting, methods=GET),
    Route("/tokens", tokens.listing, methods=GET),
    Route("/tokens", tokens.create, methods=POST),
    Route("/tokens/{token_id}/revoke", tokens.revoke, methods=POST),
    Route("/password", tokens.change_password, methods=POST),
    Route("/system", system.overview, methods=GET),
    Route("/system/diagnostics.zip", system.bundle, methods=GET),
    Route("/inspection", inspection.screen, methods=GET),
    Route("/inspection/status", inspection.status, methods=GET),
    Route("/inspection/frame.jpg", inspection.frame, methods=GET),
    Route("/inspection/jobs", inspection.save, methods=POST),
    Route("/inspection/jobs/{number:int}/activate", inspection.activate, methods=POST),
    Route("/inspection/jobs/{number:int}/delete", inspection.delete, methods=POST),
    Route("/inspection/counters/reset", inspection.reset, methods=POST),
    Route("/inspection/archive/{name}", inspection.archived, methods=GET),
    Route("/inspection/dataset.{fmt}.zip", inspection.dataset, methods=GET),
    Route("/results/{row_id:int}/flag", inspection.flag, methods=POST),
    Route("/system/update", system.update, methods=POST),
    Route("/system/reboot", system.reboot, methods=POST),
]


def routes() -> list[BaseRoute]:
    """The UI routes; also attaches the recent-log ring to the root logger (once)."""
    logs.install()
    return list(UI_ROUTES)
