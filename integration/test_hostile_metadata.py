"""The hostile-metadata corpus (issue 8): every on-disk record of a real VG
made by `vgfs create` is re-encoded with *valid* CRC32Cs and one hostile
field (offsets and sizes out of range or wrapping, zero and non-power-of-two
sizes, huge counts, duplicate and path-like names, non-UTF-8, YAML aliases,
seqno at the wrap, job ids, two texts with one seqno, last-seen paths naming a
FIFO or a device). Each goes through `vgfs check`, `vgfs lvs`, `vgfs dump` and
a mount, and each must answer one clear error line (exit 1, no traceback,
no abort) and leave every PV byte-identical.

The records are written by the small encoder below, from docs/format.md
alone: labels, metadata slot headers and texts. Python has no CRC32C
builtin, hence the table-driven one.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct

import pytest

from vgfstest import MiB, LvSpec, PvSpec, assert_one_line_error, crc32c, is_mounted, wait_job
from pv_image import PvImage

# ---------------------------------------------------------------------------
# The VG every case starts from, and hostile variants of its metadata text.
# lvx: LE 0-9 on pv0 PE 3-12, LE 10-19 on pv1 PE 0-9; lvy (4 extents) is
# placed by the allocator on pv0 PE 13-16. 1 MiB extents, 256 KiB regions:
# a 4-extent job has 16 regions, 8 KiB per record copy, 16 KiB per record.
# ---------------------------------------------------------------------------

MIGRATION_AREA = 4 * MiB


def make_vg(env, name="vgh"):
    vg = env.make_vg(name=name,
                     pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lvx", extents=[("0-9", "pv0", "3-12"), ("10-19", "pv1", "0-9")]),
                          LvSpec("lvy", size="4MiB")])
    vg.create()
    return vg


def sub(text: str, pattern: str, repl: str, count=1) -> str:
    out, n = re.subn(pattern, lambda m: m.expand(repl) if "\\g<" in repl else repl, text, count=count)
    assert n >= 1, f"pattern {pattern!r} not in the metadata text"
    return out


def seqno2(t: str) -> str:
    return sub(t, r"seqno: 1\n", "seqno: 2\n")


def with_job(t: str, id="1", next_id="2", lv="lvx", le="0-3", source="pv0 3", dest="pv1 40",
             state="running", record="0 16384", reason='""') -> str:
    t = sub(t, r"next_job_id: 1\n", f"next_job_id: {next_id}\n")
    return t + (f"jobs:\n  - {{id: {id}, lv: {lv}, le: {le}, source: {source}, destination: {dest}, "
                f"state: {state}, reason: {reason}, record: \"{record}\"}}\n")


def lv_name(t: str, new: str) -> str:
    return sub(t, r"name: lvy\n", f"name: {new}\n")


def flat_nodes(t: str) -> str:
    return t + "extra: [" + "0," * 100000 + "0]\n"


def alias_bomb(t: str) -> str:
    out = "a0: &a0 [x, x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 20))
    return out + t


# name -> (text mutation, needle of the error line). Each mutates the text
# of seqno 2 and is written into both slots of both PVs: no valid copy is
# left to fall back to.
TEXT_CASES = {
    # Job record places (defect 1): against the source PV's migration area.
    "record_past_area": (lambda t: with_job(t, record=f"{MIGRATION_AREA} 16384"), "migration area"),
    "record_straddles_area_end": (lambda t: with_job(t, record=f"{MIGRATION_AREA - 4096} 16384"), "migration area"),
    "record_1TiB_out": (lambda t: with_job(t, record=f"{1 << 40} 16384"), "migration area"),
    "record_offset_wraps": (lambda t: with_job(t, record=f"{2**64 - 4096} 8192"), "record"),
    "record_size_wrong": (lambda t: with_job(t, record="0 4096"), "record size"),
    "record_size_zero": (lambda t: with_job(t, record="0 0"), "record"),
    "record_unaligned": (lambda t: with_job(t, record="100 16384"), "record"),
    "record_no_blank": (lambda t: with_job(t, record="8192"), "record"),
    "record_not_numbers": (lambda t: with_job(t, record="-1 x"), "record"),
    # Job ids and the seqno (defect 19).
    "next_job_id_zero": (lambda t: sub(t, r"next_job_id: 1\n", "next_job_id: 0\n"), "next_job_id"),
    "job_id_near_2_64": (lambda t: with_job(t, id=str(2**64 - 2), next_id=str(2**64 - 1),
                                            state="completed"), "next_job_id"),
    "job_id_zero": (lambda t: with_job(t, id="0", state="completed"), "job 0"),
    "job_id_past_next": (lambda t: with_job(t, id="5", next_id="2", state="completed"), "job 5"),
    "job_id_too_big": (lambda t: with_job(t, id=str(2**64), state="completed"), "whole number"),
    "job_lv_pathlike": (lambda t: with_job(t, lv="../../etc", state="completed"), "name"),
    "job_range_huge": (lambda t: with_job(t, le="0-18446744073709551614"), "job 1"),
    "job_dest_past_pv": (lambda t: with_job(t, dest="pv1 50"), "job 1"),
    "job_dest_over_lv": (lambda t: with_job(t, dest="pv0 14"), "job 1"),
    # Sizes and counts.
    "extent_size_zero": (lambda t: sub(t, r"extent_size: 1048576", "extent_size: 0"), "extent size"),
    "extent_size_not_pow2": (lambda t: sub(t, r"extent_size: 1048576", "extent_size: 3145728"),
                             "extent size"),
    "region_size_not_pow2": (lambda t: sub(t, r"region_size: 262144", "region_size: 3000"), "region size"),
    "region_size_zero": (lambda t: sub(t, r"region_size: 262144", "region_size: 0"), "region size"),
    "pe_count_huge": (lambda t: sub(t, r"pe_count: 51", f"pe_count: {2**64 - 1}"), "pe count"),
    "pe_count_past_label": (lambda t: sub(t, r"pe_count: 51", "pe_count: 52"), "label"),
    "pe_start_unaligned": (lambda t: sub(t, r"pe_start: 13631488", "pe_start: 13631489"), "pe_start"),
    "number_past_2_64": (lambda t: sub(t, r"pe_count: 51", f"pe_count: {2**64}"), "whole number"),
    "run_huge": (lambda t: sub(t, r"0-3 pv0 13-16", "0-18446744073709551613 pv0 13-18446744073709551626"),
                 "run"),
    "run_past_pv": (lambda t: sub(t, r"0-3 pv0 13-16", "0-3 pv0 49-52"), "lvy"),
    "runs_overlap": (lambda t: sub(t, r"0-3 pv0 13-16", "0-3 pv0 10-13"), "mapped twice"),
    "lv_mode_huge": (lambda t: sub(t, r'mode: "0600"', 'mode: "7777777"'), "mode"),
    "flat_many_nodes": (lambda t: flat_nodes(t), "nodes"),
    "deep_nesting": (lambda t: t + "extra: " + "[" * 5000 + "]" * 5000 + "\n", "yaml"),
    # Names.
    "lv_name_duplicate": (lambda t: lv_name(t, "lvx"), "used twice"),
    "pv_name_duplicate": (lambda t: sub(t, r"name: pv1\n", "name: pv0\n"), "pv0"),
    "lv_name_pathlike": (lambda t: lv_name(t, "../../etc/passwd"), "name"),
    "lv_name_escape_newline": (lambda t: lv_name(t, '"a\\nb\\e[31m"'), "name"),
    "lv_name_not_utf8": (lambda t: lv_name(t, "!!binary bHb/"), "name"),
    "lv_name_dotvgfs": (lambda t: lv_name(t, '".vgfs"'), "name"),
    "vg_name_empty": (lambda t: sub(t, r"name: vgh\n", 'name: ""\n'), "name"),
    "uuid_garbage": (lambda t: sub(t, r"uuid: [0-9a-f-]{36}\n", "uuid: 0000\n"), "uuid"),
    "pv_path_nul": (lambda t: sub(t, r'path: "[^"]*pv1.img"', 'path: "/x\\0y"'), "nul"),
    # YAML structure (defect 8).
    # An anchor on lvx's mode and lvy's mode as its alias: valid YAML that a
    # YAML::Node loader would accept.
    "yaml_alias": (lambda t: sub(sub(t, r'mode: "0600"', 'mode: &m "0600"'), r'mode: "0600"', "mode: *m"),
                   "anchor"),
    "yaml_alias_bomb": (lambda t: alias_bomb(t), "anchor"),
    "yaml_two_documents": (lambda t: t + "---\n" + t, "document"),
    "yaml_duplicate_key": (lambda t: sub(t, r"seqno: 2\n", "seqno: 2\n  seqno: 2\n"), "repeats"),
    "yaml_unknown_key": (lambda t: sub(t, r"seqno: 2\n", "seqno: 2\n  evil: 1\n"), "unknown key"),
    "yaml_complex_key": (lambda t: sub(t, r"seqno: 2\n", "seqno: 2\n  ? [a]\n  : b\n"), "key"),
    "yaml_garbage": (lambda t: sub(t, r"lvs:", "lvs: [{{{"), "yaml"),
    "yaml_not_a_map": (lambda t: "- just\n- a list\n", "mapping"),
    "text_wrong_vg_uuid": (lambda t: sub(t, r"(vg:\n  name: vgh\n  uuid: )[0-9a-f-]{36}",
                                         r"\g<1>00000000-0000-0000-0000-000000000000"), "another vg"),
}


def image_digest(path) -> str:
    """sha256 of a file's size and of its data segments with their offsets
    (SEEK_DATA/SEEK_HOLE): the PVs are sparse, so this reads kilobytes where
    hashing every byte would read 128 MiB per snapshot. Any byte written,
    even a zero into a hole, changes it."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        h.update(str(size).encode())
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data past off
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            h.update(f"@{start}:".encode())
            pos = start
            while pos < end:
                chunk = os.pread(fd, min(4 * MiB, end - pos), pos)
                if not chunk:
                    break
                h.update(chunk)
                pos += len(chunk)
            off = end
    finally:
        os.close(fd)
    return h.hexdigest()


