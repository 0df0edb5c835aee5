"""Protocol constants shared by the codec, the session and the documentation.

Every number here is normative: ``PROTOCOL.md`` and the C firmware (``firmware/core/fb_protocol.h``)
use the same values.
"""

from typing import Final

PACKAGE_VERSION: Final = "0.1.0"

PROTOCOL_VERSION: Final = 1
"""Version byte written into every frame header."""
MIN_PROTOCOL_VERSION: Final = 1
MAX_PROTOCOL_VERSION: Final = 1

HEADER_SIZE: Final = 6
"""version u8, type u8, sequence u16, payload length u16."""
CRC_SIZE: Final = 2
MAX_PAYLOAD: Final = 2048
"""Largest payload in bytes; larger messages cannot be encoded and are dropped by receivers."""
MAX_RAW_FRAME: Final = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
MAX_ENCODED_FRAME: Final = MAX_RAW_FRAME + MAX_RAW_FRAME // 254 + 1
"""Upper bound of a COBS-encoded frame without its 0x00 delimiter; the decoder never buffers more."""
DELIMITER: Final = b"\x00"

SEQ_MODULO: Final = 0x10000
MAX_RANK: Final = 4
FIRMWARE_STRING_MAX: Final = 32

SUPPORTED_BAUDRATES: Final = (115200, 230400, 460800, 921600)
DEFAULT_BAUDRATE: Final = 115200

HEARTBEAT_INTERVAL_S: Final = 1.0
LINK_TIMEOUT_S: Final = 3.5
"""No frame of any type received for this long means the link is lost."""
ACK_TIMEOUT_S: Final = 0.3
MAX_RETRIES: Final = 3
"""Retransmissions after the first attempt; a message is sent at most ``1 + MAX_RETRIES`` times."""
HELLO_INTERVAL_S: Final = 0.5
