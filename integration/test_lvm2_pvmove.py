"""Finishing and aborting the pvmove that LVM2 leaves behind without
device-mapper (docs/lvm2.md, "LVM2's unfinished pvmove"), against LVM2
itself.

LVM2 2.03's `pvmove`, with activation disabled in a private LVM2 world
(vgfstest.lvm2), writes its hidden pvmove0 LV and the LOCKED LVs and stops.
vgfs's transformation (include/vgfs/lvm2_pvmove.h) is applied to the
`vgcfgbackup` text by the test-only program build/lvm2_pvmove_tool; LVM2's
`vgcfgrestore` commits the result. Then LVM2 must agree: `vgck` passes,
`lvs -a` shows no pvmove0 and the LVs on the destination (finish) or the
source (abort), unlocked, and `lvextend`/`lvremove` work on them again. The
LVs hold random data written at their source PEs before the pvmove; for
finish the test copies the extents of the tool's copy list with plain file
I/O, and every LV read through its new mapping must be unchanged. Needs
root, losetup and LVM2; loops are detached by name in teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vgfstest.lvm2 import Lvm, lv_chunks, lvm_try, parse_backup
from vgfstest.paths import VGFS_BIN

MiB = 1 << 20
TOOL = VGFS_BIN.parent / "lvm2_pvmove_tool"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


class World:
    """Three 32 MiB PVs (a, b, c) in VG vg with 1 MiB extents: lv1 on
    a:0-9 + a:15-17 (two segments), lv2 on a:10-14, st striped over a:18-21
    and b:0-3 (64 KiB stripes); every LV filled with random bytes."""

    def __init__(self, lvm: Lvm) -> None:
        self.lvm = lvm
        self.images = {}
        self.image_by_uuid: dict[str, Path] = {}
        self.dev = {}
        for name in "abc":
            img = lvm.image(f"{name}.img", 32 * MiB)
            self.dev[name] = lvm.attach(img)
            self.images[self.dev[name]] = img
        for d in self.dev.values():
            lvm.run("pvcreate", d)
        a, b = self.dev["a"], self.dev["b"]
        lvm.run("vgcreate", "-s", "1m", "vg", *self.dev.values())
        lvm.run("lvcreate", "-an", "-Zn", "-n", "lv1", "-l", "10", "vg", a)
        lvm.run("lvcreate", "-an", "-Zn", "-n", "lv2", "-l", "5", "vg", a)
        lvm.run("lvextend", "-l", "+3", "vg/lv1", a)
        lvm.run("lvcreate", "-an", "-Zn", "-n", "st", "-i2", "-I64k", "-l", "8", "vg", a, b)
        self.data = {}
        backup = self.backup()
        for lv in ("lv1", "lv2", "st"):
            size = sum(c[3] for c in lv_chunks(backup, "vg", lv))
            self.data[lv] = os.urandom(size)
            self.write_lv(backup, lv, self.data[lv])

    def backup(self) -> dict:
        return parse_backup(self.lvm.backup("vg"))

    def image_of(self, backup: dict, pv: str) -> Path:
        # One `pvs` per World: a PV's uuid and device stay for the test, and
        # a striped LV has a chunk per stripe (asking per chunk cost 17 s of
        # every test's 19).
        uuid = backup["vg"]["physical_volumes"][pv]["id"]
        if uuid not in self.image_by_uuid:
            self.image_by_uuid = {p["pv_uuid"]: self.images[p["pv_name"]]
                                  for p in self.lvm.report("pvs", "pv", "-o", "pv_name,pv_uuid")}
        assert uuid in self.image_by_uuid, f"no device for {pv}"
        return self.image_by_uuid[uuid]

    def write_lv(self, backup: dict, lv: str, data: bytes) -> None:
        for at, pv, off, length in lv_chunks(backup, "vg", lv):
            with open(self.image_of(backup, pv), "r+b") as f:
                f.seek(off)
                f.write(data[at:at + length])

    def read_lv(self, backup: dict, lv: str) -> bytes:
        out = bytearray()
        for at, pv, off, length in lv_chunks(backup, "vg", lv):
            assert at == len(out)
            with open(self.image_of(backup, pv), "rb") as f:
                f.seek(off)
                out += f.read(length)
        return bytes(out)

    def segments(self) -> list[tuple[str, str, str, str]]:
        return [(s["lv_name"], s["seg_pe_ranges"], s["segtype"], s["lv_attr"])
                for s in self.lvm.report("lvs", "seg", "-a", "--segments", "-o", "lv_name,seg_pe_ranges,segtype,lv_attr", "vg")]

    def tool(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(TOOL), *args], capture_output=True, text=True)
        if ok:
            assert r.returncode == 0, r.stderr
        return r

    def resolve(self, verb: str) -> dict:
        """LVM2's stuck state backed up, resolved by vgfs, restored by LVM2.
        For finish, the copy list is copied first. Returns the tool's
        description of the move."""
        stuck = self.lvm.dir / "stuck.vg"
        self.lvm.run("vgcfgbackup", "-f", str(stuck), "vg")
        move = json.loads(self.tool("show", str(stuck)).stdout)
        backup = parse_backup(stuck.read_text())
        ext = backup["vg"]["extent_size"] * 512
        if verb == "finish":
            for c in move["copies"]:
                src, dst = c["source"], c["destination"]
                src_pv = backup["vg"]["physical_volumes"][src["pv"]]
                dst_pv = backup["vg"]["physical_volumes"][dst["pv"]]
                with open(self.image_of(backup, src["pv"]), "rb") as f:
                    f.seek(src_pv["pe_start"] * 512 + src["pe"] * ext)
                    data = f.read(c["count"] * ext)
                with open(self.image_of(backup, dst["pv"]), "r+b") as f:
                    f.seek(dst_pv["pe_start"] * 512 + dst["pe"] * ext)
                    f.write(data)
        result = self.lvm.dir / f"{verb}.vg"
        self.tool(verb, str(stuck), str(result))
        self.lvm.run("vgcfgrestore", "-f", str(result), "vg")
        self.lvm.run("vgck", "vg")
        return move


def stuck_pvmove(w: World, *args: str) -> None:
    """LVM2's own pvmove without device-mapper: it writes pvmove0 and stops."""
    w.lvm.run("pvmove", *args)
    segs = w.segments()
    assert any(s[0] == "[pvmove0]" and s[2] == "mirror" for s in segs), segs
    w.lvm.run("vgck", "vg")


