"""The diagnostics bundle: a zip a technician can send to support, with no secrets in it.

config.json (keys that look like secrets are replaced), status.json (the status document and the
machine), models.json (registry manifests), logs.txt (recent log lines) and a README.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from typing import Any

from appliance import __version__
from appliance.api.status import status_document
from appliance.api.ui import machine
from appliance.api.ui.logs import RING
from appliance.config.file import to_dict
from appliance.control import PanelView

SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|apikey|private_key)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")  # credentials inside URLs: rtsp://user:pass@host
SECRET_QUERY = re.compile(
    r"([?&](?:token|key|api_key|secret|password|sig|signature)=)[^&#\s]+", re.IGNORECASE
)
NOT_SECRET_SUFFIXES = ("_file", "_path")  # where a secret is kept, not the secret
REDACTED = "(redacted)"
README = """edge-appliance diagnostics bundle
version {version}, made {made} UTC

config.json   the running configuration; secret-looking keys and URL passwords are redacted
status.json   the status document (source, model, backend, pipeline, store) and the machine
models.json   the manifests of every model version in the registry
logs.txt      the most recent log lines (newest last)
"""


def redact(value: Any, key: str = "") -> Any:
    """A copy with secret-looking keys replaced and passwords removed from URLs."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and SECRET_KEY.search(key) and not key.endswith(NOT_SECRET_SUFFIXES) and value not in ("", None):
        return REDACTED
    if isinstance(value, str):
        value = SECRET_VALUE.sub(r"\1" + REDACTED + "@", value)
        return SECRET_QUERY.sub(r"\1" + REDACTED, value)
    return value


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n"


def bundle(services: PanelView) -> bytes:
    """The zip, in memory (a few hundred kB at most: logs are a bounded ring)."""
    made = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    status = {**status_document(services), "machine": machine.snapshot(services.config.data_dir)}
    files = {
        "README.txt": README.format(version=__version__, made=made),
        "config.json": _json(redact(to_dict(services.config))),
        "status.json": _json(redact(status)),
        "models.json": _json([m.to_json() for m in services.registry.list()]),
        "logs.txt": "\n".join(redact(str(line)) for line in RING.lines()) + "\n",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()
