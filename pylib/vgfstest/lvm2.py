"""A private LVM2 world for tests that check vgfs against LVM2's own tools
(docs/lvm2.md, "Testing against LVM2"): images in /tmp/lvm2-*, loop devices
attached by this object only, and an lvm.conf with activation = 0 and a
device filter that accepts only those loops. Also LVM2's vgcfgbackup text as
dicts, and a GPT writer for disk images with LVM partitions.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import tempfile
import uuid
import zlib
from pathlib import Path


class Lvm:
    """A private LVM2 world: images in /tmp/lvm2-*, loops, an lvm.conf."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lvm2-", dir="/tmp"))
        self.etc = self.dir / "etc"
        for d in ("backup", "archive", "lock"):
            (self.etc / d).mkdir(parents=True)
        self.loops: list[str] = []
        self.env = dict(os.environ, LVM_SYSTEM_DIR=str(self.etc), LVM_SUPPRESS_FD_WARNINGS="1")
        self._write_conf()

    def _write_conf(self) -> None:
        accept = "".join(f'"a|^{re.escape(d)}$|", ' for d in self.loops)
        (self.etc / "lvm.conf").write_text(
            "global { activation = 0 locking_dir = \"%s\" }\n"
            "devices { filter = [ %s\"r|.*|\" ] global_filter = [ %s\"r|.*|\" ] hints = \"none\" "
            "use_devicesfile = 0 obtain_device_list_from_udev = 0 }\n"
            "activation { udev_sync = 0 udev_rules = 0 }\n"
            "backup { backup = 0 archive = 0 backup_dir = \"%s\" archive_dir = \"%s\" }\n"
            % (self.etc / "lock", accept, accept, self.etc / "backup", self.etc / "archive"))

    def image(self, name: str, size: int) -> Path:
        path = self.dir / name
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def attach(self, image: Path, offset: int = 0, size: int = 0) -> str:
        args = ["losetup", "-f", "--show"]
        if offset or size:
            args += ["--offset", str(offset), "--sizelimit", str(size)]
        dev = subprocess.run(args + [str(image)], check=True, capture_output=True, text=True).stdout.strip()
        self.loops.append(dev)
        self._write_conf()
        return dev

    def detach_all(self) -> None:
        for dev in self.loops:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        self.loops = []

    def run(self, *args: str) -> str:
        r = subprocess.run(list(args), env=self.env, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(args)}: {r.stderr}"
        return r.stdout

    def report(self, cmd: str, key: str, *args: str) -> list[dict]:
        out = self.run(cmd, "--reportformat", "json", "--units", "b", "--nosuffix", *args)
        return json.loads(out)["report"][0][key]

    def backup(self, vg: str) -> str:
        path = self.dir / f"{vg}.backup"
        self.run("vgcfgbackup", "-f", str(path), vg)
        return path.read_text()


def parse_backup(text: str) -> dict:
    """LVM2's vgcfgbackup text as nested dicts (enough for the comparison)."""
    tokens = re.findall(r'#[^\n]*|"(?:\\.|[^"\\])*"|[{}\[\]=,]|[^\s{}\[\]=,"#]+', text)
    tokens = [t for t in tokens if not t.startswith("#")]
    pos = 0

    def value():
        nonlocal pos
        t = tokens[pos]
        pos += 1
        if t == "[":
            items = []
            while tokens[pos] != "]":
                if tokens[pos] != ",":
                    items.append(value())
                else:
                    pos += 1
            pos += 1
            return items
        return json.loads(t) if t.startswith('"') else int(t)

    def section():
        nonlocal pos
        out = {}
        while pos < len(tokens) and tokens[pos] != "}":
            key = tokens[pos]
            pos += 1
            if tokens[pos] == "{":
                pos += 1
                out[key] = section()
                pos += 1
            else:
                assert tokens[pos] == "=", tokens[pos - 2:pos + 2]
                pos += 1
                out[key] = value()
        return out

    return section()


