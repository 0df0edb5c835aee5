"""System update over HTTP: upload a signed RAUC bundle, read both slots, ask for a reboot.

`POST /api/v1/system/update` streams the bundle (the raw body) into a staging folder on the data
partition - refused with 413 before a byte is read when its Content-Length is over MAX_BUNDLE_BYTES
or over the free space there - and hands it to RAUC (appliance/update.py), which checks the
signature and the board and writes the other slot. A bundle the device will not take is a 422 naming
RAUC's reason; the staged file is removed either way. The new slot boots at the next reboot
(`POST /api/v1/system/reboot`, or `?reboot=1` on the upload). The web UI's System page uses the same
functions (appliance/api/ui/system.py).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import requires
from appliance.api.bodies import JSONResponse, save_body
from appliance.api.context import config_view
from appliance.errors import ApplianceError, BadRequest, PayloadTooLarge
from appliance.update import InstallResult, Updater

logger = logging.getLogger(__name__)

MAX_BUNDLE_BYTES = 4 * 2**30  # a slot is 3 GiB; its compressed bundle is far smaller
SPARE_BYTES = 64 * 2**20  # left free on the data partition for results while a bundle is staged
STAGING = "updates"  # folder in data.dir


def updater_of(request: Request) -> Updater:
    """app.state.updater when set (tests: a fake rauc), else the device's RAUC."""
    updater = getattr(request.app.state, "updater", None)
    return updater if isinstance(updater, Updater) else Updater()


def system_document(updater: Updater) -> dict[str, object]:
    """Both slots for /api/v1/status and the System page; {"available": false, ...} without RAUC."""
    try:
        return updater.status().to_json()
    except ApplianceError as err:
        return {"available": False, "reason": str(err)}


def _limit(folder: Path) -> int:
    free = shutil.disk_usage(folder).free - SPARE_BYTES
    return max(0, min(MAX_BUNDLE_BYTES, free))


async def receive_bundle(request: Request, source: str) -> InstallResult:
    """Stream the body to the data partition (capped before reading), install it, remove the file."""
    updater = updater_of(request)
    updater.require()  # 409 before a byte is read on a machine without RAUC
    folder = Path(config_view(request).config.data_dir) / STAGING
    folder.mkdir(parents=True, exist_ok=True)
    limit = _limit(folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".upload-") as tmp:
        path = Path(tmp) / "bundle.raucb"
        try:
            size = await save_body(request, limit, path)
        except PayloadTooLarge as err:
            detail = f"a bundle may be {MAX_BUNDLE_BYTES} bytes and must fit in the free space"
            raise PayloadTooLarge(f"{err} ({detail})") from err
        if size == 0:
            raise BadRequest("empty body: send the .raucb bundle as the request body")
        path.chmod(0o644)  # rauc runs as root, but say plainly that it only reads it
        logger.info("system bundle of %d bytes received (%s); installing", size, source)
        return await run_in_threadpool(updater.install, path, source)


@requires("read")
async def system_status(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(system_document, updater_of(request)))


@requires("admin")
async def upload_update(request: Request) -> Response:
    result = await receive_bundle(request, "api")
    body = result.to_json()
    if request.query_params.get("reboot") in ("1", "true"):
        await run_in_threadpool(updater_of(request).request_reboot)
        body["rebooting"] = True
    return JSONResponse(body)


@requires("admin")
async def reboot(request: Request) -> Response:
    await run_in_threadpool(updater_of(request).request_reboot)
    return JSONResponse({"rebooting": True}, status_code=202)
