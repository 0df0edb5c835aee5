"""The local identity a session announces in its HELLO."""

from dataclasses import dataclass

from firmware_bridge.messages import Capability, Hello
from firmware_bridge.protocol import (
    MAX_PAYLOAD,
    MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION,
    PACKAGE_VERSION,
    PROTOCOL_MINOR,
)
from firmware_bridge.schema import SCHEMA_HASHES

HOST_CAPABILITIES = (
    Capability.SENSOR_FRAME
    | Capability.TRIGGER
    | Capability.RESULT
    | Capability.IO_SET
    | Capability.HEARTBEAT
    | Capability.TIME_SYNC
    | Capability.DEVICE_STATUS
    | Capability.BOOTLOADER
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who we are: ``device_id`` 0 is conventional for the host.

    ``minor_version`` 1 speaks protocol 1.1 (HELLO extension with schema hash and boot id);
    0 behaves exactly like a 1.0 implementation (used to test 1.0 compatibility).
    """

    device_id: int = 0
    capabilities: int = int(HOST_CAPABILITIES)
    firmware: str = f"firmware_bridge/{PACKAGE_VERSION}"
    max_payload: int = MAX_PAYLOAD
    min_version: int = MIN_PROTOCOL_VERSION
    max_version: int = MAX_PROTOCOL_VERSION
    minor_version: int = PROTOCOL_MINOR

    def __post_init__(self) -> None:
        if self.minor_version not in SCHEMA_HASHES:
            raise ValueError(
                f"minor_version must be one of {sorted(SCHEMA_HASHES)}, got {self.minor_version}"
            )
        self.hello(0)  # validates all fields

    def hello(self, flags: int, boot_id: int = 0) -> Hello:
        extended = self.minor_version > 0
        return Hello(
            flags=flags,
            min_version=self.min_version,
            max_version=self.max_version,
            device_id=self.device_id,
            capabilities=self.capabilities,
            max_payload=self.max_payload,
            firmware=self.firmware,
            minor_version=self.minor_version if extended else None,
            schema_hash=SCHEMA_HASHES[self.minor_version] if extended else 0,
            boot_id=boot_id if extended else 0,
        )
