"""Layout constants of the on-PV format (docs/format.md, include/vgfs/pv_format.h)
and the CRC32C every checksummed record carries, for tests that read or damage
PV images directly."""

from __future__ import annotations

from .sizes import KiB, MiB

LABEL_OFFSETS = (0, 4 * KiB)
LABEL_SIZE = 4 * KiB
SLOT_OFFSETS = (1 * MiB, 5 * MiB)
SLOT_HEADER_SIZE = 4 * KiB


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as every checksummed vgfs record uses."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value
