"""MQTT (paho-mqtt 2.x): every result to `<prefix>/result`, a retained `<prefix>/status`.

The status topic holds `online` while the appliance is connected; the broker publishes the
last-will `offline` (retained) when the connection dies, and a clean stop publishes it too.
paho's network thread reconnects with exponential backoff (1 s doubling up to
plc.mqtt_reconnect_max_s); results wait in a bounded outbox meanwhile, the oldest dropped first.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from appliance.config import ConfigError, PlcConfig, Problem
from appliance.pipeline.results import Result
from appliance.plc.outbox import Outbox
from appliance.plc.payloads import Feed, Judged, encode

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = b"online", b"offline"
STATUS_QOS = 1
RECONNECT_MIN_S = 1
CONNECTED_POLL_S = 0.5
GOODBYE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class MqttOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "appliance/main"
    username: str = ""
    password: str = ""
    qos: int = 0
    keepalive_s: int = 30
    reconnect_max_s: int = 30
    queue_size: int = 1000

    @classmethod
    def from_config(cls, plc: PlcConfig, source_name: str) -> MqttOptions:
        return cls(
            host=plc.mqtt_host,
            port=plc.mqtt_port,
            prefix=(plc.mqtt_topic_prefix or f"appliance/{source_name}").rstrip("/"),
            username=plc.mqtt_username,
            password=read_password(plc.mqtt_password_file),
            qos=plc.mqtt_qos,
            keepalive_s=plc.mqtt_keepalive_s,
            reconnect_max_s=plc.mqtt_reconnect_max_s,
            queue_size=plc.mqtt_queue_size,
        )

    @property
    def result_topic(self) -> str:
        return f"{self.prefix}/result"

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"


def read_password(path: str) -> str:
    """The first line of the password file; "" when no file is configured."""
    if not path:
        return ""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError([Problem("plc.mqtt_password_file", f"cannot read {path}: {err.strerror}")]) from err
    return lines[0] if lines else ""


class MqttOutput:
    name = "mqtt"

    def __init__(self, options: MqttOptions, feed: Feed) -> None:
        self.options = options
        self.feed = feed
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self._connected = threading.Event()
        self._outbox: Outbox[Judged] = Outbox("mqtt", options.queue_size, self._publish)
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.will_set(self.options.status_topic, OFFLINE, qos=STATUS_QOS, retain=True)
        if self.options.username:
            client.username_pw_set(self.options.username, self.options.password or None)
        client.reconnect_delay_set(RECONNECT_MIN_S, self.options.reconnect_max_s)
        client.max_queued_messages_set(self.options.queue_size)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def start(self) -> None:
        self._client.connect_async(self.options.host, self.options.port, self.options.keepalive_s)
        self._client.loop_start()
        self._outbox.start()
        self.feed.bus.subscribe(f"plc-{self.name}", self.offer)
        o = self.options
        logger.info("MQTT: publishing to %s:%d under %s/", o.host, o.port, o.prefix)

    def offer(self, result: Result) -> None:
        """Bus subscriber (pipeline thread): queue and return at once."""
        self._outbox.put(Judged.of(result, self.feed.judge))

    def stop(self) -> None:
        self.feed.bus.unsubscribe(f"plc-{self.name}")
        self._outbox.stop()
        if self._connected.is_set():
            info = self._client.publish(self.options.status_topic, OFFLINE, qos=STATUS_QOS, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                info.wait_for_publish(GOODBYE_TIMEOUT_S)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "broker": f"{self.options.host}:{self.options.port}",
            "topic": self.options.result_topic,
            "connected": self._connected.is_set(),
            "sent": self.sent,
            "errors": self.errors + self._outbox.failed,
            "dropped": self._outbox.dropped,
            "pending": self._outbox.pending(),
            "last_error": self.last_error,
        }

    def _publish(self, judged: Judged) -> None:
        while not self._connected.wait(CONNECTED_POLL_S):
            if self._outbox.stopping:
                return
        info = self._client.publish(self.options.result_topic, encode(judged), qos=self.options.qos)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.sent += 1
        else:
            self.errors += 1
            self.last_error = mqtt.error_string(info.rc)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            error = f"broker refused the connection: {reason}"
            if error != self.last_error:  # paho retries with backoff: log the change, not each retry
                logger.warning("MQTT: %s", error)
            self.last_error = error
            return
        client.publish(self.options.status_topic, ONLINE, qos=STATUS_QOS, retain=True)
        self._connected.set()
        logger.info("MQTT: connected to %s:%d", self.options.host, self.options.port)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._outbox.stopping:
            self.last_error = f"connection lost: {reason}"
            logger.warning("MQTT: %s; reconnecting", self.last_error)
