"""Message dataclasses (frozen), one per wire message type, plus the enums they use.

Every message carries its header sequence number in the keyword-only ``seq`` field. Application
code normally leaves it at 0: :meth:`firmware_bridge.session.Session.send` assigns the real one.
Field ranges are validated on construction, so an out-of-range value fails early with a clear
``ValueError`` instead of at encode time.
"""

from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any, ClassVar

import numpy.typing as npt

from firmware_bridge.protocol import FIRMWARE_STRING_MAX, MAX_PAYLOAD, MAX_RANK, MIN_MAX_PAYLOAD
from firmware_bridge.tensor import DType, array_to_wire, expected_size, wire_to_array
from firmware_bridge.wire_types import (
    CAPABILITY_OF,
    MINOR1_TYPES,
    NACKABLE_TYPES,
    RELIABLE_TYPES,
    RETRYABLE_ERRORS,
    Capability,
    ErrorCode,
    HelloFlag,
    MessageType,
    Verdict,
    check_int,
    u8,
    u16,
    u32,
)

__all__ = [
    "CAPABILITY_OF",
    "MESSAGE_CLASSES",
    "MINOR1_TYPES",
    "NACKABLE_TYPES",
    "RELIABLE_TYPES",
    "RETRYABLE_ERRORS",
    "Ack",
    "Capability",
    "DeviceFault",
    "DeviceStatus",
    "EnterBootloader",
    "ErrorCode",
    "Heartbeat",
    "Hello",
    "HelloFlag",
    "IoSet",
    "Message",
    "MessageType",
    "Nack",
    "Result",
    "SensorFrame",
    "TimeReply",
    "TimeRequest",
    "Trigger",
    "Verdict",
]


@dataclass(frozen=True, slots=True)
class Hello:
    """Handshake: identity, supported protocol versions and capabilities of the sender."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    flags: int
    min_version: int
    max_version: int
    device_id: int
    capabilities: int
    max_payload: int
    firmware: str
    minor_version: int | None = None
    """1.1 extension (appended after ``firmware``); ``None``: a 1.0 HELLO without extension."""
    schema_hash: int = 0
    boot_id: int = 0
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u8("Hello.flags", self.flags)
        if self.minor_version is not None:
            u8("Hello.minor_version", self.minor_version)
        u32("Hello.schema_hash", self.schema_hash)
        u32("Hello.boot_id", self.boot_id)
        u8("Hello.min_version", self.min_version)
        u8("Hello.max_version", self.max_version)
        if self.min_version > self.max_version:
            raise ValueError(f"Hello.min_version {self.min_version} > max_version {self.max_version}")
        u32("Hello.device_id", self.device_id)
        u32("Hello.capabilities", self.capabilities)
        check_int("Hello.max_payload", self.max_payload, MIN_MAX_PAYLOAD, 0xFFFF)
        if len(self.firmware) > FIRMWARE_STRING_MAX or not all(" " <= ch <= "~" for ch in self.firmware):
            raise ValueError(
                f"Hello.firmware must be printable ASCII of at most {FIRMWARE_STRING_MAX} chars, "
                f"got {self.firmware!r}"
            )
        u16("Hello.seq", self.seq)

    @property
    def reply_requested(self) -> bool:
        return bool(self.flags & HelloFlag.REPLY_REQUESTED)

    @property
    def minor(self) -> int:
        """The sender's minor version (0 for a 1.0 HELLO)."""
        return 0 if self.minor_version is None else self.minor_version


