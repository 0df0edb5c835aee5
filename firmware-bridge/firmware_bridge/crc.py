"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""

import binascii

CRC_INIT = 0xFFFF


def crc16(data: bytes | bytearray | memoryview, crc: int = CRC_INIT) -> int:
    """Return the CRC-16/CCITT-FALSE of ``data`` (check value for b"123456789" is 0x29B1)."""
    return binascii.crc_hqx(data, crc)
