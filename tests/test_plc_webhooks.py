"""Webhooks against a small HTTP server on 127.0.0.1 started by the test; the outbox's bounds."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from appliance.config import ConfigError, PlcConfig
from appliance.pipeline.results import ResultBus
from appliance.plc.outbox import Outbox
from appliance.plc.outputs import outputs_status, start_outputs, stop_outputs
from appliance.plc.payloads import Feed, event_id
from appliance.plc.webhooks import WebhookOptions, WebhookOutput
from appliance.services import Services
from tests.conftest import config_for, free_port
from tests.test_plc_handshake import make_result
from tests.test_plc_modbus import triggered_video

WAIT_S = 10.0


@dataclass
class Receiver:
    """Records POSTed JSON and headers; answers `status` to the first `failures` requests; can hold
    requests; answers only after `delay_s` (a slow receiver)."""

    failures: int = 0
    status: int = 500
    delay_s: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    requests: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.hold.set()


def serve(receiver: Receiver, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests += 1
            receiver.holding.set()
            receiver.hold.wait(WAIT_S)
            failing = receiver.requests <= receiver.failures
            if not failing:
                assert self.headers["Content-Type"] == "application/json"
                receiver.bodies.append(json.loads(body))
                receiver.raw.append((body, dict(self.headers.items())))
            time.sleep(receiver.delay_s)
            self.send_response(receiver.status if failing else 204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    server = serve(state)
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    state.hold.set()
    server.shutdown()
    server.server_close()


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_real_results_are_posted(receiver: tuple[Receiver, str], data_dir: Path, tmp_path: Path) -> None:
    state, url = receiver
    services = Services.build(config_for(data_dir, triggered_video(tmp_path)))
    services.start()
    outputs = start_outputs(services, PlcConfig(webhook_urls=(url,)))
    try:
        outcome = services.inspector.trigger(services.pipeline)
        wait_until(lambda: state.bodies)
        assert state.bodies[0]["seq"] == outcome.result.seq and state.bodies[0]["ok"] == outcome.ok
        assert state.bodies[0]["model"] == "face" and state.bodies[0]["source"] == "main"
        wait_until(lambda: outputs_status(outputs)["webhooks"]["sent"] == 1)
    finally:
        stop_outputs(outputs)
        services.stop()


def hook(url: str, **options: Any) -> tuple[WebhookOutput, ResultBus]:
    bus = ResultBus()
    output = WebhookOutput(WebhookOptions((url,), **options), Feed(bus, lambda r: r.count > 0))
    output.start()
    return output, bus


def test_failures_are_retried_with_backoff(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.failures = 2
    output, bus = hook(url, retries=3, backoff_s=0.05)
    try:
        started = time.monotonic()
        bus.publish(make_result(seq=1))
        wait_until(lambda: output.status()["sent"] == 1)
        assert time.monotonic() - started >= 0.05 + 0.1  # waited, doubling
        assert state.requests == 3 and [b["seq"] for b in state.bodies] == [1]
        status = output.status()
        assert status["retried"] == 2 and status["errors"] == 0 and status["connected"] is True
        assert status["last_error"] is None  # cleared once delivering again
    finally:
        output.stop()


def test_a_post_that_keeps_failing_is_counted(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.failures = 100
    output, bus = hook(url, retries=1, backoff_s=0.0)
    try:
        bus.publish(make_result(seq=1))
        wait_until(lambda: output.status()["errors"] == 1)
        status = output.status()
        assert state.requests == 2 and status["sent"] == 0 and status["connected"] is False
        assert "500" in status["last_error"]
    finally:
        output.stop()


def test_a_client_error_answer_is_not_retried(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.failures, state.status = 100, 401
    output, bus = hook(url, retries=3, backoff_s=0.0)
    try:
        bus.publish(make_result(seq=1))
        wait_until(lambda: output.status()["errors"] == 1)
        assert state.requests == 1 and output.status()["retried"] == 0
    finally:
        output.stop()


def test_results_are_signed_the_standard_webhooks_way(receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    state, url = receiver
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(secret + "\n")
    options = WebhookOptions.from_config(PlcConfig(webhook_urls=(url,), webhook_secret_file=str(secret_file)))
    bus = ResultBus()
    output = WebhookOutput(options, Feed(bus, lambda r: r.count > 0))
    output.start()
    try:
        results = [make_result(seq=seq) for seq in (1, 2)]
        for result in results:
            bus.publish(result)
        wait_until(lambda: len(state.raw) == 2)
    finally:
        output.stop()
    verifier = Webhook(secret)  # the reference implementation of the scheme
    for (body, headers), result in zip(state.raw, results, strict=True):
        assert verifier.verify(body, headers)["seq"] == result.seq
        assert headers["webhook-id"] == event_id(result) == json.loads(body)["event_id"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
        with pytest.raises(WebhookVerificationError):  # a changed body no longer verifies
            verifier.verify(body.replace(b'"seq":', b'"seq":1'), headers)
        with pytest.raises(WebhookVerificationError):  # nor does another key
            Webhook(base64.b64encode(os.urandom(32)).decode()).verify(body, headers)
    assert output.status()["signed"] is True
    recipe: dict[str, Any] = {}
    docs = (Path(__file__).resolve().parents[1] / "docs" / "plc.md").read_text()
    exec(re.search(r"```python\n(import base64.*?def verify.*?)```", docs, re.S).group(1), recipe)  # type: ignore[union-attr]
    body, headers = state.raw[0]
    assert recipe["verify"](secret, body, headers) is True  # the by-hand recipe in docs/plc.md works
    assert recipe["verify"](secret, body + b" ", headers) is False


def test_a_bad_secret_file_names_the_key(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("whsec_" + base64.b64encode(b"too short").decode())
    for path in (str(short), str(tmp_path / "missing")):
        with pytest.raises(ConfigError, match=r"plc\.webhook_secret_file"):
            WebhookOptions.from_config(PlcConfig(webhook_urls=("http://x/",), webhook_secret_file=path))


def test_a_slow_receiver_gets_one_copy_of_each_result(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.delay_s = 0.6  # answers after the timeout
    output, bus = hook(url, timeout_s=0.2, retries=3, backoff_s=0.01)
    try:
        for seq in (1, 2, 3):
            bus.publish(make_result(seq=seq))
        wait_until(lambda: output.status()["unanswered"] == 3)
    finally:
        output.stop()
    assert [b["seq"] for b in state.bodies] == [1, 2, 3]  # no second copy of any
    assert state.requests == 3 and output.status()["retried"] == 0


def test_a_receiver_down_10_s_loses_nothing(receiver: tuple[Receiver, str]) -> None:
    state, _url = receiver
    port = free_port()
    down_url = f"http://127.0.0.1:{port}/hook"
    output, bus = hook(down_url, backoff_s=0.05, backoff_max_s=1.0, queue_size=100)
    try:
        started = time.monotonic()
        results = [make_result(seq=seq) for seq in range(1, 16)]
        for result in results:  # while nothing listens on the port
            bus.publish(result)
            time.sleep(0.05)
        wait_until(lambda: output.status()["retried"] >= 3 and output.status()["connected"] is False)
        while time.monotonic() - started < 10.0:  # the receiver stays away 10 s
            time.sleep(0.1)
        server = serve(state, port)
        try:
            wait_until(lambda: output.status()["sent"] == 15)
            status = output.status()
        finally:
            server.shutdown()
            server.server_close()
    finally:
        output.stop()
    assert [b["seq"] for b in state.bodies] == list(range(1, 16))
    assert status["dropped"] == 0 and status["errors"] == 0 and status["last_error"] is None


def test_a_full_queue_drops_the_oldest(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.hold.clear()  # the receiver holds the first POST: the outbox fills up
    output, bus = hook(url, queue_size=2)
    try:
        bus.publish(make_result(seq=1))
        assert state.holding.wait(WAIT_S)
        for seq in range(2, 6):
            bus.publish(make_result(seq=seq))  # returns at once although delivery is stuck
        assert output.status()["dropped"] == 2 and output.status()["pending"] == 2
        state.hold.set()
        wait_until(lambda: len(state.bodies) == 3)
        assert [b["seq"] for b in state.bodies] == [1, 4, 5]
    finally:
        output.stop()


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ConfigError, match=r"plc\.webhook_urls"):
        WebhookOptions.from_config(PlcConfig(webhook_urls=("file:///etc/passwd",)))


def test_outbox_counts_handler_failures() -> None:
    handled: list[int] = []

    def handle(item: int) -> None:
        if item == 2:
            raise ValueError("boom")
        handled.append(item)

    outbox: Outbox[int] = Outbox("test", 10, handle)
    outbox.start()
    for item in (1, 2, 3):
        outbox.put(item)
    wait_until(lambda: handled == [1, 3])
    outbox.stop()
    assert outbox.failed == 1 and outbox.dropped == 0
