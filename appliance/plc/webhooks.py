"""Webhooks: each result POSTed as JSON to every configured URL, signed, with an event id.

Signing follows Standard Webhooks (standardwebhooks.com), so any of its libraries verifies it:
`webhook-id` is the result's event id (the same on every retry: receivers deduplicate by it),
`webhook-timestamp` the Unix time of the attempt, and `webhook-signature` is `v1,` + base64 of
HMAC-SHA256(key, "<id>.<timestamp>.<body>"); the key is the base64 secret in plc.webhook_secret_file
(`whsec_` prefix optional). Without a secret the two first headers are still sent, unsigned.

Each URL has its own thread and bounded outbox (oldest dropped and counted when full), so one
receiver that is down never delays another. What happens to a POST:
- no connection (refused, unreachable, reset before an answer): the receiver is down; retried after
  plc.webhook_backoff_s, doubling up to plc.webhook_backoff_max_s, until it is back (results queue);
- an answer 5xx, 408 or 429: retried the same way, at most plc.webhook_retries times, then failed;
- any other answer outside 2xx: failed at once (retrying cannot help);
- sent, but no answer within plc.webhook_timeout_s: the receiver has the body and is slow, so it is
  not sent again (a retry would be a second copy); counted as `unanswered`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance import __version__
from appliance.backoff import Backoff
from appliance.config import ConfigError, PlcConfig, Problem
from appliance.pipeline.results import Result
from appliance.plc.outbox import Outbox
from appliance.plc.payloads import Feed, Judged, encode, event_id

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")
HEADERS = {"Content-Type": "application/json", "User-Agent": f"edge-appliance/{__version__}"}
RETRY_STATUS = frozenset({408, 429})
MIN_KEY_BYTES = 24  # Standard Webhooks: secrets of 24 to 64 bytes


@dataclass(frozen=True)
class WebhookOptions:
    urls: tuple[str, ...]
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    queue_size: int = 100
    secret: bytes = b""  # HMAC key; empty: unsigned
    backoff_max_s: float = 30.0

    @classmethod
    def from_config(cls, plc: PlcConfig) -> WebhookOptions:
        bad = [u for u in plc.webhook_urls if urlsplit(u).scheme not in SCHEMES or not urlsplit(u).netloc]
        if bad:
            raise ConfigError([Problem("plc.webhook_urls", f"not an http(s) URL: {', '.join(bad)}")])
        return cls(
            urls=plc.webhook_urls,
            timeout_s=plc.webhook_timeout_s,
            retries=plc.webhook_retries,
            backoff_s=plc.webhook_backoff_s,
            queue_size=plc.webhook_queue_size,
            secret=read_secret(plc.webhook_secret_file),
            backoff_max_s=plc.webhook_backoff_max_s,
        )


def read_secret(path: str) -> bytes:
    """The HMAC key from the secret file's first line (`whsec_<base64>` or plain base64); b"" for none."""
    if not path:
        return b""
    key = "plc.webhook_secret_file"
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(key, f"cannot read {path}: {err}")]) from err
    text = lines[0].strip().removeprefix("whsec_") if lines else ""
    try:
        secret = base64.b64decode(text + "==", validate=False)
    except (binascii.Error, ValueError) as err:
        raise ConfigError([Problem(key, f"{path}: not base64 ({err})")]) from err
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError([Problem(key, f"{path}: the secret must be at least {MIN_KEY_BYTES} bytes")])
    return secret


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Unreachable(Exception):
    """The request did not reach the receiver (safe to send again)."""


class Unanswered(Exception):
    """The request was sent; no answer came in time (the receiver may have it)."""


@dataclass(frozen=True)
class Event:
    id: str
    body: bytes


