"""vgfs writes LVM2 metadata that LVM2 itself accepts (docs/lvm2.md,
"Writing LVM2 metadata").

LVM2 makes a VG on two loop devices; vgfs's LVM2 format (through VgStore,
driven by the unit-test binary's "on PVs LVM2 made" case, since the mount
side lives elsewhere) commits an lvcreate of a linear LV, an lvcreate of a
striped LV and an lvextend of it. Then LVM2's vgck and pvck must pass, `lvs`
must show what vgfs committed, `pvck --dump metadata` must show vgfs's copy,
the archive must be a text vgcfgrestore reads; then LVM2 changes the VG and
vgfs reads it back. Needs root, losetup and LVM2 (a private LVM_SYSTEM_DIR
that accepts only this test's loops; docs/lvm2.md, "Testing against LVM2").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import VGFS_BIN
from vgfstest.lvm2 import Lvm

MiB = 1 << 20
UNIT_TESTS = Path(VGFS_BIN).parent / "unit_tests"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None
    or not UNIT_TESTS.exists(),
    reason="needs root, losetup, LVM2 (Debian's lvm2) and the unit-test binary")


def vgfs_lvm2(lvm: Lvm, action: str, vg: str, pvs: list[str], suffix: str = "", new_pv: str = "") -> dict:
    """Runs the unit-test binary's LVM2 case; returns what vgfs saw."""
    out = lvm.dir / f"vgfs-{action}.txt"
    env = dict(os.environ, VGFS_LVM2_PVS=",".join(pvs), VGFS_LVM2_ACTION=action, VGFS_LVM2_VG=vg,
               VGFS_LVM2_OUT=str(out), VGFS_LVM2_ARCHIVE=str(lvm.dir / "archive"), VGFS_LVM2_SUFFIX=suffix)
    if new_pv:
        env["VGFS_LVM2_NEWPV"] = new_pv
    r = subprocess.run([str(UNIT_TESTS), "-tc=lvm2 format: on PVs LVM2 made*"], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = {"lvs": {}, "segs": [], "warnings": []}
    for line in out.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "seqno":
            seen["seqno"] = int(rest)
        elif kind == "refused":
            seen["refused"] = rest
        elif kind == "lv":
            name, size, vis = rest.split(" ")
            seen["lvs"][name] = (int(size), vis)
        elif kind == "seg":
            name, segtype, *ranges = rest.split(" ")
            seen["segs"].append((name, segtype, " ".join(ranges)))
        elif kind == "warning":
            seen["warnings"].append(rest)
    return seen


def lvm_segments(lvm: Lvm, vg: str) -> list[tuple[str, str, str]]:
    return sorted((s["lv_name"], s["segtype"], s["seg_pe_ranges"])
                  for s in lvm.report("lvs", "seg", "-a", "--segments", "-o", "lv_name,seg_pe_ranges,segtype", vg))


def test_vgfs_commits_that_lvm2_accepts_and_reads_back(lvm):
    images = [lvm.image(f"pv{i}.img", 128 * MiB) for i in range(2)]
    loops = [lvm.attach(img) for img in images]
    lvm.run("pvcreate", "-q", *loops)
    lvm.run("vgcreate", "-q", "-s", "4m", "vgt", *loops)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-L", "8m", "-n", "lvm_lin", "vgt")
    seqno = int(lvm.report("vgs", "vg", "-o", "vg_seqno", "vgt")[0]["vg_seqno"])

    seen = vgfs_lvm2(lvm, "write", "vgt", loops)
    assert seen["refused"] == "-"
    assert seen["seqno"] == seqno + 3
    assert seen["lvs"]["vgfs_lin"] == (3 * 4 * MiB, "visible")
    assert seen["lvs"]["vgfs_st"] == (6 * 4 * MiB, "visible")
    assert [s for s in seen["segs"] if s[0] == "vgfs_st"][0][1] == "striped"

    # LVM2's own checks pass on every PV and on the VG.
    lvm.run("vgck", "vgt")
    for dev in loops:
        out = subprocess.run(["pvck", dev], env=lvm.env, capture_output=True, text=True)
        assert out.returncode == 0 and "CHECK" not in out.stdout + out.stderr, out.stdout + out.stderr
    for img in images:
        dump = subprocess.run(["pvck", "--dump", "metadata", str(img)], env=lvm.env, capture_output=True, text=True)
        assert dump.returncode == 0, dump.stderr
        assert "Written by vgfs." in dump.stdout
        assert f"seqno = {seqno + 3}" in dump.stdout
        assert "CHECK" not in dump.stdout + dump.stderr
    # LVM2 sees what vgfs committed, segment by segment, sizes too.
    vg = lvm.report("vgs", "vg", "-o", "vg_seqno", "vgt")[0]
    assert int(vg["vg_seqno"]) == seqno + 3
    assert lvm_segments(lvm, "vgt") == sorted(seen["segs"])
    sizes = {lv["lv_name"]: int(lv["lv_size"]) for lv in lvm.report("lvs", "lv", "-a", "-o", "lv_name,lv_size", "vgt")}
    assert sizes == {name: size for name, (size, _) in seen["lvs"].items()}
    # The archive holds LVM2 text that vgcfgrestore reads.
    archived = sorted((lvm.dir / "archive").glob("vgt_*.vg"))
    assert len(archived) == 3
    lvm.run("vgcfgrestore", "--test", "-f", str(archived[-1]), "vgt")

    # LVM2 changes the VG (a new LV, and an extend of one vgfs made); vgfs reads it.
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-L", "4m", "-n", "lvm_after", "vgt")
    lvm.run("lvextend", "-q", "-L", "+4m", "vgt/vgfs_lin")
    back = vgfs_lvm2(lvm, "read", "vgt", loops)
    assert back["seqno"] == seqno + 5
    assert back["lvs"]["lvm_after"] == (4 * MiB, "visible")
    assert back["lvs"]["vgfs_lin"] == (4 * 4 * MiB, "visible")
    assert sorted(back["segs"]) == lvm_segments(lvm, "vgt")
    assert back["warnings"] == []

    # And vgfs commits on top of LVM2's change again, still accepted; this
    # time it also adds a blank device as a PV (pvadd: LVM2's vgextend) and
    # puts an LV on it.
    blank = lvm.attach(lvm.image("pv2.img", 64 * MiB))
    again = vgfs_lvm2(lvm, "write", "vgt", loops, suffix="2", new_pv=blank)
    assert again["seqno"] == seqno + 10
    lvm.run("vgck", "vgt")
    for dev in loops + [blank]:
        out = subprocess.run(["pvck", dev], env=lvm.env, capture_output=True, text=True)
        assert out.returncode == 0 and "CHECK" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert lvm_segments(lvm, "vgt") == sorted(again["segs"])
    assert ("vgfs_new2", "linear", f"{blank}:0-1") in again["segs"]
    pvs = {p["pv_name"]: p["vg_name"] for p in lvm.report("pvs", "pv", "-o", "pv_name,vg_name")}
    assert pvs == {loops[0]: "vgt", loops[1]: "vgt", blank: "vgt"}
    # LVM2 can use the PV vgfs added.
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-L", "4m", "-n", "lvm_on_new", "vgt", blank)
    lvm.run("vgck", "vgt")
