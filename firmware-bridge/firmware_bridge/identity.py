"""The local identity a session announces in its HELLO."""

from dataclasses import dataclass

from firmware_bridge.messages import Capability, Hello
from firmware_bridge.protocol import MAX_PAYLOAD, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, PACKAGE_VERSION

HOST_CAPABILITIES = (
    Capability.SENSOR_FRAME
    | Capability.TRIGGER
    | Capability.RESULT
    | Capability.IO_SET
    | (Capability.HEARTBEAT)
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who we are: ``device_id`` 0 is conventional for the host."""

    device_id: int = 0
    capabilities: int = int(HOST_CAPABILITIES)
    firmware: str = f"firmware_bridge/{PACKAGE_VERSION}"
    max_payload: int = MAX_PAYLOAD
    min_version: int = MIN_PROTOCOL_VERSION
    max_version: int = MAX_PROTOCOL_VERSION

    def __post_init__(self) -> None:
        self.hello(0)  # validates all fields

    def hello(self, flags: int) -> Hello:
        return Hello(
            flags=flags,
            min_version=self.min_version,
            max_version=self.max_version,
            device_id=self.device_id,
            capabilities=self.capabilities,
            max_payload=self.max_payload,
            firmware=self.firmware,
        )
