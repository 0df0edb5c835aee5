"""MQTT (paho-mqtt 2.x): every result to `<prefix>/result`, a retained `<prefix>/status`.

The status topic holds `online` while the appliance is connected; the broker publishes the
last-will `offline` (retained) when the connection dies, and a clean stop publishes it too.
paho's network thread reconnects with exponential backoff (1 s doubling up to
plc.mqtt_reconnect_max_s). Results wait in a SQLite outbox under the data directory
(`outbox-mqtt.db`, at most plc.mqtt_queue_size, the oldest dropped and counted): a result is removed
only once the broker acknowledged it (QoS 1/2; QoS 0: once written to the socket), so a broker that
is away, and a restart of the appliance meanwhile, lose nothing. Each payload carries `event_id`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from appliance.config import ConfigError, PlcConfig, Problem
from appliance.pipeline.results import Result
from appliance.plc.payloads import Feed, Judged, encode, event_id
from appliance.plc.spool import Spool, SpoolError

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = b"online", b"offline"
STATUS_QOS = 1
RECONNECT_MIN_S = 1
CONNECTED_POLL_S = 0.5
GOODBYE_TIMEOUT_S = 2.0
IN_FLIGHT = 100  # messages handed to paho and not yet acknowledged
OUTBOX_FILE = "outbox-mqtt.db"


@dataclass(frozen=True)
class MqttOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "appliance/main"
    username: str = ""
    password: str = ""
    qos: int = 1
    keepalive_s: int = 30
    reconnect_max_s: int = 5
    queue_size: int = 1000
    outbox: Path | None = None  # None: a memory-only outbox (tests of other things)

    @classmethod
    def from_config(cls, plc: PlcConfig, source_name: str, data_dir: Path) -> MqttOptions:
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
            outbox=data_dir / OUTBOX_FILE,
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
        self.sent = 0  # acknowledged by the broker
        self.retried = 0  # resent by paho after a reconnect (DUP)
        self.errors = 0
        self.last_error: str | None = None
        self._connected = threading.Event()
        self._cond = threading.Condition()
        self._incoming: deque[tuple[str, bytes]] = deque()
        self._incoming_dropped = 0
        self._acked: set[int] = set()  # mids acknowledged, matched to outbox ids by the drain thread
        self._in_flight: dict[int, int] = {}  # mid -> outbox id
        self._last_handed = 0  # outbox ids up to this one are with paho
        self._stopping = False
        self._spool: Spool | None = None
        self._thread: threading.Thread | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.will_set(self.options.status_topic, OFFLINE, qos=STATUS_QOS, retain=True)
        if self.options.username:
            client.username_pw_set(self.options.username, self.options.password or None)
        client.reconnect_delay_set(RECONNECT_MIN_S, self.options.reconnect_max_s)
        client.max_queued_messages_set(0)  # the outbox bounds what is handed over (IN_FLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        path = self.options.outbox
        try:
            self._spool = Spool(path if path is not None else Path(":memory:"), self.options.queue_size)
        except SpoolError as err:
            raise ConfigError([Problem("data.dir", str(err))]) from err
        if self._spool.count:
            logger.info("MQTT: %d result(s) from before the restart wait in the outbox", self._spool.count)
        self._thread = threading.Thread(target=self._drain, name="outbox-mqtt", daemon=True)
        self._thread.start()
        self._client.connect_async(self.options.host, self.options.port, self.options.keepalive_s)
        self._client.loop_start()
        self.feed.bus.subscribe(f"plc-{self.name}", self.offer)
        o = self.options
        logger.info("MQTT: publishing to %s:%d under %s/", o.host, o.port, o.prefix)

    def offer(self, result: Result) -> None:
        """Bus subscriber (pipeline thread): queue and return at once (the drain thread stores it)."""
        judged = Judged.of(result, self.feed.judge)
        with self._cond:
            if len(self._incoming) >= self.options.queue_size:
                self._incoming.popleft()
                self._incoming_dropped += 1
            self._incoming.append((event_id(judged.result), encode(judged)))
            self._cond.notify()

    def stop(self) -> None:
        self.feed.bus.unsubscribe(f"plc-{self.name}")
        self._wait_acknowledged(GOODBYE_TIMEOUT_S)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(GOODBYE_TIMEOUT_S * 2)
        if self._connected.is_set():
            info = self._client.publish(self.options.status_topic, OFFLINE, qos=STATUS_QOS, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                info.wait_for_publish(GOODBYE_TIMEOUT_S)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        if self._spool is not None and (self._thread is None or not self._thread.is_alive()):
            self._spool.close()

    def _wait_acknowledged(self, timeout: float) -> None:
        """While connected, give what is queued a moment to reach the broker before stopping."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._connected.is_set() and (self._incoming or self._in_flight or self._unsent()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, CONNECTED_POLL_S))

    def status(self) -> dict[str, Any]:
        spool = self._spool
        return {
            "enabled": True,
            "broker": f"{self.options.host}:{self.options.port}",
            "topic": self.options.result_topic,
            "connected": self._connected.is_set(),
            "sent": self.sent,
            "retried": self.retried,
            "errors": self.errors,
            "dropped": self._incoming_dropped + (spool.dropped if spool else 0),
            "pending": len(self._incoming) + (spool.count if spool else 0),
            "outbox": str(self.options.outbox) if self.options.outbox else None,
            "last_error": self.last_error,
        }

    def _unsent(self) -> bool:
        return self._spool is not None and self._spool.last_id > self._last_handed

    def _work(self) -> bool:
        can_send = self._connected.is_set() and len(self._in_flight) < IN_FLIGHT and self._unsent()
        return bool(self._incoming or self._acked or can_send or self._stopping)

    def _drain(self) -> None:
        assert self._spool is not None
        while True:
            with self._cond:
                while not self._work():
                    self._cond.wait(CONNECTED_POLL_S)
                batch = list(self._incoming)
                self._incoming.clear()
                done = [self._in_flight.pop(mid) for mid in list(self._acked) if mid in self._in_flight]
                self._acked.clear()  # the rest: status messages (the drain thread records every mid)
                self.sent += len(done)
                stopping = self._stopping
                self._cond.notify_all()
            try:
                self._spool.add(batch)
                self._spool.remove(done)
            except Exception as err:  # a disk error must not end delivery: count it, keep going
                self._fail(f"outbox write failed: {err}")
            if stopping:
                self._spool.close()
                return
            self._hand_over()

    def _hand_over(self) -> None:
        """Publish the outbox messages paho does not have yet (paho resends them after a reconnect)."""
        assert self._spool is not None
        room = IN_FLIGHT - len(self._in_flight)
        if not self._connected.is_set() or room <= 0:
            return
        for message in self._spool.after(self._last_handed, room):
            info = self._client.publish(self.options.result_topic, message.body, qos=self.options.qos)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._fail(mqtt.error_string(info.rc))
                return
            with self._cond:
                self._in_flight[info.mid] = message.id
                self._last_handed = message.id

    def _fail(self, error: str) -> None:
        self.errors += 1
        if error != self.last_error:
            logger.warning("MQTT: %s", error)
        self.last_error = error

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

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
        with self._cond:
            self.retried += len(self._in_flight)  # paho resends these now
            self._connected.set()
            self.last_error = None
            self._cond.notify_all()
        logger.info("MQTT: connected to %s:%d", self.options.host, self.options.port)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping:
            self.last_error = f"connection lost: {reason}"
            logger.warning("MQTT: %s; reconnecting", self.last_error)