def pe_ranges(w: World, lv: str) -> list[str]:
    return [s[1] for s in w.segments() if s[0] == lv]


def check_unlocked_and_usable(w: World, lvs: list[str]) -> None:
    segs = w.segments()
    assert not any("pvmove" in s[0] or "pvmove" in s[1] for s in segs), segs
    for name, _, _, attr in segs:
        assert attr[2].islower(), f"{name} is still locked: {attr}"
    # LVM2 refused these while the LVs were locked.
    assert "pvmove0" not in w.lvm.backup("vg")
    w.lvm.run("lvextend", "-l", "+1", "vg/" + lvs[0])
    w.lvm.run("lvremove", "-y", "vg/" + lvs[-1])
    w.lvm.run("vgck", "vg")


def check_data(w: World, lvs: list[str]) -> None:
    backup = w.backup()
    for lv in lvs:
        got = w.read_lv(backup, lv)
        diff = next((i for i in range(len(got)) if got[i] != w.data[lv][i]), None) if got != w.data[lv] else None
        assert got == w.data[lv], f"{lv}: data differs after the pvmove was resolved, first at LV byte {diff}"


def test_stuck_pvmove_is_locked_in_lvm2(lvm):
    w = World(lvm)
    stuck_pvmove(w, w.dev["a"], w.dev["c"])
    r = lvm_try(lvm, "lvextend", "-l", "+1", "vg/lv1")
    assert r.returncode != 0 and "locked" in r.stderr, r.stderr
    r = lvm_try(lvm, "lvremove", "-y", "vg/lv2")
    assert r.returncode != 0 and "locked" in r.stderr, r.stderr


