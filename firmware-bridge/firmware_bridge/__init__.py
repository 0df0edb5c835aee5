"""firmware-bridge: serial protocol between the edge appliance and sensor/IO microcontrollers.

Typical host use::

    from firmware_bridge import Result, SensorFrame, Session, Trigger, Verdict

    with Session.open("/dev/ttyUSB0", baudrate=115200) as session:
        session.wait_ready(5.0)
        message = session.receive(timeout=1.0)
        if isinstance(message, SensorFrame):
            window = message.to_array()          # numpy float32 [128, 3]
        session.send(Result(result_id=1, ref_seq=message.seq, label=2, score_permille=930,
                            verdict=Verdict.FAIL)).wait(1.0)
        status = session.stats().as_dict()       # decoder / transport / session counters
"""

from firmware_bridge.codec import Decoder, DecoderStats, EncodeError, FrameError, Reject, decode_frame, encode
from firmware_bridge.delivery import Delivery, DeliveryStatus
from firmware_bridge.fdtransport import FdTransport
from firmware_bridge.identity import Identity
from firmware_bridge.loopback import LoopbackTransport
from firmware_bridge.messages import (
    MESSAGE_CLASSES,
    RELIABLE_TYPES,
    Ack,
    Capability,
    DeviceStatus,
    EnterBootloader,
    ErrorCode,
    Heartbeat,
    Hello,
    HelloFlag,
    IoSet,
    Message,
    MessageType,
    Nack,
    Result,
    SensorFrame,
    TimeReply,
    TimeRequest,
    Trigger,
    Verdict,
)
from firmware_bridge.protocol import PACKAGE_VERSION, REF_SEQ_NONE
from firmware_bridge.session import Session, SessionConfig, SessionState
from firmware_bridge.session_stats import SessionCounters, SessionStats
from firmware_bridge.tensor import DType
from firmware_bridge.transport import LinkState, SerialTransport, Transport, TransportConfig, TransportStats
from firmware_bridge.uart import PacedTransport
from firmware_bridge.virtualport import VirtualPort

__version__ = PACKAGE_VERSION

__all__ = [
    "MESSAGE_CLASSES",
    "REF_SEQ_NONE",
    "RELIABLE_TYPES",
    "Ack",
    "Capability",
    "DType",
    "Decoder",
    "DecoderStats",
    "Delivery",
    "DeliveryStatus",
    "DeviceStatus",
    "EncodeError",
    "EnterBootloader",
    "ErrorCode",
    "FdTransport",
    "FrameError",
    "Heartbeat",
    "Hello",
    "HelloFlag",
    "Identity",
    "IoSet",
    "LinkState",
    "LoopbackTransport",
    "Message",
    "MessageType",
    "Nack",
    "PacedTransport",
    "Reject",
    "Result",
    "SensorFrame",
    "SerialTransport",
    "Session",
    "SessionConfig",
    "SessionCounters",
    "SessionState",
    "SessionStats",
    "TimeReply",
    "TimeRequest",
    "Transport",
    "TransportConfig",
    "TransportStats",
    "Trigger",
    "Verdict",
    "VirtualPort",
    "__version__",
    "decode_frame",
    "encode",
]
