"""Webhooks: each result POSTed as JSON to every configured URL, with retries and backoff.

One thread delivers, in order, from a bounded outbox (oldest dropped and counted when full). A POST
that fails (connection error, timeout, a status other than 2xx) is retried after
plc.webhook_backoff_s, doubling; after plc.webhook_retries retries it is counted as failed.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from appliance import __version__
from appliance.config import ConfigError, PlcConfig, Problem
from appliance.pipeline.results import Result
from appliance.plc.outbox import Outbox
from appliance.plc.payloads import Feed, Judged, encode

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")
HEADERS = {"Content-Type": "application/json", "User-Agent": f"edge-appliance/{__version__}"}


@dataclass(frozen=True)
class WebhookOptions:
    urls: tuple[str, ...]
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    queue_size: int = 100

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
        )


class WebhookOutput:
    name = "webhooks"

    def __init__(self, options: WebhookOptions, feed: Feed) -> None:
        self.options = options
        self.feed = feed
        self.sent = 0
        self.failed = 0  # deliveries given up after every retry
        self.retried = 0
        self.last_error: str | None = None
        self._failing: set[str] = set()
        self._stop = threading.Event()
        self._outbox: Outbox[Judged] = Outbox("webhooks", options.queue_size, self._deliver)

    def start(self) -> None:
        self._outbox.start()
        self.feed.bus.subscribe(f"plc-{self.name}", self.offer)
        logger.info("webhooks: posting results to %d URL(s)", len(self.options.urls))

    def offer(self, result: Result) -> None:
        """Bus subscriber (pipeline thread): queue and return at once."""
        self._outbox.put(Judged.of(result, self.feed.judge))

    def stop(self) -> None:
        self.feed.bus.unsubscribe(f"plc-{self.name}")
        self._stop.set()  # cuts a backoff wait short
        self._outbox.stop()

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "urls": len(self.options.urls),
            "connected": not self._failing,
            "sent": self.sent,
            "errors": self.failed + self._outbox.failed,
            "retries": self.retried,
            "dropped": self._outbox.dropped,
            "pending": self._outbox.pending(),
            "last_error": self.last_error,
        }

    def _deliver(self, judged: Judged) -> None:
        body = encode(judged)
        for url in self.options.urls:
            self._post_with_retries(url, body)

    def _post_with_retries(self, url: str, body: bytes) -> None:
        delay = self.options.backoff_s
        for attempt in range(self.options.retries + 1):
            if attempt:
                self.retried += 1
                if self._stop.wait(delay):
                    return
                delay *= 2
            try:
                self._post(url, body)
            except (urllib.error.URLError, HTTPException, OSError) as err:
                self._note_failure(url, err)
                continue
            self.sent += 1
            if url in self._failing:
                self._failing.discard(url)
                logger.info("webhook %s: delivering again", url)
            return
        self.failed += 1

    def _post(self, url: str, body: bytes) -> None:
        request = urllib.request.Request(url, data=body, headers=HEADERS, method="POST")
        with urllib.request.urlopen(request, timeout=self.options.timeout_s) as reply:  # only http(s)
            reply.read()

    def _note_failure(self, url: str, err: Exception) -> None:
        self.last_error = f"{url}: {err}"
        if url not in self._failing:
            self._failing.add(url)
            logger.warning("webhook %s failing: %s (retrying with backoff)", url, err)
