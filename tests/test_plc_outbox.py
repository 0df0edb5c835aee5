"""The MQTT outbox is durable: broker down 10 s with `appliance serve` restarted meanwhile (real
processes, real mosquitto) -> every result arrives exactly once after. Plus the SQLite spool's bound."""

from __future__ import annotations

import collections
import getpass
import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.auth.store import AuthStore
from appliance.plc.spool import Spool
from tests.conftest import free_port, wait_for
from tests.test_plc_modbus import triggered_video
from tests.test_plc_mqtt import Broker

PREFIX = "plant/line2/cam"
DOWN_S = 10.0


def persistent_broker(tmp_path: Path) -> Broker:
    """A broker that keeps the subscriber's session over its own restart (so the test sees everything)."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        f"persistence true\npersistence_location {tmp_path}/\n"
    )
    return Broker(port, config)


class Collector:
    """An integrator's subscriber: persistent session, QoS 1, every message kept."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="collector", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/result", qos=1)
        self.client.on_message = lambda _c, _u, m: self.messages.put(json.loads(m.payload))
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def received(self) -> list[dict[str, Any]]:
        out = []
        with suppress(queue.Empty):
            while True:
                out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Serve:
    """`appliance serve` as a real process, triggered over REST."""

    def __init__(self, tmp_path: Path, data_dir: Path, broker_port: int) -> None:
        self.port = free_port()
        self.token = AuthStore(data_dir).create_token(f"t{self.port}", "operate")
        config = tmp_path / f"serve-{self.port}.toml"
        config.write_text(
            f'[server]\nport = {self.port}\n[data]\ndir = "{data_dir}"\n{triggered_video(tmp_path)}'
            f'[plc]\nmqtt_enabled = true\nmqtt_port = {broker_port}\nmqtt_topic_prefix = "{PREFIX}"\n'
            "[backend]\nthreads = 1\n[auth]\nrate_per_s = 0\n"
        )
        self.log = (tmp_path / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        wait_for(self._ready, timeout=60)

    def _ready(self) -> bool:
        assert self.process.poll() is None, "appliance exited"
        with suppress(httpx.TransportError):
            return self.client.get("/api/v1/health").status_code == 200
        return False

    def trigger(self) -> tuple[int, float]:
        reply = self.client.post("/api/v1/trigger")
        assert reply.status_code == 200, reply.text
        return reply.json()["seq"], reply.json()["ts"]

    def mqtt(self) -> dict[str, Any]:
        status: dict[str, Any] = self.client.get("/api/v1/status").json()["plc"]["mqtt"]
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.client.close()
        self.log.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = persistent_broker(tmp_path)
    running.start()
    yield running
    running.stop()


def test_broker_down_and_appliance_restarted_loses_nothing_and_sends_once(
    broker: Broker, data_dir: Path, tmp_path: Path
) -> None:
    collector = Collector(broker.port)
    expected: list[tuple[int, float]] = []
    first = Serve(tmp_path, data_dir, broker.port)
    try:
        wait_for(lambda: first.mqtt()["connected"])
        expected += [first.trigger() for _ in range(3)]
        wait_for(lambda: first.mqtt()["sent"] == 3 and first.mqtt()["pending"] == 0)
        broker.stop()
        down = time.monotonic()
        wait_for(lambda: not first.mqtt()["connected"])
        expected += [first.trigger() for _ in range(4)]  # held in the outbox
        wait_for(lambda: first.mqtt()["pending"] == 4)
    finally:
        first.stop()  # the appliance restarts while the broker is away
    second = Serve(tmp_path, data_dir, broker.port)
    try:
        assert second.mqtt()["pending"] == 4  # read back from outbox-mqtt.db
        expected += [second.trigger() for _ in range(3)]
        wait_for(lambda: time.monotonic() - down >= DOWN_S)
        broker.start()
        wait_for(lambda: second.mqtt()["pending"] == 0 and second.mqtt()["connected"], timeout=60)
        status = second.mqtt()
        assert status["sent"] == 7 and status["dropped"] == 0 and status["last_error"] is None
    finally:
        second.stop()
    got: list[dict[str, Any]] = []
    wait_for(lambda: got.extend(collector.received()) or len(got) >= len(expected))
    collector.close()
    assert collections.Counter((m["seq"], m["ts"]) for m in got) == collections.Counter(expected)
    assert len({m["event_id"] for m in got}) == len(expected)  # the dedup key is unique per result


def test_spool_keeps_messages_across_reopen_and_drops_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    spool = Spool(path, size=5)
    spool.add([(f"e{i}", f"body {i}".encode()) for i in range(7)])
    assert spool.count == 5 and spool.dropped == 2
    first = spool.after(0, 10)
    assert [m.event_id for m in first] == ["e2", "e3", "e4", "e5", "e6"]
    spool.remove([first[0].id])
    spool.close()
    again = Spool(path, size=5)
    assert [m.body for m in again.after(0, 10)] == [f"body {i}".encode() for i in range(3, 7)]
    assert again.count == 4
    again.close()


def test_a_corrupt_outbox_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"not a database at all" * 100)
    spool = Spool(path, size=5)
    spool.add([("e", b"x")])
    assert spool.count == 1
    assert list(tmp_path.glob("outbox.db.corrupt-*"))
    spool.close()