def snapshot(directory) -> dict:
    """relpath -> image_digest for every file under `directory` (mount points
    and the command logs of the fixture left out)."""
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith("mnt")]
        for name in files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, directory)] = image_digest(p) if stat.S_ISREG(st.st_mode) else f"mode {st.st_mode:o}"
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), directory)] = "DIR"
    return out


def run_everything(env, vg, needle: str, before: dict) -> None:
    """check, lvs, dump and a mount: one clear error line each, nothing changed."""
    for cmd in ("check", "lvs", "dump"):
        r = env.vgfs(cmd, vg.config, timeout=30)
        out = r.stdout + r.stderr
        assert "Traceback" not in out and "terminate" not in out and "Abort" not in out, out
        assert_one_line_error(r, needle)
    m = env.mount(vg.config, expect_ok=False, timeout=30)
    assert not is_mounted(m.mp), "a hostile VG was mounted"
    assert_one_line_error(m.result, needle)
    assert snapshot(vg.dir) == before, "the PV images changed"


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_hostile_metadata_text(env, case):
    vg = make_vg(env)
    mutate, needle = TEXT_CASES[case]
    pvs = [PvImage(p) for p in vg.pv_paths]
    text = seqno2(pvs[0].slot_text(1).decode())
    bad = mutate(text).encode()
    assert bad != text.encode()
    for img in pvs:
        for slot in (0, 1):
            img.write_slot(slot, 2, bad)
    before = snapshot(vg.dir)
    run_everything(env, vg, needle, before)


