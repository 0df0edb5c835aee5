"""Start and stop the PLC-facing outputs the configuration enables; their status for the API.

`Services.start()` calls `start_outputs(services)` once the pipeline runs, and `Services.stop()`
calls `stop_outputs(...)` before the pipeline stops, so that a trigger in flight can finish. A bad
setting (webhook URL, unreadable password file) raises ConfigError naming the key; an output that
cannot start (Modbus port taken) is logged and shown as unavailable, and the appliance runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from appliance.config import PlcConfig
from appliance.errors import ApplianceError
from appliance.pipeline.inspection import passes
from appliance.plc.handshake import Actions, Handshake
from appliance.plc.modbus import ModbusOptions, ModbusOutput
from appliance.plc.mqtt import MqttOptions, MqttOutput
from appliance.plc.payloads import Feed
from appliance.plc.webhooks import WebhookOptions, WebhookOutput

if TYPE_CHECKING:  # services imports this module: no import cycle at run time
    from appliance.services import Services

logger = logging.getLogger(__name__)


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


def _active_model(services: Services) -> str | None:
    runtime = services.manager.current()
    return runtime.manifest.name if runtime is not None else None


def handshake_for(services: Services, plc: PlcConfig) -> Handshake:
    actions = Actions(
        trigger=lambda: services.inspector.trigger(services.pipeline),
        activate=services.manager.activate,
        active_model=lambda: _active_model(services),
        slots=plc.model_slots,
    )
    return Handshake(actions)


def _feed(services: Services) -> Feed:
    return Feed(services.bus, lambda result: passes(result, services.inspector.rule))


def _modbus(services: Services, plc: PlcConfig) -> Output:
    options = ModbusOptions(plc.modbus_host, plc.modbus_port, plc.modbus_unit_id)
    return ModbusOutput(handshake_for(services, plc), options)


def _mqtt(services: Services, plc: PlcConfig) -> Output:
    return MqttOutput(
        MqttOptions.from_config(plc, services.config.source.name, services.config.data_dir), _feed(services)
    )


def _webhooks(services: Services, plc: PlcConfig) -> Output:
    return WebhookOutput(WebhookOptions.from_config(plc), _feed(services))


Builder = Callable[["Services", PlcConfig], Output]
OUTPUTS: dict[str, tuple[Callable[[PlcConfig], bool], Builder]] = {
    "modbus": (lambda plc: plc.modbus_enabled, _modbus),
    "mqtt": (lambda plc: plc.mqtt_enabled, _mqtt),
    "webhooks": (lambda plc: bool(plc.webhook_urls), _webhooks),
}


def start_outputs(services: Services, config: PlcConfig | None = None) -> list[Output]:
    """Start every enabled output (config defaults to services.config.plc)."""
    plc = config if config is not None else services.config.plc
    started: list[Output] = []
    try:
        for name, (enabled, build) in OUTPUTS.items():
            if enabled(plc):
                started.append(_start(name, build(services, plc)))
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
