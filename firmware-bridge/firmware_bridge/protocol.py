"""Protocol constants shared by the codec, the session and the documentation.

Every number here is normative: ``PROTOCOL.md`` and the C firmware (``firmware/core/fb_protocol.h``)
use the same values.
"""

from typing import Final

PACKAGE_VERSION: Final = "0.1.0"

PROTOCOL_VERSION: Final = 1
"""Major version: the byte written into every frame header (1.0 and 1.1 both write 1)."""
MIN_PROTOCOL_VERSION: Final = 1
MAX_PROTOCOL_VERSION: Final = 1
PROTOCOL_MINOR: Final = 1
"""Minor version announced in the HELLO extension (a 1.0 peer sends no extension: minor 0)."""

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
REF_SEQ_NONE: Final = 0xFFFF
"""RESULT.ref_seq when the result answers no message; 1.1 senders never use 0xFFFF as a sequence."""
MIN_MAX_PAYLOAD: Final = 64
"""Smallest HELLO max_payload a receiver may announce (every host -> device message fits)."""
DUPLICATE_WINDOW_S: Final = 2.0
"""A repeat of the last ACKed (type, seq) is a duplicate only within this time of the ACK."""
INTER_BYTE_TIMEOUT_S: Final = 0.1
"""A partial frame with no new byte for this long is discarded."""
NACK_BURST_S: Final = 1.0
"""At most one UNSUPPORTED_VERSION / UNKNOWN_TYPE NACK per this interval (and per burst)."""
TIME_SYNC_INTERVAL_S: Final = 10.0
DEVICE_STATUS_INTERVAL_S: Final = 5.0
BOOTLOADER_MAGIC: Final = 0xB007_10AD
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
