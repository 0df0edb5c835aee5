"""MQTT against a real mosquitto broker started by the test; results from a real appliance."""

from __future__ import annotations

import getpass
import json
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.config import ConfigError, PlcConfig
from appliance.plc.outputs import Output, outputs_status, start_outputs, stop_outputs
from appliance.services import Services
from tests.conftest import config_for, free_port
from tests.test_plc_modbus import triggered_video

PREFIX = "plant/line1/cam"
WAIT_S = 10.0


@dataclass
class Broker:
    port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        assert Path(mosquitto).exists(), "mosquitto is missing: make system-deps installs it"
        self.process = subprocess.Popen(
            [mosquitto, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def broker_config(tmp_path: Path, port: int, security: str = "allow_anonymous true\n") -> Path:
    config = tmp_path / f"mosquitto-{port}.conf"
    # `user`: as root, mosquitto would switch to its own user, which cannot read pytest's tmp_path
    config.write_text(f"listener {port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n{security}")
    return config


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    port = free_port()
    running = Broker(port, broker_config(tmp_path, port))
    running.start()
    yield running
    running.stop()


@dataclass
class Subscriber:
    """A plain paho client, as an integrator would write it."""

    port: int
    messages: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe(f"{PREFIX}/#", qos=1)
        self.client.loop_start()

    def next(self, topic: str) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                message = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if message.topic == topic:
                return message
        raise AssertionError(f"nothing on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Appliance:
    services: Services
    outputs: list[Output]

    def trigger(self) -> Any:
        return self.services.inspector.trigger(self.services.pipeline)


@pytest.fixture
def appliance(data_dir: Path, tmp_path: Path) -> Iterator[Appliance]:
    services = Services.build(config_for(data_dir, triggered_video(tmp_path)))
    services.start()
    running = Appliance(services, [])
    yield running
    stop_outputs(running.outputs)
    services.stop()


def mqtt_config(port: int, **extra: Any) -> PlcConfig:
    return PlcConfig(mqtt_enabled=True, mqtt_port=port, mqtt_topic_prefix=PREFIX, mqtt_qos=1, **extra)


def wait_connected(outputs: list[Output]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not outputs_status(outputs)["mqtt"]["connected"]:
        assert time.monotonic() < deadline, outputs_status(outputs)
        time.sleep(0.02)


def test_results_and_retained_status_reach_a_subscriber(broker: Broker, appliance: Appliance) -> None:
    appliance.outputs = start_outputs(appliance.services, mqtt_config(broker.port))
    wait_connected(appliance.outputs)
    subscriber = Subscriber(broker.port)
    try:
        assert subscriber.next(f"{PREFIX}/status").payload == b"online"
        outcome = appliance.trigger()
        message = subscriber.next(f"{PREFIX}/result")
        body = json.loads(message.payload)
        assert b" " not in message.payload  # compact JSON
        assert body["seq"] == outcome.result.seq and body["ok"] == outcome.ok
        assert body["model"] == "face" and body["count"] == outcome.result.count
        assert {"label", "label_id", "score", "latency_ms", "backend", "ts", "detections"} <= body.keys()
        stop_outputs(appliance.outputs)
        offline = subscriber.next(f"{PREFIX}/status")
        assert offline.payload == b"offline" and offline.retain is False  # live delivery
        status = outputs_status(appliance.outputs)["mqtt"]
        assert status["sent"] == 1 and status["errors"] == 0 and status["dropped"] == 0
    finally:
        subscriber.close()
    late = Subscriber(broker.port)  # a client that connects later still learns the status
    try:
        retained = late.next(f"{PREFIX}/status")
        assert retained.payload == b"offline" and retained.retain
    finally:
        late.close()


def test_reconnects_after_the_broker_restarts(broker: Broker, appliance: Appliance) -> None:
    appliance.outputs = start_outputs(appliance.services, mqtt_config(broker.port))
    wait_connected(appliance.outputs)
    broker.stop()
    deadline = time.monotonic() + WAIT_S
    while outputs_status(appliance.outputs)["mqtt"]["connected"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    held = appliance.trigger()  # published once the broker is back
    broker.start()
    subscriber = Subscriber(broker.port)
    try:
        wait_connected(appliance.outputs)
        body = json.loads(subscriber.next(f"{PREFIX}/result").payload)
        assert body["seq"] == held.result.seq
        status = outputs_status(appliance.outputs)["mqtt"]
        assert status["last_error"] is None  # cleared on recovery
    finally:
        subscriber.close()


def test_password_comes_from_a_file(tmp_path: Path, appliance: Appliance) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "cam", "s3cret"], check=True)
    port = free_port()
    secured = Broker(
        port, broker_config(tmp_path, port, f"allow_anonymous false\npassword_file {passwords}\n")
    )
    secured.start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    try:
        appliance.outputs = start_outputs(
            appliance.services, mqtt_config(port, mqtt_username="cam", mqtt_password_file=str(secret))
        )
        wait_connected(appliance.outputs)
        stop_outputs(appliance.outputs)
        wrong = tmp_path / "wrong-password"
        wrong.write_text("guess\n")
        appliance.outputs = start_outputs(
            appliance.services, mqtt_config(port, mqtt_username="cam", mqtt_password_file=str(wrong))
        )
        deadline = time.monotonic() + WAIT_S
        while "refused" not in (outputs_status(appliance.outputs)["mqtt"]["last_error"] or ""):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(ConfigError, match=r"plc\.mqtt_password_file"):
            start_outputs(appliance.services, mqtt_config(port, mqtt_password_file=str(tmp_path / "missing")))
    finally:
        stop_outputs(appliance.outputs)
        appliance.outputs = []
        secured.stop()
