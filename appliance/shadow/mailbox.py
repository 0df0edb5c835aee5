"""How `appliance models shadow|promote` reach the running appliance: files in DATA/shadow/.

The command line writes one request-<id>.json (start, stop or promote) and waits; the server's shadow
thread takes each request, carries it out exactly as the API would, and answers in status.json
(`answers[id]`: ok, or the error and its HTTP status). status.json also holds the run's statistics,
rewritten while a run goes on, so `--status` works without a token. Files are replaced by rename:
a reader sees a whole file or the one before.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATUS = "status.json"
PREFIX = "request-"
MAX_REQUEST_BYTES = 4096
ANSWERS_KEPT = 20
POLL_S = 0.1


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def send(folder: Path, request: dict[str, Any]) -> str:
    """Leave a request for the server; returns its id."""
    request_id = uuid.uuid4().hex[:16]
    _write(folder / f"{PREFIX}{request_id}.json", {**request, "id": request_id})
    return request_id


def withdraw(folder: Path, request_id: str) -> None:
    (folder / f"{PREFIX}{request_id}.json").unlink(missing_ok=True)


def take(folder: Path) -> list[dict[str, Any]]:
    """The waiting requests, oldest first, removed from the folder (a damaged one is logged, dropped)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{PREFIX}*.json"):
        try:
            found.append((path.stat().st_mtime_ns, path))
        except FileNotFoundError:  # withdrawn meanwhile
            continue
    requests = []
    for _, path in sorted(found):
        try:
            raw = path.read_bytes()[:MAX_REQUEST_BYTES]
            path.unlink(missing_ok=True)
            data = json.loads(raw)
        except (OSError, ValueError) as err:
            logger.warning("dropping shadow request %s: %s", path.name, err)
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            requests.append(data)
    return requests


def discard(folder: Path) -> None:
    """Forget requests left from before this process started (nobody waits for them any more)."""
    for path in folder.glob(f"{PREFIX}*.json") if folder.is_dir() else ():
        path.unlink(missing_ok=True)


def write_status(folder: Path, status: dict[str, Any], answers: dict[str, Any]) -> None:
    try:
        _write(folder / STATUS, {**status, "answers": answers})
    except OSError as err:
        logger.warning("cannot write the shadow status file: %s", err)


def read_status(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wait_answer(folder: Path, request_id: str, timeout: float) -> dict[str, Any] | None:
    """The server's answer to a request, or None when no server took it within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(folder)
        answer = (status or {}).get("answers", {}).get(request_id)
        if isinstance(answer, dict):
            return {**answer, "run": status}
        time.sleep(POLL_S)
    return None
