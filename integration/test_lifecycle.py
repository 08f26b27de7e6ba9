"""LV and PV lifecycle on a live mount (README.md "The mount", "Control file",
"Command line"): lvcreate, lvextend, lvreduce, lvrename, lvremove, pvadd,
pvremove, the metadata archive and `vgfs restore`.

Every change is checked where a user sees it: `ls -l`, os.stat, a descriptor
opened before the change, the `.vgfs/` views and vg.json, and again after
unmount + remount. Every refusal is checked for its errno, its one-sentence
reply, and that nothing changed (vg.json seqno, PV image hashes).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vgfstest import (
    KiB,
    MiB,
    LvSpec,
    PvSpec,
    assert_one_line_error,
    ctl,
    ctl_ok,
    lv_map,
    lv_runs_from_json,
    pread_full,
    pv_allocated,
    pv_map,
    pwrite_full,
    read_kv,
    sha256_file,
    start_job,
    tree_sums,
)

HAVE_EXT4 = shutil.which("mkfs.ext4") is not None and shutil.which("losetup") is not None


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def yes(args) -> list:
    """lvremove and lvreduce ask first, as LVM2 does: -y answers."""
    args = list(args)
    return args + ["-y"] if args and args[0] in ("lvremove", "lvreduce") else args


def cli_ok(env, *args) -> str:
    """Runs `vgfs ARGS...`, asserts exit 0, a reply line starting 'ok', and
    nothing on stderr. Returns stdout stripped."""
    r = env.vgfs(*yes(args))
    assert r.returncode == 0 and r.stdout.startswith("ok") and not r.stderr.strip(), (
        f"vgfs {' '.join(map(str, args))}: rc={r.returncode}\nstdout={r.stdout!r}\nstderr={r.stderr!r}")
    assert len(r.stdout.strip().splitlines()) == 1, f"expected one reply line: {r.stdout!r}"
    return r.stdout.strip()


def seqno(m) -> int:
    return int(m.vg_json()["seqno"])


def ls_sizes(mp: Path) -> dict[str, int]:
    """name -> size column of `ls -l MOUNTPOINT` (regular files only)."""
    r = subprocess.run(["ls", "-l", str(mp)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 9 and parts[0].startswith("-"):
            out[parts[8]] = int(parts[4])
    return out


def json_lv(m, name: str) -> dict | None:
    for lv in m.vg_json()["lvs"]:
        if lv["name"] == name:
            return lv
    return None


def json_pv(m, name: str) -> dict | None:
    for pv in m.vg_json()["pvs"]:
        if pv["name"] == name:
            return pv
    return None


def assert_lv_visible(m, name: str, size: int, extent: int) -> None:
    """The LV `name` has `size` bytes in every view."""
    assert ls_sizes(m.mp).get(name) == size, f"ls -l {m.mp}: {ls_sizes(m.mp)}, want {name}={size}"
    assert os.stat(m.lv(name)).st_size == size
    info = read_kv(m.meta / "lvs" / name / "info")
    assert int(info["le_count"]) == size // extent, info
    assert int(info["size"].split()[0]) == size, info
    runs = lv_map(m, name)
    assert sum(n for _, n, _, _ in runs) == size // extent, runs
    # LE runs cover 0..N-1 in order
    le = 0
    for first, n, _, _ in runs:
        assert first == le, runs
        le += n
    js = json_lv(m, name)
    assert js is not None, f"{name} missing from vg.json"
    assert int(js["le_count"]) == size // extent and int(js["size"]) == size, js
    assert lv_runs_from_json(js) == runs, (js["map"], runs)
    # the PV maps hold the inverse
    for le_first, n, pv, pe_first in runs:
        inv = [r for r in pv_allocated(m, pv) if r[2] == name]
        covered = set()
        for pe0, cnt, _, le0, *rest in inv:
            covered |= {(pe0 + i, le0 + i) for i in range(cnt)}
        for i in range(n):
            assert (pe_first + i, le_first + i) in covered, (name, runs, pv, inv)


def assert_lv_absent(m, name: str) -> None:
    assert name not in ls_sizes(m.mp), ls_sizes(m.mp)
    with pytest.raises(FileNotFoundError):
        os.stat(m.lv(name))
    assert not (m.meta / "lvs" / name).exists()
    assert json_lv(m, name) is None
    for pv in m.vg_json()["pvs"]:
        for e in pv["map"]:
            assert e.get("lv") != name, (pv["name"], pv["map"])


def read_lv(m, name: str) -> bytes:
    with open(m.lv(name), "rb") as f:
        return f.read()


def write_lv(m, name: str, data: bytes, offset: int = 0) -> None:
    fd = os.open(m.lv(name), os.O_RDWR)
    try:
        assert pwrite_full(fd, data, offset) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)


def ctl_refused(m, command: str, want_errno: int, *needles: str) -> str:
    """The command fails with `want_errno`, replies 'error: <sentence>' that
    holds every needle, and does not commit (seqno unchanged)."""
    before = seqno(m)
    err, reply = ctl(m, command)
    detail = f"ctl {command!r}: errno={errno.errorcode.get(err, err)} reply={reply!r}"
    assert err == want_errno, f"expected {errno.errorcode[want_errno]}; {detail}"
    assert reply.startswith("error: ") and reply.endswith("\n"), detail
    assert len(reply.strip().splitlines()) == 1, detail
    assert len(reply.strip()) > len("error: ") + 5, detail
    for n in needles:
        assert n.lower() in reply.lower(), f"expected {n!r} in the reply; {detail}"
    assert seqno(m) == before, f"seqno moved {before} -> {seqno(m)} after a refused {command!r}"
    return reply


def cli_refused(env, m, args: list, *needles: str) -> str:
    before = seqno(m)
    r = env.vgfs(*yes(args))
    line = assert_one_line_error(r, *needles)
    assert r.stdout.strip() == "", r.stdout
    assert seqno(m) == before
    return line


def hashes(paths) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths}


# --------------------------------------------------------------------------
# create / extend / reduce / rename / remove
# --------------------------------------------------------------------------

def test_lv_lifecycle_visible_everywhere_and_after_remount(env):
    ext = MiB
    vg = env.make_vg("vglc", pvs=[PvSpec("pv0", "pv0.img", "64MiB"),
                                  PvSpec("pv1", "pv1.img", "64MiB")], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    rng = random.Random(11)
    assert seqno(m) >= 1
    s0 = seqno(m)

    # --- lvcreate on a named PV
    reply = cli_ok(env, "lvcreate", m.mp, "lv1", "3MiB", "pv0")
    assert reply == "ok LV lv1 created: 3 extents (3MiB)", reply
    assert seqno(m) == s0 + 1
    assert_lv_visible(m, "lv1", 3 * ext, ext)
    assert lv_map(m, "lv1") == [(0, 3, "pv0", 0)], lv_map(m, "lv1")
    assert read_kv(m.meta / "lvs" / "lv1" / "info")["mode"] == "0600"
    assert oct(os.stat(m.lv("lv1")).st_mode & 0o777) == "0o600"
    assert read_lv(m, "lv1") == bytes(3 * ext), "a new LV on a fresh sparse VG must read zeros"
    data = bytearray(rng.randbytes(3 * ext))
    write_lv(m, "lv1", bytes(data))
    assert read_lv(m, "lv1") == data

    # a second LV, placed by the allocator; it must not overlap lv1
    cli_ok(env, "lvcreate", m.mp, "lv2", "2MiB")
    assert_lv_visible(m, "lv2", 2 * ext, ext)
    lv2_data = rng.randbytes(2 * ext)
    write_lv(m, "lv2", lv2_data)

    # --- lvextend with a descriptor opened before it
    fd = os.open(m.lv("lv1"), os.O_RDWR)
    try:
        assert os.fstat(fd).st_size == 3 * ext
        assert os.pread(fd, 4096, 3 * ext) == b"", "read past the end must return 0 bytes"
        s = seqno(m)
        reply = cli_ok(env, "lvextend", m.mp, "lv1", "6MiB")
        assert reply == "ok LV lv1 extended to 6 extents (6MiB)", reply
        assert seqno(m) == s + 1
        assert os.fstat(fd).st_size == 6 * ext, "the open descriptor must see the new size"
        assert_lv_visible(m, "lv1", 6 * ext, ext)
        assert lv_map(m, "lv1")[0] == (0, 3, "pv0", 0), lv_map(m, "lv1")
        assert pread_full(fd, 3 * ext, 0) == data, "old data changed by lvextend"
        tail = pread_full(fd, 3 * ext, 3 * ext)
        assert len(tail) == 3 * ext, f"read past the old end through the old fd got {len(tail)} bytes"
        assert tail == bytes(3 * ext), "the new tail of an LV on a fresh sparse VG must read zeros"
        tail_data = rng.randbytes(3 * ext)
        assert pwrite_full(fd, tail_data, 3 * ext) == 3 * ext
        os.fsync(fd)
        data += tail_data
        assert pread_full(fd, 6 * ext, 0) == data
        # write at the (new) end still fails with ENOSPC
        with pytest.raises(OSError) as ei:
            os.pwrite(fd, b"x", 6 * ext)
        assert ei.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert lv2_data == read_lv(m, "lv2"), "lvextend of lv1 touched lv2"

    # --- lvreduce: the kept part stays intact, freed PEs show up free
    s = seqno(m)
    reply = cli_ok(env, "lvreduce", m.mp, "lv1", "4MiB")
    assert reply == "ok LV lv1 reduced to 4 extents (4MiB)", reply
    assert seqno(m) == s + 1
    assert_lv_visible(m, "lv1", 4 * ext, ext)
    assert read_lv(m, "lv1") == data[:4 * ext]
    data = data[:4 * ext]
    total_alloc = sum(r[1] for pv in ("pv0", "pv1") for r in pv_allocated(m, pv))
    assert total_alloc == 4 + 2, [pv_map(m, p) for p in ("pv0", "pv1")]
    free_pe = sum(int(p["free_pe"]) for p in m.vg_json()["pvs"])
    assert free_pe == sum(int(p["pe_count"]) for p in m.vg_json()["pvs"]) - 6

    # --- lvrename: the old name disappears everywhere, the data follows
    map_before = lv_map(m, "lv1")
    s = seqno(m)
    reply = cli_ok(env, "lvrename", m.mp, "lv1", "data")
    assert reply.startswith("ok") and "data" in reply, reply
    assert seqno(m) == s + 1
    assert_lv_absent(m, "lv1")
    assert_lv_visible(m, "data", 4 * ext, ext)
    assert lv_map(m, "data") == map_before
    assert read_lv(m, "data") == data
    assert read_kv(m.meta / "lvs" / "data" / "info")["name"] == "data"

    # --- lvremove
    s = seqno(m)
    reply = cli_ok(env, "lvremove", m.mp, "lv2")
    assert reply == "ok LV lv2 removed", reply
    assert seqno(m) == s + 1
    assert_lv_absent(m, "lv2")
    assert ls_sizes(m.mp) == {"data": 4 * ext}
    assert int(m.vg_json()["lv_count"]) == 1
    for pv in ("pv0", "pv1"):
        assert "lv2" not in read_kv(m.meta / "pvs" / pv / "info").get("lvs", ""), pv

    final_seq = seqno(m)
    final_map = lv_map(m, "data")
    m.unmount()

    # --- offline and after remount
    r = env.vgfs("lvs", str(vg.config))
    assert r.returncode == 0, r.stderr
    names = [l.split()[0] for l in r.stdout.splitlines()[1:] if l.strip() and not l.startswith(" ")]
    assert names == ["data"], r.stdout
    m2 = vg.mount()
    assert seqno(m2) == final_seq
    assert ls_sizes(m2.mp) == {"data": 4 * ext}
    assert_lv_visible(m2, "data", 4 * ext, ext)
    assert lv_map(m2, "data") == final_map
    assert read_lv(m2, "data") == data
    for gone in ("lv1", "lv2"):
        assert_lv_absent(m2, gone)
    m2.unmount()
    r = env.vgfs("check", str(vg.config))
    assert r.returncode == 0, f"vgfs check after the lifecycle: {r.stdout}{r.stderr}"


def test_lvextend_keeps_single_run_when_next_pes_free(env):
    vg = env.make_vg("vgrun", pvs=[PvSpec("pv0", "pv0.img", "64MiB")], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    cli_ok(env, "lvcreate", m.mp, "a", "2MiB")
    cli_ok(env, "lvcreate", m.mp, "b", "2MiB")
    (_, _, pv_a, pe_a), = lv_map(m, "a")
    (_, _, pv_b, pe_b), = lv_map(m, "b")
    # b sits right after a, so a cannot continue its run; b can
    assert (pv_a, pe_a) == ("pv0", 0) and (pv_b, pe_b) == ("pv0", 2), (lv_map(m, "a"), lv_map(m, "b"))
    cli_ok(env, "lvextend", m.mp, "b", "5MiB")
    assert lv_map(m, "b") == [(0, 5, "pv0", 2)], f"extension after the last run must stay one run: {lv_map(m, 'b')}"
    cli_ok(env, "lvextend", m.mp, "a", "3MiB")
    ra = lv_map(m, "a")
    assert ra[0] == (0, 2, "pv0", 0) and len(ra) == 2 and ra[1][0] == 2 and ra[1][1] == 1, ra
    assert ra[1][3] >= 7, f"extension of a landed inside b: {ra} vs {lv_map(m, 'b')}"


def test_sizes_round_up_to_whole_extents(env):
    vg = env.make_vg("vground", pvs=[PvSpec("pv0", "pv0.img", "96MiB")], extent_size="4MiB")
    vg.create()
    m = vg.mount(foreground=True)
    ext = 4 * MiB

    reply = cli_ok(env, "lvcreate", m.mp, "r1", "5MiB")
    assert reply == "ok LV r1 created: 2 extents (8MiB), rounded up from 5MiB", reply
    assert os.stat(m.lv("r1")).st_size == 2 * ext
    assert ls_sizes(m.mp)["r1"] == 2 * ext

    # a byte count without suffix; 1 byte is one whole extent
    reply = ctl_ok(m, "lvcreate r2 1")
    assert reply.strip() == "ok LV r2 created: 1 extents (4MiB), rounded up from 1B" or (
        reply.startswith("ok LV r2 created: 1 extent") and "rounded up from 1" in reply), reply
    assert os.stat(m.lv("r2")).st_size == ext

    # exact multiple: no rounding note
    reply = cli_ok(env, "lvcreate", m.mp, "r3", "8MiB")
    assert reply == "ok LV r3 created: 2 extents (8MiB)", reply
    assert "rounded" not in reply

    reply = cli_ok(env, "lvextend", m.mp, "r1", "9MiB")
    assert reply == "ok LV r1 extended to 3 extents (12MiB), rounded up from 9MiB", reply
    assert os.stat(m.lv("r1")).st_size == 3 * ext

    reply = cli_ok(env, "lvreduce", m.mp, "r1", "5000KiB")
    assert reply == "ok LV r1 reduced to 2 extents (8MiB), rounded up from 5000KiB", reply
    assert os.stat(m.lv("r1")).st_size == 2 * ext

    # rounding to the current size is neither a grow nor a shrink
    ctl_refused(m, "lvextend r1 7MiB", errno.EINVAL, "r1")
    ctl_refused(m, "lvreduce r1 7MiB", errno.EINVAL, "r1")
    assert int(read_kv(m.meta / "lvs" / "r1" / "info")["le_count"]) == 2

    m.unmount()
    m2 = vg.mount()
    assert ls_sizes(m2.mp) == {"r1": 2 * ext, "r2": ext, "r3": 2 * ext}


# --------------------------------------------------------------------------
# pvadd, move, pvmove, pvremove under a live ext4
# --------------------------------------------------------------------------

class Ext4Writer:
    """A thread that writes files (random content, fsync each) into an ext4
    mount and remembers their sha256."""

    def __init__(self, root: Path, seed: int = 7):
        self.root = root
        self.rng = random.Random(seed)
        self.sums: dict[str, str] = {}
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.n = 0

    def _write_one(self) -> None:
        name = f"f{self.n:05d}.bin"
        data = self.rng.randbytes(self.rng.randint(1, 256) * 1024 + self.rng.randint(0, 999))
        p = self.root / "live" / name
        with open(p, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.sums[f"live/{name}"] = hashlib.sha256(data).hexdigest()
        self.n += 1

    def _run(self) -> None:
        try:
            (self.root / "live").mkdir(exist_ok=True)
            while not self.stop_event.is_set() and self.n < 2000:
                self._write_one()
                time.sleep(0.005)
        except Exception as e:
            self.errors.append(repr(e))

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> dict[str, str]:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "ext4 writer stuck"
        assert not self.errors, self.errors
        return dict(self.sums)


@pytest.mark.skipif(not HAVE_EXT4, reason="needs e2fsprogs and losetup")
def test_pvadd_move_pvmove_pvremove_with_live_ext4(env):
    ext = MiB
    vg = env.make_vg(
        "vgmig",
        pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pvk", "pvk.img", "32MiB")],
        lvs=[LvSpec("fs", extents=[("0-23", "pv0", "0-23")]),
             LvSpec("small", extents=[("0-1", "pv0", "30-31")])],
        extent_size="1MiB",
    )
    vg.create()
    m = vg.mount(foreground=True)
    small_data = random.Random(3).randbytes(2 * ext)
    write_lv(m, "small", small_data)

    # ext4 on a loop device over the LV, with a file tree
    dev = env.losetup(m.lv("fs"))
    env.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev], check=True)
    extmp = env.tmp / "ext"
    env.mount_ext4(dev, extmp)
    rng = random.Random(5)
    (extmp / "static").mkdir()
    for i in range(20):
        (extmp / "static" / f"s{i}.bin").write_bytes(rng.randbytes(rng.randint(1000, 300_000)))
    os.sync()
    static_sums = tree_sums(extmp)

    # --- pvadd of a new sparse image (absolute path), default and given name
    newimg = env.tmp / "new.img"
    with open(newimg, "wb") as f:
        f.truncate(64 * MiB)
    s = seqno(m)
    reply = cli_ok(env, "pvadd", m.mp, str(newimg), "pvnew")
    assert reply.startswith("ok PV pvnew added"), reply
    assert seqno(m) == s + 1
    info = read_kv(m.meta / "pvs" / "pvnew" / "info")
    assert info["path"] == str(newimg), info
    assert pv_map(m, "pvnew") == [(0, int(info["pe_count"]), "free")]
    assert json_pv(m, "pvnew") is not None
    assert int(m.vg_json()["pv_count"]) == 3

    # --- move fs onto the new PV while ext4 is written
    writer = Ext4Writer(extmp).start()
    time.sleep(0.3)
    r = env.vgfs("move", m.mp, "fs", "pvnew", "--wait", timeout=120)
    assert r.returncode == 0, f"vgfs move --wait: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    time.sleep(0.2)
    live_sums = writer.stop()
    assert writer.n > 0, "the writer wrote nothing during the move"
    assert [run[2] for run in lv_map(m, "fs")] == ["pvnew"], lv_map(m, "fs")

    # --- pvmove the rest off pv0 onto pvnew, then pvremove pv0
    ctl_refused(m, "pvremove pv0", errno.EBUSY, "pv0", "pvmove")
    r = env.vgfs("pvmove", m.mp, "pv0", "pvnew", "--wait", timeout=120)
    assert r.returncode == 0, f"vgfs pvmove --wait: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    assert pv_allocated(m, "pv0") == [], pv_map(m, "pv0")
    assert [run[2] for run in lv_map(m, "small")] == ["pvnew"]
    assert read_lv(m, "small") == small_data

    pv0_path = vg.pv_path("pv0")
    label_before = open(pv0_path, "rb").read(8 * KiB)
    s = seqno(m)
    reply = cli_ok(env, "pvremove", m.mp, "pv0")
    assert reply.startswith("ok PV pv0 removed"), reply
    assert seqno(m) == s + 1
    assert not (m.meta / "pvs" / "pv0").exists()
    assert json_pv(m, "pv0") is None
    assert int(m.vg_json()["pv_count"]) == 2
    assert open(pv0_path, "rb").read(8 * KiB) != label_before, "pvremove did not wipe pv0's label"

    # the filesystem is still fine while mounted
    sums_now = tree_sums(extmp)
    for k, v in {**static_sums, **live_sums}.items():
        assert sums_now.get(k) == v, f"{k} differs right after the move"
    env.umount_ext4(extmp)
    r = env.run(["e2fsck", "-f", "-n", dev])
    assert r.returncode == 0, f"e2fsck after move: {r.stdout}{r.stderr}"
    env.loop_detach(dev)
    m.unmount()

    # --- remounting with the old config (still naming pv0) is refused
    bad = vg.mount(expect_ok=False)
    assert bad.result.returncode != 0, "a config naming the pvremoved PV must not mount"
    assert "pv0" in bad.result.stderr, bad.result.stderr
    env.unmount(bad)

    # --- a config without pv0 (pvnew is not in it either: found at its stored path)
    vg.pvs = [p for p in vg.pvs if p.name != "pv0"]
    vg.lvs = []
    vg.write_config()
    m2 = vg.mount()
    assert sorted(p["name"] for p in m2.vg_json()["pvs"]) == ["pvk", "pvnew"]
    assert read_lv(m2, "small") == small_data
    dev2 = env.losetup(m2.lv("fs"), read_only=True)
    env.mount_ext4(dev2, extmp, read_only=True)
    sums_after = tree_sums(extmp)
    for k, v in {**static_sums, **live_sums}.items():
        assert sums_after.get(k) == v, f"{k} differs after remount"
    env.umount_ext4(extmp)
    env.loop_detach(dev2)


# --------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------

def test_refusals_change_nothing(env):
    vg = env.make_vg("vgref", pvs=[PvSpec("pv0", "pv0.img", "48MiB"),
                                   PvSpec("pv1", "pv1.img", "48MiB")], extent_size="1MiB")
    vg.create()
    other = env.make_vg("vgother", pvs=[PvSpec("pv0", "pv0.img", "32MiB")], extent_size="1MiB")
    other.create()
    other_pv = other.pv_path("pv0")
    other_hash = sha256_file(other_pv)

    m = vg.mount(foreground=True)
    cli_ok(env, "lvcreate", m.mp, "lv1", "4MiB", "pv0")
    cli_ok(env, "lvcreate", m.mp, "lv2", "2MiB", "pv0")
    write_lv(m, "lv1", b"\xa5" * (4 * MiB))
    free_img = env.tmp / "free.img"
    with open(free_img, "wb") as f:
        f.truncate(48 * MiB)

    imgs = vg.pv_paths + [free_img]
    h0 = hashes(imgs)
    s0 = seqno(m)
    json0 = m.vg_json()

    # EBUSY: lvreduce/lvremove of an open LV (CLI and ctl)
    fd = os.open(m.lv("lv1"), os.O_RDONLY)
    try:
        ctl_refused(m, "lvreduce lv1 2MiB", errno.EBUSY, "lv1", "open")
        ctl_refused(m, "lvremove lv1", errno.EBUSY, "lv1", "open")
        cli_refused(env, m, ["lvreduce", m.mp, "lv1", "2MiB"], "lv1", "open")
        cli_refused(env, m, ["lvremove", m.mp, "lv1"], "lv1", "open")
    finally:
        os.close(fd)
    assert os.stat(m.lv("lv1")).st_size == 4 * MiB

    # EBUSY: pvremove of a PV holding extents
    ctl_refused(m, "pvremove pv0", errno.EBUSY, "pv0", "pvmove")
    cli_refused(env, m, ["pvremove", m.mp, "pv0"], "pv0", "pvmove")

    # ENOSPC
    ctl_refused(m, "lvcreate huge 1GiB", errno.ENOSPC, "huge")
    ctl_refused(m, "lvcreate huge 40MiB pv0", errno.ENOSPC, "huge")
    ctl_refused(m, "lvextend lv1 200MiB", errno.ENOSPC, "lv1")
    cli_refused(env, m, ["lvcreate", m.mp, "huge", "1GiB"], "huge")

    # ENOENT
    ctl_refused(m, "lvextend nolv 8MiB", errno.ENOENT, "nolv")
    ctl_refused(m, "lvreduce nolv 1MiB", errno.ENOENT, "nolv")
    ctl_refused(m, "lvremove nolv", errno.ENOENT, "nolv")
    ctl_refused(m, "lvrename nolv x", errno.ENOENT, "nolv")
    ctl_refused(m, "pvremove nopv", errno.ENOENT, "nopv")
    ctl_refused(m, "lvcreate lv9 1MiB nopv", errno.ENOENT, "nopv")
    ctl_refused(m, f"pvadd {env.tmp}/does-not-exist.img", errno.ENOENT, "does-not-exist.img")
    cli_refused(env, m, ["lvremove", m.mp, "nolv"], "nolv")
    cli_refused(env, m, ["pvremove", m.mp, "nopv"], "nopv")

    # EEXIST
    ctl_refused(m, "lvcreate lv2 1MiB", errno.EEXIST, "lv2")
    ctl_refused(m, "lvrename lv1 lv2", errno.EEXIST, "lv2")
    ctl_refused(m, f"pvadd {vg.pv_path('pv1')}", errno.EEXIST, "pv1")
    ctl_refused(m, f"pvadd {other_pv}", errno.EEXIST, "label")
    ctl_refused(m, f"pvadd {free_img} pv1", errno.EEXIST, "pv1")
    cli_refused(env, m, ["lvcreate", m.mp, "lv2", "1MiB"], "lv2")
    cli_refused(env, m, ["pvadd", m.mp, str(other_pv)], "label")

    # EINVAL
    ctl_refused(m, "lvcreate lv9 1x", errno.EINVAL, "1x")
    ctl_refused(m, "lvcreate lv9 0", errno.EINVAL)
    ctl_refused(m, "lvcreate lv9 -1MiB", errno.EINVAL)
    ctl_refused(m, "lvcreate lv9", errno.EINVAL, "usage")
    ctl_refused(m, "lvcreate bad/name 1MiB", errno.EINVAL, "bad/name")
    ctl_refused(m, "lvextend lv1 2MiB", errno.EINVAL, "lv1")
    ctl_refused(m, "lvextend lv1 4MiB", errno.EINVAL, "lv1")
    ctl_refused(m, "lvreduce lv1 8MiB", errno.EINVAL, "lv1")
    ctl_refused(m, "lvreduce lv1 0", errno.EINVAL)
    ctl_refused(m, "lvrename lv1 bad/name", errno.EINVAL, "bad/name")
    ctl_refused(m, "pvadd free.img", errno.EINVAL, "absolute")
    ctl_refused(m, "pvremove", errno.EINVAL)
    cli_refused(env, m, ["lvextend", m.mp, "lv1", "2MiB"], "lv1")
    cli_refused(env, m, ["lvcreate", m.mp, "lv9", "12q"], "12q")

    # nothing changed: seqno, every view, every image
    assert seqno(m) == s0
    assert m.vg_json() == json0
    assert ls_sizes(m.mp) == {"lv1": 4 * MiB, "lv2": 2 * MiB}
    assert read_lv(m, "lv1") == b"\xa5" * (4 * MiB)
    assert hashes(imgs) == h0, "a refused command changed a PV image"
    assert sha256_file(other_pv) == other_hash, "pvadd of a labelled PV of another VG changed it"
    assert not list(env.tmp.glob("does-not-exist*"))

    # and then the same file is accepted: default name pvN; pvremove of an
    # empty PV works and wipes its label. (Adding the file again afterwards is
    # refused, "holds data vgfs did not create": the metadata slots stay.)
    reply = ctl_ok(m, f"pvadd {free_img}")
    assert re.fullmatch(r"ok PV pv2 added: \d+ extents of 1MiB\n", reply), reply
    assert read_kv(m.meta / "pvs" / "pv2" / "info")["path"] == str(free_img)
    labelled = open(free_img, "rb").read(8 * KiB)
    assert labelled != bytes(8 * KiB), "pvadd wrote no label"
    ctl_refused(m, f"pvadd {free_img}", errno.EEXIST, "pv2")
    s = seqno(m)
    reply = ctl_ok(m, "pvremove pv2")
    assert reply.startswith("ok PV pv2 removed"), reply
    assert seqno(m) == s + 1 and json_pv(m, "pv2") is None
    assert not (m.meta / "pvs" / "pv2").exists()
    assert open(free_img, "rb").read(8 * KiB) != labelled, "pvremove left the label"


def test_lvremove_lvreduce_refused_while_moving(env):
    vg = env.make_vg("vgbusy", pvs=[PvSpec("pv0", "pv0.img", "64MiB"),
                                    PvSpec("pv1", "pv1.img", "64MiB")], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    cli_ok(env, "lvcreate", m.mp, "mv", "40MiB", "pv0")
    write_lv(m, "mv", b"\x5a" * (40 * MiB))
    job = start_job(m, "move mv pv1", limit="1MiB")
    ctl_ok(m, f"pause {job}")
    try:
        ctl_refused(m, "lvremove mv", errno.EBUSY, "mv")
        ctl_refused(m, "lvreduce mv 2MiB", errno.EBUSY, "mv")
        ctl_refused(m, "pvremove pv1", errno.EBUSY, "pv1")
    finally:
        ctl_ok(m, f"abort {job}")
    from vgfstest import wait_job
    st = wait_job(m, job, timeout=30)
    assert st["sync_status"] == "aborted", st
    assert [r[2] for r in lv_map(m, "mv")] == ["pv0"]
    cli_ok(env, "lvremove", m.mp, "mv")
    assert_lv_absent(m, "mv")


# --------------------------------------------------------------------------
# archive and restore
# --------------------------------------------------------------------------

def test_restore_brings_back_removed_lv(env):
    vg = env.make_vg("vgrst", pvs=[PvSpec("pv0", "pv0.img", "48MiB"),
                                   PvSpec("pv1", "pv1.img", "48MiB")], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    cli_ok(env, "lvcreate", m.mp, "keep", "2MiB", "pv0")
    cli_ok(env, "lvcreate", m.mp, "victim", "5MiB", "pv1")
    victim = random.Random(21).randbytes(5 * MiB)
    keep = random.Random(22).randbytes(2 * MiB)
    write_lv(m, "victim", victim)
    write_lv(m, "keep", keep)
    victim_map = lv_map(m, "victim")
    victim_json = json_lv(m, "victim")

    s = seqno(m)
    cli_ok(env, "lvremove", m.mp, "victim")
    assert seqno(m) == s + 1
    backup = vg.dir / "archive" / f"{vg.name}_{s:08d}.yaml"
    assert backup.exists(), sorted(p.name for p in (vg.dir / "archive").glob("*"))
    text = backup.read_text()
    assert "victim" in text and re.search(rf"seqno:\s*{s}\b", text), text[:800]
    assert not (vg.dir / "archive" / f"{vg.name}_{s + 1:08d}.yaml").exists(), \
        "the archive holds the replaced metadata, not the new one"

    # restore refuses while mounted: one line, nothing written
    h_mounted = hashes(vg.pv_paths)
    r = env.vgfs("restore", vg.config, backup)
    assert_one_line_error(r)
    assert seqno(m) == s + 1
    assert hashes(vg.pv_paths) == h_mounted
    m.unmount()
    h_unmounted = hashes(vg.pv_paths)

    # a backup of another VG (same name, other uuid) is refused
    other = env.make_vg("vgrst", subdir="othervg", pvs=[PvSpec("pv0", "pv0.img", "48MiB"),
                                                         PvSpec("pv1", "pv1.img", "48MiB")])
    other.create()
    r = env.vgfs("dump", other.config)
    assert r.returncode == 0, r.stderr
    foreign = env.tmp / "foreign.yaml"
    foreign.write_text(r.stdout)
    r = env.vgfs("restore", vg.config, foreign)
    assert_one_line_error(r, "vg")
    assert hashes(vg.pv_paths) == h_unmounted, "a refused restore changed a PV"

    # a missing backup file
    r = env.vgfs("restore", vg.config, vg.dir / "archive" / "nope.yaml")
    assert_one_line_error(r, "nope.yaml")
    assert hashes(vg.pv_paths) == h_unmounted

    # the real restore
    r = env.vgfs("restore", vg.config, backup)
    assert r.returncode == 0, f"restore: {r.stdout}{r.stderr}"
    m_ = re.search(r"seqno (\d+) \(was (\d+)\)", r.stdout)
    assert r.stdout.startswith("restored VG") and m_, r.stdout
    assert int(m_.group(2)) == s + 1 and int(m_.group(1)) == s + 2, r.stdout
    r = env.vgfs("dump", vg.config)
    assert r.returncode == 0 and "victim" in r.stdout, r.stdout
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"check after restore: {r.stdout}{r.stderr}"

    m2 = vg.mount()
    assert seqno(m2) == s + 2
    assert ls_sizes(m2.mp) == {"keep": 2 * MiB, "victim": 5 * MiB}
    assert lv_map(m2, "victim") == victim_map
    assert json_lv(m2, "victim")["uuid"] == victim_json["uuid"]
    assert read_lv(m2, "victim") == victim
    assert read_lv(m2, "keep") == keep


def test_archive_keeps_by_count_and_age_as_lvm2(env):
    """The archive is kept as LVM2's (retain_min 10, retain_days 30): a
    removed LV stays restorable beyond 20 further changes (issue 9)."""
    vg = env.make_vg("vgarc", pvs=[PvSpec("pv0", "pv0.img", "32MiB")], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    cli_ok(env, "lvcreate", m.mp, "n0", "1MiB")
    first = seqno(m)
    for i in range(25):
        ctl_ok(m, f"lvrename n{i} n{i + 1}")
    last = seqno(m)
    files = sorted(p.name for p in (vg.dir / "archive").glob(f"{vg.name}_*.yaml"))
    want = [f"{vg.name}_{n:08d}.yaml" for n in range(first - 1, last)]
    assert files[-len(want):] == want and len(files) >= 26, (files, want)
    # A month later, the next change leaves the newest 10.
    old = time.time() - 31 * 24 * 3600
    for p in (vg.dir / "archive").glob(f"{vg.name}_*.yaml"):
        os.utime(p, (old, old))
    ctl_ok(m, "lvrename n25 n26")
    files = sorted(p.name for p in (vg.dir / "archive").glob(f"{vg.name}_*.yaml"))
    assert files == [f"{vg.name}_{n:08d}.yaml" for n in range(last - 9, last + 1)], files
    assert ls_sizes(m.mp) == {"n26": MiB}


# --------------------------------------------------------------------------
# recycled PEs: new extents must read zeros (last: a known discrepancy)
# --------------------------------------------------------------------------

def test_new_extents_on_recycled_pes_read_zeros(env):
    """docs/design.md ("New extents ... read as zeros"): the new tail of an
    extended LV reads zeros. vgfs did not zero PEs on allocation, so PEs freed
    by lvremove/lvreduce may still hold the old LV's data (a data leak between
    LVs)."""
    vg = env.make_vg("vgzero", pvs=[PvSpec("pv0", "pv0.img", "32MiB")], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    cli_ok(env, "lvcreate", m.mp, "a", "2MiB")
    cli_ok(env, "lvcreate", m.mp, "b", "2MiB")
    assert lv_map(m, "b") == [(0, 2, "pv0", 2)], lv_map(m, "b")
    write_lv(m, "b", b"B" * (2 * MiB))
    cli_ok(env, "lvremove", m.mp, "b")
    cli_ok(env, "lvextend", m.mp, "a", "4MiB")
    assert lv_map(m, "a") == [(0, 4, "pv0", 0)], lv_map(m, "a")
    tail_ext = read_lv(m, "a")[2 * MiB:]

    cli_ok(env, "lvcreate", m.mp, "c", "2MiB")
    write_lv(m, "c", b"C" * (2 * MiB))
    c_map = lv_map(m, "c")
    cli_ok(env, "lvremove", m.mp, "c")
    cli_ok(env, "lvcreate", m.mp, "d", "2MiB")
    d_map = lv_map(m, "d")
    d_data = read_lv(m, "d")

    problems = []
    if tail_ext != bytes(2 * MiB):
        problems.append(f"lvextend onto PEs freed by lvremove: tail holds old data "
                        f"(bytes {sorted(set(tail_ext))[:4]})")
    if d_map == c_map and d_data != bytes(2 * MiB):
        problems.append(f"lvcreate on PEs freed by lvremove {d_map}: reads old data "
                        f"(bytes {sorted(set(d_data))[:4]})")
    assert not problems, "; ".join(problems)