def write_gpt(path: Path, size: int, parts: list[tuple[int, int]]) -> None:
    """A GPT (protective MBR, primary and backup header and entries) with
    Linux LVM partitions at the given (first, last) sectors."""
    sectors = size // 512
    lvm_type = uuid.UUID("E6D6D379-F507-44C2-A23C-238F2A3DF928").bytes_le
    entries = bytearray(128 * 128)
    for i, (first, last) in enumerate(parts):
        struct.pack_into("<16s16sQQQ", entries, i * 128, lvm_type, uuid.uuid4().bytes_le, first, last, 0)
        name = f"part{i + 1}".encode("utf-16-le")
        entries[i * 128 + 56:i * 128 + 56 + len(name)] = name
    entries_crc = zlib.crc32(entries)
    disk_guid = uuid.uuid4().bytes_le

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        h = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, current, backup, 34,
                                  sectors - 34, disk_guid, entries_lba, 128, 128, entries_crc))
        struct.pack_into("<I", h, 16, zlib.crc32(bytes(h)))
        return bytes(h) + bytes(512 - len(h))

    mbr = bytearray(512)
    struct.pack_into("<BBBBBBBBII", mbr, 446, 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, min(sectors - 1, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    with open(path, "r+b") as f:
        f.write(mbr)
        f.write(header(1, sectors - 1, 2))
        f.write(entries)
        f.seek((sectors - 33) * 512)
        f.write(entries)
        f.write(header(sectors - 1, 1, sectors - 33))


def lvm_try(lvm: Lvm, *args: str) -> subprocess.CompletedProcess:
    """An LVM2 command in `lvm`'s world whose failure the caller checks
    (Lvm.run asserts success)."""
    return subprocess.run(list(args), env=lvm.env, capture_output=True, text=True)


def lv_chunks(backup: dict, vg: str, lv: str):
    """Where LV `lv` of a parsed vgcfgbackup text lives: (LV byte, PV key,
    byte offset in the PV, length) runs in LV order, for linear and striped
    segments on PVs (docs/lvm2.md: chunk = x / stripe_size, leg chunk % k)."""
    v = backup[vg]
    ext = v["extent_size"] * 512
    pvs = v["physical_volumes"]
    lvd = v["logical_volumes"][lv]
    segs = sorted((s for s in lvd.values() if isinstance(s, dict)), key=lambda s: s["start_extent"])
    for s in segs:
        assert s["type"] == "striped", s
        k = s["stripe_count"]
        legs = [(s["stripes"][2 * i], s["stripes"][2 * i + 1]) for i in range(k)]
        base = s["start_extent"] * ext
        size = s["extent_count"] * ext
        chunk = s["stripe_size"] * 512 if k > 1 else size
        for c in range(size // chunk):
            pv, pe = legs[c % k]
            assert pv in pvs, f"{lv} {pv}"
            off = pvs[pv]["pe_start"] * 512 + pe * ext + (c // k) * chunk
            yield base + c * chunk, pv, off, chunk
def pv_byte(vg: dict, lv: str, x: int) -> tuple[str, int]:
    """Where byte `x` of LV `lv` lives by LVM2's own metadata (a VG section
    of parse_backup()): (PV key, byte offset in that PV). The striping
    formula of docs/lvm2.md: chunk = x / stripe_size, leg chunk % k, offset
    in the leg (chunk / k) * stripe_size + x % stripe_size."""
    ext = vg["extent_size"] * 512
    for key, seg in vg["logical_volumes"][lv].items():
        if not key.startswith("segment") or not isinstance(seg, dict):
            continue
        start, count = seg["start_extent"] * ext, seg["extent_count"] * ext
        if not start <= x < start + count:
            continue
        off, k = x - start, seg["stripe_count"]
        if k == 1:
            leg, in_leg = 0, off
        else:
            s = seg["stripe_size"] * 512
            chunk = off // s
            leg, in_leg = chunk % k, (chunk // k) * s + off % s
        pv, pe = seg["stripes"][2 * leg], seg["stripes"][2 * leg + 1]
        return pv, vg["physical_volumes"][pv]["pe_start"] * 512 + pe * ext + in_leg
    raise ValueError(f"LV {lv} has no byte {x}")


def holds_lock(path: Path, exclusive: bool = True) -> bool:
    """True when another open file description holds an flock on `path`
    that keeps a lock of this kind off (LVM2's VG lock files)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def add_thin_pool(lvm: Lvm, vg: str, data: str, meta: str) -> None:
    """Turns LVs `data` and `meta` of `vg` into the hidden data and metadata
    LVs of a thin pool `pool`, with one thin LV `thin` in it. LVM2 cannot
    make a thin pool without device-mapper; its metadata can be restored
    (vgcfgrestore --force)."""
    text = lvm.backup(vg).replace(f"\t\t{data} {{", "\t\tpool_tdata {").replace(f"\t\t{meta} {{", "\t\tpool_tmeta {")
    for name in ("pool_tdata", "pool_tmeta"):
        text = re.sub(r"(\t\t%s \{\n\t\t\tid = \"[^\"]+\"\n\t\t\tstatus = )\[[^\]]*\]" % name,
                      r'\1["READ", "WRITE"]', text)
    pool = ('\t\tpool {\n\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg"\n'
            '\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n'
            '\t\t\tcreation_time = 1796395726\n\t\t\tcreation_host = "vm"\n\t\t\tsegment_count = 1\n\n'
            '\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 2\n\n'
            '\t\t\t\ttype = "thin-pool"\n\t\t\t\tmetadata = "pool_tmeta"\n\t\t\t\tpool = "pool_tdata"\n'
            '\t\t\t\ttransaction_id = 1\n\t\t\t\tchunk_size = 128\n\t\t\t\tdiscards = "passdown"\n'
            '\t\t\t\tzero_new_blocks = 0\n\t\t\t}\n\t\t}\n\n'
            '\t\tthin {\n\t\t\tid = "hhhhhh-bbbb-cccc-dddd-eeee-ffff-gggggg"\n'
            '\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n'
            '\t\t\tcreation_time = 1796395726\n\t\t\tcreation_host = "vm"\n\t\t\tsegment_count = 1\n\n'
            '\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 4\n\n'
            '\t\t\t\ttype = "thin"\n\t\t\t\tthin_pool = "pool"\n\t\t\t\ttransaction_id = 0\n'
            '\t\t\t\tdevice_id = 1\n\t\t\t}\n\t\t}\n\n')
    text = text.replace("\tlogical_volumes {\n\n", "\tlogical_volumes {\n\n" + pool, 1)
    edited = lvm.dir / f"{vg}-thin.txt"
    edited.write_text(text)
    r = subprocess.run(["vgcfgrestore", "--force", "-f", str(edited), vg], env=lvm.env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