@dataclass(frozen=True, slots=True)
class SensorFrame:
    """A typed tensor from a sensor (e.g. an accelerometer window, float32 [128, 3])."""

    TYPE: ClassVar[MessageType] = MessageType.SENSOR_FRAME
    HEADER_SIZE: ClassVar[int] = 7
    sensor_id: int
    timestamp_ms: int
    dtype: DType
    shape: tuple[int, ...]
    data: bytes
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u8("SensorFrame.sensor_id", self.sensor_id)
        u32("SensorFrame.timestamp_ms", self.timestamp_ms)
        object.__setattr__(self, "dtype", DType(self.dtype))
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "data", bytes(self.data))
        if not 1 <= len(self.shape) <= MAX_RANK:
            raise ValueError(f"SensorFrame rank must be 1..{MAX_RANK}, got shape {self.shape}")
        for dim in self.shape:
            check_int("SensorFrame.shape dimension", dim, 1, 0xFFFF)
        need = expected_size(self.dtype, self.shape)
        if len(self.data) != need:
            raise ValueError(
                f"SensorFrame data has {len(self.data)} bytes; "
                f"{self.dtype.name}{list(self.shape)} needs {need}"
            )
        size = self.HEADER_SIZE + 2 * len(self.shape) + need
        if size > MAX_PAYLOAD:
            raise ValueError(f"SensorFrame payload of {size} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
        u16("SensorFrame.seq", self.seq)

    @classmethod
    def from_array(
        cls, array: npt.NDArray[Any], *, sensor_id: int = 0, timestamp_ms: int = 0
    ) -> "SensorFrame":
        """Build a frame from a numpy array (u8/i8/i16/u16/i32/f32, rank 1..4)."""
        dtype, shape, data = array_to_wire(array)
        return cls(sensor_id=sensor_id, timestamp_ms=timestamp_ms, dtype=dtype, shape=shape, data=data)

    def to_array(self) -> npt.NDArray[Any]:
        """The tensor as a writable, native-endian numpy array of ``shape``."""
        return wire_to_array(self.dtype, self.shape, self.data)


@dataclass(frozen=True, slots=True)
class Trigger:
    """MCU -> host: a digital input (photo-eye) fired at ``timestamp_ms`` (MCU clock)."""

    TYPE: ClassVar[MessageType] = MessageType.TRIGGER
    input_id: int
    timestamp_ms: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u8("Trigger.input_id", self.input_id)
        u32("Trigger.timestamp_ms", self.timestamp_ms)
        u16("Trigger.seq", self.seq)


@dataclass(frozen=True, slots=True)
class Result:
    """Host -> MCU: an inference result. ``ref_seq`` is the seq of the TRIGGER/SENSOR_FRAME it answers."""

    TYPE: ClassVar[MessageType] = MessageType.RESULT
    result_id: int
    ref_seq: int
    label: int
    score_permille: int
    verdict: Verdict
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u32("Result.result_id", self.result_id)
        u16("Result.ref_seq", self.ref_seq)
        check_int("Result.label", self.label, -0x8000, 0x7FFF)
        check_int("Result.score_permille", self.score_permille, 0, 1000)
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        u16("Result.seq", self.seq)


@dataclass(frozen=True, slots=True)
class IoSet:
    """Host -> MCU: set a digital output; ``pulse_ms`` > 0 reverts it after that many ms."""

    TYPE: ClassVar[MessageType] = MessageType.IO_SET
    output_id: int
    state: bool
    pulse_ms: int = 0
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u8("IoSet.output_id", self.output_id)
        if not isinstance(self.state, bool):
            raise ValueError(f"IoSet.state must be a bool, got {self.state!r}")
        u16("IoSet.pulse_ms", self.pulse_ms)
        u16("IoSet.seq", self.seq)


@dataclass(frozen=True, slots=True)
class Ack:
    """Positive acknowledgement of the reliable message ``(acked_type, acked_seq)``."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    acked_type: int
    acked_seq: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u8("Ack.acked_type", self.acked_type)
        u16("Ack.acked_seq", self.acked_seq)
        u16("Ack.seq", self.seq)


@dataclass(frozen=True, slots=True)
class Nack:
    """Negative acknowledgement; ``code`` is an :class:`ErrorCode` value (unknown codes are kept)."""

    TYPE: ClassVar[MessageType] = MessageType.NACK
    acked_type: int
    acked_seq: int
    code: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u8("Nack.acked_type", self.acked_type)
        u16("Nack.acked_seq", self.acked_seq)
        u8("Nack.code", self.code)
        u16("Nack.seq", self.seq)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Keep-alive with the sender's uptime and link counters."""

    TYPE: ClassVar[MessageType] = MessageType.HEARTBEAT
    uptime_ms: int
    rx_frames: int
    rx_errors: int
    tx_frames: int
    tx_retries: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        for name in ("uptime_ms", "rx_frames", "rx_errors", "tx_frames", "tx_retries"):
            u32(f"Heartbeat.{name}", getattr(self, name))
        u16("Heartbeat.seq", self.seq)


@dataclass(frozen=True, slots=True)
class TimeRequest:
    """1.1, host -> device: "what is your clock?"; ``token`` comes back in the TIME_REPLY."""

    TYPE: ClassVar[MessageType] = MessageType.TIME_REQUEST
    token: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u32("TimeRequest.token", self.token)
        u16("TimeRequest.seq", self.seq)


@dataclass(frozen=True, slots=True)
class TimeReply:
    """1.1, device -> host: the request's ``token`` and the device clock when the request arrived."""

    TYPE: ClassVar[MessageType] = MessageType.TIME_REPLY
    token: int
    device_ms: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u32("TimeReply.token", self.token)
        u32("TimeReply.device_ms", self.device_ms)
        u16("TimeReply.seq", self.seq)


class DeviceFault(IntFlag):
    """DEVICE_STATUS fault_flags; bits 4..31 reserved (sent 0, ignored)."""

    SENSOR = 1 << 0
    OUTPUT = 1 << 1
    BROWNOUT_RESET = 1 << 2
    WATCHDOG_RESET = 1 << 3


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """1.1, device -> host: fault flags and loss counters (all wrap at 2^32)."""

    TYPE: ClassVar[MessageType] = MessageType.DEVICE_STATUS
    uptime_ms: int
    fault_flags: int
    trigger_overflows: int
    sample_overruns: int
    tx_dropped: int
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        for name in ("uptime_ms", "fault_flags", "trigger_overflows", "sample_overruns", "tx_dropped"):
            u32(f"DeviceStatus.{name}", getattr(self, name))
        u16("DeviceStatus.seq", self.seq)


@dataclass(frozen=True, slots=True)
class EnterBootloader:
    """1.1, host -> device (reliable): reset into the firmware-update bootloader after the ACK."""

    TYPE: ClassVar[MessageType] = MessageType.ENTER_BOOTLOADER
    magic: int
    mode: int = 0
    seq: int = field(default=0, kw_only=True)

    def __post_init__(self) -> None:
        u32("EnterBootloader.magic", self.magic)
        u8("EnterBootloader.mode", self.mode)
        u16("EnterBootloader.seq", self.seq)


Message = (
    Hello
    | SensorFrame
    | Trigger
    | Result
    | IoSet
    | Ack
    | Nack
    | Heartbeat
    | TimeRequest
    | TimeReply
    | DeviceStatus
    | EnterBootloader
)

MESSAGE_CLASSES: dict[MessageType, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        SensorFrame,
        Trigger,
        Result,
        IoSet,
        Ack,
        Nack,
        Heartbeat,
        TimeRequest,
        TimeReply,
        DeviceStatus,
        EnterBootloader,
    )
}
"""Registry: wire type code -> message class."""