def test_the_valid_job_the_corpus_derives_from_is_accepted(env):
    """The running job the record cases start from is valid as it is, so each
    refusal above is about its one hostile field."""
    vg = make_vg(env)
    pvs = [PvImage(p) for p in vg.pv_paths]
    good = with_job(seqno2(pvs[0].slot_text(1).decode())).encode()
    for img in pvs:
        for slot in (0, 1):
            img.write_slot(slot, 2, good)
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, r.stdout + r.stderr


# Labels (both copies, valid CRC): name -> (fields, needle).
LABEL_CASES = {
    "migration_size_zero": (dict(mig_size=0), "migration area size"),
    "migration_size_unaligned": (dict(mig_size=4 * MiB - 1), "migration area size"),
    "migration_size_huge": (dict(mig_size=1 << 62), "migration area size"),
    "slot1_wraps": (dict(slot1=2**64 - 4096, slot_size=8192), "layout"),
    "migration_wraps": (dict(mig_offset=2**64 - 4 * MiB), "layout"),
    "slot_size_zero": (dict(slot_size=0), "slot size"),
    "slot_size_not_aligned": (dict(slot_size=4 * MiB + 1), "slot size"),
    "slot_size_huge": (dict(slot_size=1 << 40), "slot size"),
    "slot_overlaps_label": (dict(slot0=0), "layout"),
    "pe_start_past_device": (dict(pe_start=1 << 40), "layout"),
    "pe_count_zero": (dict(pe_count=0), "pes"),
    "pe_count_huge": (dict(pe_count=2**64 - 1), "pes"),
    "pe_count_past_device": (dict(pe_count=52), "pes"),
    "device_size_zero": (dict(device_size=0), "pes"),
    "extent_size_zero": (dict(extent_size=0), "extent size"),
    "extent_size_not_pow2": (dict(extent_size=3 * MiB), "extent size"),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_hostile_label(env, case):
    vg = make_vg(env)
    fields, needle = LABEL_CASES[case]
    PvImage(vg.pv_path("pv1")).write_label(**fields)
    before = snapshot(vg.dir)
    run_everything(env, vg, needle, before)


def test_hostile_label_size_field(env):
    vg = make_vg(env)
    PvImage(vg.pv_path("pv1")).write_label(label_size=512)
    run_everything(env, vg, "label size", snapshot(vg.dir))


# Slot headers (both slots of both PVs): name -> (seqno, length, needle).
SLOT_CASES = {
    "seqno_max": (2**64 - 1, None, "seqno"),
    "seqno_zero": (0, None, "seqno"),
    "length_past_slot": (2, 4 * MiB, "no valid metadata"),
    "length_huge": (2, 2**63, "no valid metadata"),
}


@pytest.mark.parametrize("case", sorted(SLOT_CASES))
def test_hostile_slot_header(env, case):
    vg = make_vg(env)
    seqno, length, needle = SLOT_CASES[case]
    pvs = [PvImage(p) for p in vg.pv_paths]
    text = pvs[0].slot_text(1).decode()
    text = re.sub(r"seqno: 1\n", f"seqno: {seqno}\n", text, count=1).encode()
    for img in pvs:
        for slot in (0, 1):
            img.write_slot(slot, seqno, text, length=length)
    run_everything(env, vg, needle, snapshot(vg.dir))


def test_two_texts_with_one_seqno_are_refused(env):
    """Defect 15: a cut pvadd left seqno 2 on one PV, an acknowledged commit
    wrote another seqno 2 on the other. Neither may silently win."""
    vg = make_vg(env)
    pv0, pv1 = PvImage(vg.pv_path("pv0")), PvImage(vg.pv_path("pv1"))
    text = seqno2(pv0.slot_text(1).decode())
    a = sub(text, r'mode: "0600"', 'mode: "0640"')
    b = sub(text, r'mode: "0600"', 'mode: "0604"')
    pv0.write_slot(0, 2, a.encode())
    pv1.write_slot(0, 2, b.encode())
    before = snapshot(vg.dir)
    run_everything(env, vg, "same seqno 2", before)
    r = env.vgfs("check", vg.config)
    assert "pv0" in r.stderr and "pv1" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", ["fifo", "char_device", "directory"])
def test_last_seen_path_of_wrong_type_is_not_opened(env, kind):
    """Defect 7: the config names pv0 only; the metadata says pv1 was last
    seen at a FIFO (opening it would block forever), a device node or a
    folder. The loader must refuse it by type, without opening it."""
    vg = make_vg(env)
    pv0 = PvImage(vg.pv_path("pv0"))
    target = vg.dir / "trap"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "char_device":
        target = "/dev/zero"
    else:
        os.mkdir(target)
    text = pv0.slot_text(1).decode()
    text = sub(seqno2(text), r'path: "[^"]*pv1.img"', f'path: "{target}"')
    for img in (pv0, PvImage(vg.pv_path("pv1"))):
        img.write_slot(0, 2, text.encode())
    vg.pvs = vg.pvs[:1]
    vg.write_config()
    before = snapshot(vg.dir)
    run_everything(env, vg, "not a regular file or block device", before)


def test_commit_held_only_by_a_pv_outside_the_config_is_found(env):
    """Defect 16: seqno 2 reached pv1 only, and the config names pv0 only."""
    vg = make_vg(env)
    pv0, pv1 = PvImage(vg.pv_path("pv0")), PvImage(vg.pv_path("pv1"))
    text = sub(seqno2(pv0.slot_text(1).decode()), r'mode: "0600"', 'mode: "0604"')
    pv1.write_slot(0, 2, text.encode())
    vg.pvs = vg.pvs[:1]
    vg.write_config()
    r = env.vgfs("dump", vg.config)
    assert r.returncode == 0, r.stderr
    assert "seqno: 2" in r.stdout and '"0604"' in r.stdout, r.stdout
    m = vg.mount()
    assert oct(os.stat(m.lv("lvx")).st_mode & 0o777) == oct(0o604)
    m.unmount()


def test_non_utf8_pv_path_survives_a_remount(env):
    """Defect 11: a PV added at a path that is not UTF-8 is stored byte-exact,
    so the next mount finds it through the metadata."""
    vg = make_vg(env)
    path = os.fsencode(vg.dir) + b"/d\xe9j\xe0-\xff.img"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    m = vg.mount()
    fd = os.open(m.meta / "ctl", os.O_RDWR)
    try:
        os.write(fd, b"pvadd " + path + b" pv2\n")
        reply = os.pread(fd, 65536, 0)
    finally:
        os.close(fd)
    assert reply.startswith(b"ok"), reply
    m.unmount()
    r = env.vgfs("dump", vg.config)
    assert r.returncode == 0, r.stderr
    assert "!!binary" in r.stdout and "\ufffd" not in r.stdout, r.stdout
    m = vg.mount()
    with open(m.meta / "pvs" / "pv2" / "info", "rb") as f:
        info = f.read()
    assert b"pe_count: 51" in info, f"pv2 is not served after the remount: {info!r}"
    m.unmount()


# ---------------------------------------------------------------------------
# Job records (both copies, valid CRCs). A record that fails its checks makes
# the job start again from 0, which is always safe: the mount works and the
# LVs keep their data. The job moves lvx LE 0-1 (pv0 PE 3-4) to pv0 PE 0-1,
# right before lvx's own PEs, so a copy past the job's 8 regions would land
# on lvx and lvy.
# ---------------------------------------------------------------------------

JOB_RECORD_HEADER = 4096
MIGRATION_OFFSET = 9 * MiB
PE_START = 13 * MiB


def job_record(job_id=1, generation=1, pointer=0, status=0, regions=8, bitmap=(0,)) -> bytes:
    bits = b"".join(struct.pack("<Q", w) for w in bitmap)
    h = bytearray(JOB_RECORD_HEADER)
    h[:8] = b"VGFSJOB1"
    struct.pack_into("<QQQIIQ", h, 8, job_id, generation, pointer, status, 0, regions)
    struct.pack_into("<I", h, 48, crc32c(bits))
    struct.pack_into("<Q", h, 56, 0)
    struct.pack_into("<I", h, 4092, crc32c(bytes(h[:4092])))
    body = bits + bytes(-len(bits) % 4096)
    return bytes(h) + body


RECORD_CASES = {
    "bits_past_last_region": dict(bitmap=(0xFFFFFFFFFFFFFF00,)),
    "generation_at_the_wrap": dict(generation=2**64 - 1),
    "another_jobs_record": dict(job_id=7),
    "region_count_wrong": dict(regions=9),
    "status_unknown": dict(status=99),
}


@pytest.mark.parametrize("case", sorted(RECORD_CASES))
def test_hostile_job_record_restarts_the_job_and_keeps_the_data(env, case):
    vg = make_vg(env)
    pv0, pv1 = PvImage(vg.pv_path("pv0")), PvImage(vg.pv_path("pv1"))
    rnd = os.urandom(24 * MiB)
    pv0.write(PE_START + 3 * MiB, rnd[:14 * MiB])           # lvx LE 0-9 (PE 3-12), lvy (PE 13-16)
    pv1.write(PE_START, rnd[14 * MiB:24 * MiB])             # lvx LE 10-19 (PE 0-9)
    want_lvx = rnd[:10 * MiB] + rnd[14 * MiB:24 * MiB]
    want_lvy = rnd[10 * MiB:14 * MiB]
    text = with_job(seqno2(pv0.slot_text(1).decode()), le="0-1", source="pv0 3", dest="pv0 0",
                    record="0 16384").encode()
    for img in (pv0, pv1):
        for slot in (0, 1):
            img.write_slot(slot, 2, text)
    rec = job_record(**RECORD_CASES[case])
    assert len(rec) == 8192
    pv0.write(MIGRATION_OFFSET, rec + rec)
    m = vg.mount()
    st = wait_job(m, 1, timeout=60)
    assert st["sync_status"] == "completed", st
    with open(m.lv("lvx"), "rb") as f:
        assert f.read() == want_lvx, "lvx changed"
    with open(m.lv("lvy"), "rb") as f:
        assert f.read() == want_lvy, "lvy changed"
    m.unmount()
    assert os.path.getsize(vg.pv_path("pv0")) == 64 * MiB
