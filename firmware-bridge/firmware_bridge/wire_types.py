"""Wire-level enums and sets of protocol 1.1 (type codes, error codes, flags) and field validators."""

from enum import IntEnum, IntFlag


class MessageType(IntEnum):
    """Header type codes."""

    HELLO = 0x01
    ACK = 0x02
    NACK = 0x03
    HEARTBEAT = 0x04
    TIME_REQUEST = 0x05
    TIME_REPLY = 0x06
    SENSOR_FRAME = 0x10
    TRIGGER = 0x11
    DEVICE_STATUS = 0x12
    RESULT = 0x20
    IO_SET = 0x21
    ENTER_BOOTLOADER = 0x22


RELIABLE_TYPES: frozenset[MessageType] = frozenset(
    {MessageType.TRIGGER, MessageType.RESULT, MessageType.IO_SET, MessageType.ENTER_BOOTLOADER}
)
"""Types that must be acknowledged with ACK/NACK and are retried by the sender."""

MINOR1_TYPES: frozenset[MessageType] = frozenset(
    {
        MessageType.TIME_REQUEST,
        MessageType.TIME_REPLY,
        MessageType.DEVICE_STATUS,
        MessageType.ENTER_BOOTLOADER,
    }
)
"""Types added in protocol 1.1: never sent to a 1.0 peer, unknown to a 1.0 receiver."""

NACKABLE_TYPES: frozenset[int] = frozenset({MessageType.HELLO, *RELIABLE_TYPES})
"""Known types a receiver may answer with NACK. ACK, NACK, HEARTBEAT and the other unreliable types
are never answered, whatever is wrong with them (no NACK storms); unknown types are NACKed once per
burst."""


class ErrorCode(IntEnum):
    """NACK error codes."""

    UNKNOWN_TYPE = 0x01
    MALFORMED = 0x02
    UNSUPPORTED_VERSION = 0x03
    BUSY = 0x04
    INVALID_ARGUMENT = 0x05
    NOT_READY = 0x06
    INTERNAL = 0xFF


RETRYABLE_ERRORS: frozenset[int] = frozenset({ErrorCode.BUSY, ErrorCode.NOT_READY})
"""NACK codes after which the sender keeps retrying (the message may succeed later)."""


class Verdict(IntEnum):
    """RESULT pass/fail byte."""

    PASS = 0
    FAIL = 1


class Capability(IntFlag):
    """HELLO capabilities bitfield (u32); unknown bits must be ignored."""

    SENSOR_FRAME = 1 << 0
    TRIGGER = 1 << 1
    RESULT = 1 << 2
    IO_SET = 1 << 3
    HEARTBEAT = 1 << 4
    TIME_SYNC = 1 << 5
    """1.1: answers TIME_REQUEST (device) / sends it (host)."""
    DEVICE_STATUS = 1 << 6
    """1.1: sends DEVICE_STATUS (device) / accepts it (host)."""
    BOOTLOADER = 1 << 7
    """1.1: accepts ENTER_BOOTLOADER (device) / may send it (host)."""


CAPABILITY_OF: dict[int, Capability] = {
    MessageType.SENSOR_FRAME: Capability.SENSOR_FRAME,
    MessageType.TRIGGER: Capability.TRIGGER,
    MessageType.RESULT: Capability.RESULT,
    MessageType.IO_SET: Capability.IO_SET,
    MessageType.TIME_REQUEST: Capability.TIME_SYNC,
    MessageType.DEVICE_STATUS: Capability.DEVICE_STATUS,
    MessageType.ENTER_BOOTLOADER: Capability.BOOTLOADER,
}
"""The capability bit a peer must have advertised before a message of the type is sent to it."""


class HelloFlag(IntFlag):
    """HELLO flags byte."""

    REPLY_REQUESTED = 1 << 0


def check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def u8(name: str, value: int) -> None:
    check_int(name, value, 0, 0xFF)


def u16(name: str, value: int) -> None:
    check_int(name, value, 0, 0xFFFF)


def u32(name: str, value: int) -> None:
    check_int(name, value, 0, 0xFFFF_FFFF)
