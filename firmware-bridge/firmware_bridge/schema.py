"""The message table as canonical text, and its hash (exchanged in the 1.1 HELLO extension).

Like MAVLink's CRC_EXTRA: two sides built from different message tables (a field added on one side
only) have different hashes and refuse the handshake instead of misreading payloads. The text lists,
per type, the code, name and each field's wire type in order; the hash is CRC-32 (IEEE 802.3, as
``zlib.crc32``) of the UTF-8 text. A 1.0 peer sends no hash and is assumed to use the 1.0 table.
"""

import zlib
from typing import Final

_V10_TABLE: Final = (
    "0x01 HELLO u8:flags u8:min_version u8:max_version u32:device_id u32:capabilities "
    "u16:max_payload u8:n char[n]:firmware",
    "0x02 ACK u8:acked_type u16:acked_seq",
    "0x03 NACK u8:acked_type u16:acked_seq u8:code",
    "0x04 HEARTBEAT u32:uptime_ms u32:rx_frames u32:rx_errors u32:tx_frames u32:tx_retries",
    "0x10 SENSOR_FRAME u8:sensor_id u32:timestamp_ms u8:dtype u8:rank u16[rank]:shape data",
    "0x11 TRIGGER u8:input_id u32:timestamp_ms",
    "0x20 RESULT u32:result_id u16:ref_seq i16:label u16:score_permille u8:verdict",
    "0x21 IO_SET u8:output_id u8:state u16:pulse_ms",
)
_V11_ADDED: Final = (
    "0x01+ HELLO u8:minor_version u32:schema_hash u32:boot_id",
    "0x05 TIME_REQUEST u32:token",
    "0x06 TIME_REPLY u32:token u32:device_ms",
    "0x12 DEVICE_STATUS u32:uptime_ms u32:fault_flags u32:trigger_overflows u32:sample_overruns "
    "u32:tx_dropped",
    "0x22 ENTER_BOOTLOADER u32:magic u8:mode",
)

TABLES: Final[dict[int, tuple[str, ...]]] = {0: _V10_TABLE, 1: _V10_TABLE + _V11_ADDED}
"""Canonical table text per minor version of protocol 1."""


def schema_text(minor: int) -> str:
    return "\n".join(TABLES[minor]) + "\n"


def schema_hash(minor: int) -> int:
    """CRC-32 of the canonical table of protocol 1.``minor``."""
    return zlib.crc32(schema_text(minor).encode("utf-8")) & 0xFFFF_FFFF


SCHEMA_HASHES: Final[dict[int, int]] = {minor: schema_hash(minor) for minor in TABLES}
