"""The documented records of one vgfs PV image (docs/format.md), read and
rewritten with valid CRCs by the tests that check what vgfs does with them:
test_format.py (damage and repair) and test_hostile_metadata.py (hostile
fields behind valid checksums)."""
import os
import struct
import uuid as uuidlib

from vgfstest import LABEL_OFFSETS, LABEL_SIZE, MiB, SLOT_HEADER_SIZE, SLOT_OFFSETS, crc32c

LABEL_FIELDS = ("extent_size", "slot0", "slot1", "slot_size", "mig_offset", "mig_size",
                "pe_start", "pe_count", "device_size")


class PvImage:
    """Reads and writes the documented records of one PV image."""

    def __init__(self, path):
        self.path = path

    def read(self, off, n) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(off)
            return f.read(n)

    def write(self, off, data: bytes) -> None:
        with open(self.path, "r+b") as f:
            f.seek(off)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def label(self, copy=0) -> dict:
        b = self.read(LABEL_OFFSETS[copy], LABEL_SIZE)
        assert b[:8] == b"VGFSLABL", b[:8]
        version, size = struct.unpack_from("<II", b, 8)
        out = dict(zip(LABEL_FIELDS, struct.unpack_from("<9Q", b, 48)))
        out.update(version=version, label_size=size, pv_uuid=str(uuidlib.UUID(bytes=b[16:32])),
                   vg_uuid=str(uuidlib.UUID(bytes=b[32:48])),
                   crc=struct.unpack_from("<I", b, 4092)[0], crc_ok=crc32c(b[:4092]) ==
                   struct.unpack_from("<I", b, 4092)[0], raw=b)
        return out

    def write_label(self, label_size=None, **fields) -> None:
        """Rewrites both label copies with `fields` (and the label-size field)
        changed and a valid CRC."""
        b = bytearray(self.label(0)["raw"])
        vals = list(struct.unpack_from("<9Q", b, 48))
        for k, v in fields.items():
            vals[LABEL_FIELDS.index(k)] = v
        struct.pack_into("<9Q", b, 48, *vals)
        if label_size is not None:
            struct.pack_into("<I", b, 12, label_size)
        struct.pack_into("<I", b, 4092, crc32c(bytes(b[:4092])))
        for off in LABEL_OFFSETS:
            self.write(off, bytes(b))

    def slot(self, i) -> tuple[dict, bytes]:
        h = self.read(SLOT_OFFSETS[i], SLOT_HEADER_SIZE)
        if h[:8] != b"VGFSMETA":
            return {"magic": h[:8]}, b""
        version, _pad, seqno, length, tcrc = struct.unpack_from("<IIQQI", h, 8)
        hdr = dict(magic=h[:8], version=version, seqno=seqno, length=length, text_crc=tcrc,
                   crc_ok=crc32c(h[:4092]) == struct.unpack_from("<I", h, 4092)[0])
        text = self.read(SLOT_OFFSETS[i] + SLOT_HEADER_SIZE, min(length, 4 * MiB))
        hdr["text_ok"] = crc32c(text) == tcrc
        return hdr, text

    def slot_text(self, i) -> bytes:
        h = self.read(SLOT_OFFSETS[i], SLOT_HEADER_SIZE)
        assert h[:8] == b"VGFSMETA", h[:8]
        length = struct.unpack_from("<Q", h, 24)[0]
        return self.read(SLOT_OFFSETS[i] + SLOT_HEADER_SIZE, length)

    def write_slot(self, i, seqno, text: bytes, length=None, text_crc=None) -> None:
        """Slot i: header (seqno, length, text CRC) and text, header CRC valid."""
        h = bytearray(SLOT_HEADER_SIZE)
        h[:8] = b"VGFSMETA"
        struct.pack_into("<IIQQI", h, 8, 1, 0, seqno, len(text) if length is None else length,
                         crc32c(text) if text_crc is None else text_crc)
        struct.pack_into("<I", h, 4092, crc32c(bytes(h[:4092])))
        self.write(SLOT_OFFSETS[i], bytes(h) + text)