class WebhookOutput:
    name = "webhooks"

    def __init__(self, options: WebhookOptions, feed: Feed) -> None:
        self.options = options
        self.feed = feed
        self.sent = 0
        self.failed = 0  # deliveries given up (error answers)
        self.unanswered = 0  # sent, not answered in time, not resent
        self.retried = 0
        self.last_error: str | None = None
        self._failing: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outboxes = [self._outbox(i, url) for i, url in enumerate(options.urls)]

    def _outbox(self, index: int, url: str) -> Outbox[Event]:
        return Outbox(f"webhook-{index}", self.options.queue_size, lambda event: self._deliver(url, event))

    def start(self) -> None:
        for outbox in self._outboxes:
            outbox.start()
        self.feed.bus.subscribe(f"plc-{self.name}", self.offer)
        signed = "signed" if self.options.secret else "UNSIGNED (no plc.webhook_secret_file)"
        logger.info("webhooks: posting results to %d URL(s), %s", len(self.options.urls), signed)

    def offer(self, result: Result) -> None:
        """Bus subscriber (pipeline thread): queue and return at once."""
        judged = Judged.of(result, self.feed.judge)
        event = Event(event_id(judged.result), encode(judged))
        for outbox in self._outboxes:
            outbox.put(event)

    def stop(self) -> None:
        self.feed.bus.unsubscribe(f"plc-{self.name}")
        self._stop.set()  # cuts a backoff wait short
        for outbox in self._outboxes:
            outbox.stop()

    def status(self) -> dict[str, Any]:
        boxes = self._outboxes
        return {
            "enabled": True,
            "urls": len(self.options.urls),
            "signed": bool(self.options.secret),
            "connected": not self._failing,
            "sent": self.sent,
            "errors": self.failed + self.unanswered + sum(b.failed for b in boxes),
            "unanswered": self.unanswered,
            "retried": self.retried,
            "dropped": sum(b.dropped for b in boxes),
            "pending": sum(b.pending() for b in boxes),
            "last_error": self.last_error,
        }

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)

    def _deliver(self, url: str, event: Event) -> None:
        waits = Backoff(max(self.options.backoff_s, 0.01), self.options.backoff_max_s).delays()
        error_answers = 0
        while True:
            try:
                status = self._post(url, event)
            except Unreachable as err:
                self._note_failure(url, f"unreachable: {err}")
            except Unanswered as err:
                self._count("unanswered")
                self._note_failure(url, f"no answer within {self.options.timeout_s} s ({err}); not resent")
                return
            else:
                if 200 <= status < 300:
                    self._delivered(url)
                    return
                self._note_failure(url, f"answered HTTP {status}")
                retry = status >= 500 or status in RETRY_STATUS
                if not retry or error_answers >= self.options.retries:
                    self._count("failed")
                    return
                error_answers += 1
            self._count("retried")
            if self._stop.wait(next(waits)):
                return

    def _delivered(self, url: str) -> None:
        self._count("sent")
        if url in self._failing:
            self._failing.discard(url)
            self.last_error = None if not self._failing else self.last_error
            logger.info("webhook %s: delivering again", url)

    def _post(self, url: str, event: Event) -> int:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = self.options.timeout_s
        conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=ssl.create_default_context())
            if parts.scheme == "https"
            else http.client.HTTPConnection(parts.netloc, timeout=timeout)
        )
        try:
            try:
                conn.request("POST", path, body=event.body, headers=self._headers(event))
            except (OSError, http.client.HTTPException) as err:
                raise Unreachable(str(err) or type(err).__name__) from err
            try:
                with conn.getresponse() as reply:
                    reply.read()
                    return int(reply.status)
            except TimeoutError as err:
                raise Unanswered(str(err) or "timed out") from err
            except (OSError, http.client.HTTPException) as err:  # closed or reset without an answer
                raise Unreachable(str(err) or type(err).__name__) from err
        finally:
            conn.close()

    def _headers(self, event: Event) -> dict[str, str]:
        now = int(time.time())
        headers = {**HEADERS, "webhook-id": event.id, "webhook-timestamp": str(now)}
        if self.options.secret:
            headers["webhook-signature"] = signature(self.options.secret, event.id, now, event.body)
        return headers

    def _note_failure(self, url: str, error: str) -> None:
        self.last_error = f"{url}: {error}"
        if url not in self._failing:
            self._failing.add(url)
            logger.warning("webhook %s failing: %s", url, error)
