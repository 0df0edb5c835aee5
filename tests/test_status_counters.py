"""Status reports the current RSS (not the peak); delivery counters reach status and /metrics."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from appliance.api.status import status_document
from appliance.config import PlcConfig
from appliance.plc.outputs import start_outputs, stop_outputs
from tests.conftest import LiveServer, wait_for


def test_rss_is_current_and_peak_is_separate(live_server: LiveServer) -> None:
    services = live_server.services
    before = status_document(services)["rss_mb"]
    block = np.ones(200 * 2**20, np.uint8)  # 200 MB, every page touched
    during = status_document(services)
    assert during["rss_mb"] > before + 150
    del block
    after = status_document(services)
    assert after["rss_mb"] < during["rss_mb"] - 150  # the peak would not come down
    assert after["rss_peak_mb"] >= during["rss_mb"] - 1


def receiver() -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_delivery_counters_in_status_and_metrics(live_server: LiveServer, astronaut_png: bytes) -> None:
    server = receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    services = live_server.services
    outputs = start_outputs(services, PlcConfig(webhook_urls=(url,)))
    services.outputs = outputs
    try:
        with live_server.client() as api:
            for _ in range(2):
                assert (
                    api.post(
                        "/api/v1/infer?store=1", content=astronaut_png, headers={"content-type": "image/png"}
                    ).status_code
                    == 200
                )
            wait_for(lambda: api.get("/api/v1/status").json()["plc"]["webhooks"]["sent"] >= 2)
            hooks = api.get("/api/v1/status").json()["plc"]["webhooks"]
            assert {"sent", "retried", "dropped"} <= hooks.keys()
            text = api.get("/metrics").text
        sent = re.search(r'^appliance_delivery_sent_total\{output="webhooks"\} (\S+)$', text, re.MULTILINE)
        assert sent is not None and float(sent.group(1)) >= 2
        assert re.search(r'^appliance_delivery_dropped_total\{output="webhooks"\} 0\.0$', text, re.MULTILINE)
        assert 'output="mqtt"' not in text  # off: no series
    finally:
        stop_outputs(outputs)
        services.outputs = []
        server.shutdown()
        server.server_close()