def test_finish_whole_pv(lvm):
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    stuck_pvmove(w, a, c)
    move = w.resolve("finish")
    assert len(move["pieces"]) == 4 and len(move["copies"]) == 4
    assert sum(x["count"] for x in move["copies"]) == 13 + 5 + 4
    # lv1's two pieces landed next to each other on c: LVM2 sees one segment.
    assert pe_ranges(w, "lv1") == [f"{c}:0-12"]
    assert pe_ranges(w, "lv2") == [f"{c}:13-17"]
    assert pe_ranges(w, "st") == [f"{c}:18-21 {b}:0-3"]
    pv_used = {p["pv_name"]: int(p["pv_used"]) for p in
               lvm.report("pvs", "pv", "-o", "pv_name,pv_used")}
    assert pv_used[a] == 0
    check_data(w, ["lv1", "lv2", "st"])
    check_unlocked_and_usable(w, ["lv1", "lv2"])


def test_abort_whole_pv(lvm):
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    stuck_pvmove(w, a, c)
    w.resolve("abort")
    assert pe_ranges(w, "lv1") == [f"{a}:0-9", f"{a}:15-17"]
    assert pe_ranges(w, "lv2") == [f"{a}:10-14"]
    assert pe_ranges(w, "st") == [f"{a}:18-21 {b}:0-3"]
    check_data(w, ["lv1", "lv2", "st"])
    check_unlocked_and_usable(w, ["lv1", "st"])


def test_finish_one_lv(lvm):
    w = World(lvm)
    a, b = w.dev["a"], w.dev["b"]
    stuck_pvmove(w, "-n", "lv2", a, b)
    move = w.resolve("finish")
    assert [p["user"]["lv"] for p in move["pieces"]] == ["lv2"]
    dest = move["pieces"][0]["destination"]["pe"]
    assert pe_ranges(w, "lv2") == [f"{b}:{dest}-{dest + 4}"]
    assert pe_ranges(w, "lv1") == [f"{a}:0-9", f"{a}:15-17"]
    check_data(w, ["lv1", "lv2", "st"])
    check_unlocked_and_usable(w, ["lv2", "lv1"])


def test_abort_range_merges_the_split_segment(lvm):
    w = World(lvm)
    a, b = w.dev["a"], w.dev["b"]
    # LVM2 splits lv1's first segment at LE 5 to move only a:0-4.
    stuck_pvmove(w, f"{a}:0-4", b)
    assert pe_ranges(w, "lv1")[1:] == [f"{a}:5-9", f"{a}:15-17"]
    w.resolve("abort")
    assert pe_ranges(w, "lv1") == [f"{a}:0-9", f"{a}:15-17"]
    check_data(w, ["lv1", "lv2", "st"])
    check_unlocked_and_usable(w, ["lv1", "lv2"])


def test_finish_range(lvm):
    w = World(lvm)
    a, b = w.dev["a"], w.dev["b"]
    stuck_pvmove(w, f"{a}:0-4", b)
    move = w.resolve("finish")
    dest = move["pieces"][0]["destination"]["pe"]
    assert pe_ranges(w, "lv1") == [f"{b}:{dest}-{dest + 4}", f"{a}:5-9", f"{a}:15-17"]
    check_data(w, ["lv1", "lv2", "st"])
    check_unlocked_and_usable(w, ["lv1", "lv2"])


def test_tool_refuses_a_vg_without_pvmove(lvm):
    w = World(lvm)
    stuck = lvm.dir / "plain.vg"
    lvm.run("vgcfgbackup", "-f", str(stuck), "vg")
    r = w.tool("finish", str(stuck), str(lvm.dir / "out.vg"), ok=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "lvm2_pvmove_tool: VG vg: holds no pvmove LV", r.stderr
    assert not (lvm.dir / "out.vg").exists()


def test_atomic_pvmove_is_refused(lvm):
    w = World(lvm)
    stuck_pvmove(w, "--atomic", w.dev["a"], w.dev["c"])
    stuck = lvm.dir / "stuck.vg"
    lvm.run("vgcfgbackup", "-f", str(stuck), "vg")
    out = lvm.dir / "out.vg"
    r = w.tool("finish", str(stuck), str(out), ok=False)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "lvm2_pvmove_tool: VG vg: LV pvmove0 segment1: the source leg is LV pvmove0_mimage_0: an atomic pvmove "
        "(pvmove --atomic), which vgfs does not finish"), r.stderr
    assert not out.exists()
