"""Start and stop the PLC-facing outputs the configuration enables; their status for the API.

`Services.start()` calls `start_outputs(links)` once the pipeline runs (Links: the bus, trigger,
job change and verdict, nothing else of the appliance), and `Services.stop()`
calls `stop_outputs(...)` before the pipeline stops, so that a trigger in flight can finish. A bad
setting (webhook URL, unreadable password file) raises ConfigError naming the key; an output that
cannot start (Modbus port taken) is logged and shown as unavailable, and the appliance runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.config import PlcConfig
from appliance.errors import ApplianceError
from appliance.pipeline.inspection import TriggerOutcome
from appliance.pipeline.results import Result, ResultBus
from appliance.plc.handshake import Actions, Handshake, JobActions
from appliance.plc.modbus import ModbusOptions, ModbusOutput
from appliance.plc.mqtt import MqttOptions, MqttOutput
from appliance.plc.payloads import Feed
from appliance.plc.webhooks import WebhookOptions, WebhookOutput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Links:
    """Everything a PLC-facing output may use of the appliance, and nothing more."""

    bus: ResultBus
    trigger: Callable[[], TriggerOutcome]  # blocking; raises ApplianceError
    activate: Callable[[str], object]  # job change, proven before the switch; raises ApplianceError
    active_model: Callable[[], str | None]
    judge: Callable[[Result], bool]  # pass or fail by the current inspection rule
    plc: PlcConfig
    source_name: str
    data_dir: Path  # where an output keeps its outbox
    jobs: JobActions | None = None  # inspection jobs and production counters (Modbus)


class LinkProvider(Protocol):
    """Something that can hand out Links (the running appliance)."""

    def plc_links(self) -> Links: ...


class Output(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


@dataclass
class Unavailable:
    """An enabled output that could not start: shown in the status with the reason."""

    name: str
    reason: str

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        idle = {"connected": False, "sent": 0, "errors": 1, "dropped": 0}
        return {"enabled": True, **idle, "last_error": self.reason}


def handshake_for(links: Links, plc: PlcConfig) -> Handshake:
    actions = Actions(
        trigger=links.trigger,
        activate=links.activate,
        active_model=links.active_model,
        slots=plc.model_slots,
        jobs=links.jobs,
    )
    return Handshake(actions)


def _feed(links: Links) -> Feed:
    return Feed(links.bus, links.judge)


def _modbus(links: Links, plc: PlcConfig) -> Output:
    options = ModbusOptions(plc.modbus_host, plc.modbus_port, plc.modbus_unit_id)
    return ModbusOutput(handshake_for(links, plc), options)


def _mqtt(links: Links, plc: PlcConfig) -> Output:
    return MqttOutput(MqttOptions.from_config(plc, links.source_name, links.data_dir), _feed(links))


def _webhooks(links: Links, plc: PlcConfig) -> Output:
    return WebhookOutput(WebhookOptions.from_config(plc), _feed(links))


Builder = Callable[[Links, PlcConfig], Output]
OUTPUTS: dict[str, tuple[Callable[[PlcConfig], bool], Builder]] = {
    "modbus": (lambda plc: plc.modbus_enabled, _modbus),
    "mqtt": (lambda plc: plc.mqtt_enabled, _mqtt),
    "webhooks": (lambda plc: bool(plc.webhook_urls), _webhooks),
}


def start_outputs(links: Links | LinkProvider, config: PlcConfig | None = None) -> list[Output]:
    """Start every enabled output (config defaults to the links' [plc] section)."""
    given = links if isinstance(links, Links) else links.plc_links()
    plc = config if config is not None else given.plc
    started: list[Output] = []
    try:
        for name, (enabled, build) in OUTPUTS.items():
            if enabled(plc):
                started.append(_start(name, build(given, plc)))
    except BaseException:
        stop_outputs(started)
        raise
    return started


def _start(name: str, output: Output) -> Output:
    try:
        output.start()
    except (ApplianceError, OSError) as err:
        logger.error("%s output not started: %s", name, err)
        return Unavailable(name, str(err))
    return output


def stop_outputs(outputs: list[Output]) -> None:
    for output in reversed(outputs):
        try:
            output.stop()
        except Exception:
            logger.exception("stopping the %s output failed", output.name)


def outputs_status(outputs: list[Output]) -> dict[str, dict[str, Any]]:
    """For /api/v1/status under "plc": one entry per output, disabled ones included."""
    status: dict[str, dict[str, Any]] = {name: {"enabled": False} for name in OUTPUTS}
    status.update({output.name: output.status() for output in outputs})
    return status
