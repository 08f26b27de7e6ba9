"""`vgfs scan` against VGs made by LVM2's own tools (docs/lvm2.md).

Each test builds PVs with pvcreate/vgcreate/lvcreate on loop devices over
image files, with a private LVM_SYSTEM_DIR whose lvm.conf sets activation = 0
and accepts only this test's loop devices (docs/lvm2.md, "Testing against
LVM2"), then checks that `vgfs scan --json` agrees with `vgs`, `lvs
--segments` and `vgcfgbackup`. Needs root, losetup and LVM2; loops are
detached by name in teardown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import VGFS_BIN
from vgfstest.lvm2 import Lvm, parse_backup, write_gpt

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def scan(*paths: str | Path, ok: bool = True) -> dict:
    r = subprocess.run([str(VGFS_BIN), "scan", "--json", *map(str, paths)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def check_agrees(lvm: Lvm, result: dict, vg_name: str) -> dict:
    """vgfs scan's VG equals what vgs, lvs --segments and vgcfgbackup say."""
    vgs = [v for v in result["vgs"] if v["name"] == vg_name]
    assert len(vgs) == 1, result
    vg = vgs[0]
    lvm_vg = lvm.report("vgs", "vg", "-o", "vg_name,vg_uuid,vg_seqno,vg_extent_size,lv_count", vg_name)[0]
    assert vg["uuid"] == lvm_vg["vg_uuid"]
    assert vg["seqno"] == int(lvm_vg["vg_seqno"])
    assert vg["extent_size"] == int(lvm_vg["vg_extent_size"])

    pv_name = {p["pv_uuid"]: p["pv_name"] for p in lvm.report("pvs", "pv", "-o", "pv_name,pv_uuid")}
    key_to_dev = {p["key"]: pv_name[p["uuid"]] for p in vg["pvs"]}
    ours = []
    for lv in vg["lvs"]:
        name = lv["name"] if lv["visible"] else f"[{lv['name']}]"
        for s in lv["segments"]:
            if s["type"] == "striped":
                leg = s["extent_count"] // s["stripe_count"]
                ranges = " ".join(f"{key_to_dev[a['pv']]}:{a['pe']}-{a['pe'] + leg - 1}" for a in s["stripes"])
                kind = "linear" if s["stripe_count"] == 1 else "striped"
            else:
                ranges, kind = None, s["type"]
            ours.append((name, lv["size"], s["start_extent"], s["extent_count"], kind, ranges, s["stripe_size"]))
    theirs = []
    for s in lvm.report("lvs", "seg", "-a", "--segments", "-o",
                        "lv_name,lv_size,seg_start_pe,seg_size_pe,seg_pe_ranges,segtype,stripe_size", vg_name):
        ranges = s["seg_pe_ranges"] if s["segtype"] in ("linear", "striped") else None
        theirs.append((s["lv_name"], int(s["lv_size"]), int(s["seg_start_pe"]), int(s["seg_size_pe"]),
                       s["segtype"], ranges, int(s["stripe_size"])))
    assert sorted(ours) == sorted(theirs)

    backup = parse_backup(lvm.backup(vg_name))[vg_name]
    assert backup["seqno"] == vg["seqno"]
    assert list(backup.get("logical_volumes", {})) == [lv["name"] for lv in vg["lvs"]]
    for lv in vg["lvs"]:
        b = backup["logical_volumes"][lv["name"]]
        assert b["segment_count"] == len(lv["segments"])
        for i, s in enumerate(lv["segments"], 1):
            bs = b[f"segment{i}"]
            assert (bs["start_extent"], bs["extent_count"], bs["type"]) == \
                (s["start_extent"], s["extent_count"], s["type"])
            if s["type"] == "striped":
                assert bs["stripes"] == [x for a in s["stripes"] for x in (a["pv"], a["pe"])]
    return vg


def test_one_pv(lvm):
    img = lvm.image("one.img", 64 * MiB)
    dev = lvm.attach(img)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vgone", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "data", "-L", "8M", "vgone")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "logs", "-L", "12M", "vgone")
    result = scan(img)
    assert result["errors"] == [] and result["warnings"] == []
    [pv] = result["pvs"]
    assert pv["format"] == "lvm2" and pv["vg"] == "vgone" and pv["in_vg"] and pv["metadata_areas"] == 1
    assert pv["uuid"] == lvm.report("pvs", "pv", "-o", "pv_uuid", dev)[0]["pv_uuid"]
    vg = check_agrees(lvm, result, "vgone")
    assert [lv["servable"] for lv in vg["lvs"]] == [True, True]
    # The same through the block device, and the human listing.
    assert scan(dev)["vgs"][0]["seqno"] == vg["seqno"]
    text = subprocess.run([str(VGFS_BIN), "scan", str(img)], capture_output=True, text=True, check=True).stdout
    assert "VG vgone  format lvm2" in text and "LV data" in text and "vgfs can serve it" in text


def test_two_pvs_striped_and_several_segments(lvm):
    imgs = [lvm.image(f"pv{i}.img", 64 * MiB) for i in range(2)]
    devs = [lvm.attach(i) for i in imgs]
    lvm.run("pvcreate", "-q", *devs)
    lvm.run("vgcreate", "-q", "vgtwo", *devs)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lin", "-L", "8M", "vgtwo", devs[0])
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-i2", "-I64k", "-n", "st", "-L", "16M", "vgtwo")
    lvm.run("lvextend", "-q", "-L", "+8M", "vgtwo/lin", devs[0])
    result = scan(*imgs)
    assert result["errors"] == []
    vg = check_agrees(lvm, result, "vgtwo")
    lin = next(lv for lv in vg["lvs"] if lv["name"] == "lin")
    assert len(lin["segments"]) == 2
    st = next(lv for lv in vg["lvs"] if lv["name"] == "st")
    assert st["segments"][0]["stripe_count"] == 2 and st["segments"][0]["stripe_size"] == 65536
    assert all(pv["missing"] is False for pv in vg["pvs"])
    # One PV alone: the VG is read, the other PV is reported missing.
    alone = scan(imgs[0])
    assert [p["missing"] for p in alone["vgs"][0]["pvs"]] == [False, True]
    assert any("is missing" in w for w in alone["vgs"][0]["warnings"])


def test_two_metadata_areas_and_a_damaged_one(lvm):
    img = lvm.image("two-mdas.img", 64 * MiB)
    dev = lvm.attach(img)
    lvm.run("pvcreate", "-q", "--pvmetadatacopies", "2", "--bootloaderareasize", "1m", dev)
    lvm.run("vgcreate", "-q", "vgmda", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "x", "-L", "4M", "vgmda")
    result = scan(img)
    [pv] = result["pvs"]
    assert pv["metadata_areas"] == 2 and pv["bootloader_areas"] == 1
    assert result["warnings"] == [] and result["vgs"][0]["warnings"] == []
    check_agrees(lvm, result, "vgmda")
    lvm.detach_all()
    # Break one byte of the committed text of mda1: the copy in mda2 is used
    # and the damage is named.
    with open(img, "r+b") as f:
        f.seek(4096)
        h = f.read(512)
        off, = struct.unpack_from("<Q", h, 40)
        f.seek(4096 + off + 10)
        b = f.read(1)
        f.seek(4096 + off + 10)
        f.write(bytes([b[0] ^ 1]))
    result = scan(img)
    assert result["vgs"][0]["name"] == "vgmda"
    assert any("mda1 (byte 4096): damaged, not used: " in w and "text CRC" in w for w in result["warnings"])
    assert "mda2" in result["vgs"][0]["metadata_from"]


def test_wrapped_ring(lvm):
    img = lvm.image("ring.img", 64 * MiB)
    dev = lvm.attach(img)
    # A 60 KiB metadata area (the data alignment keeps LVM2 from growing it
    # to 1 MiB) wraps after a few dozen commits.
    lvm.run("pvcreate", "-q", "--metadatasize", "32k", "--dataalignment", "64k", dev)
    lvm.run("vgcreate", "-q", "-s", "1m", "vgring", dev)
    wrapped = False
    for i in range(60):
        lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", f"lv{i}", "-L", "2M", "vgring")
        if i % 3 != 2:
            lvm.run("lvremove", "-q", "-y", f"vgring/lv{i}")
        with open(img, "rb") as f:
            f.seek(4096)
            h = f.read(512)
        size, = struct.unpack_from("<Q", h, 32)
        off, length = struct.unpack_from("<QQ", h, 40)
        if off + length > size:
            wrapped = True
            break
    assert wrapped, "the ring did not wrap"
    result = scan(img)
    assert result["errors"] == []
    check_agrees(lvm, result, "vgring")


def test_thin_pool_is_listed_as_not_served(lvm):
    img = lvm.image("thin.img", 64 * MiB)
    dev = lvm.attach(img)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vgthin", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "plain", "-L", "4M", "vgthin")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "pdata", "-L", "8M", "vgthin")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "pmeta", "-L", "4M", "vgthin")
    # LVM2 cannot make a thin pool without device-mapper; its metadata can
    # be restored: rename and hide the two LVs and add the pool naming them.
    text = lvm.backup("vgthin").replace("\t\tpdata {", "\t\tpool_tdata {").replace("\t\tpmeta {", "\t\tpool_tmeta {")
    for name in ("pool_tdata", "pool_tmeta"):
        text = re.sub(r"(\t\t%s \{\n\t\t\tid = \"[^\"]+\"\n\t\t\tstatus = )\[[^\]]*\]" % name,
                      r'\1["READ", "WRITE"]', text)
    pool = ('\t\tpool {\n\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg"\n'
            '\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n'
            '\t\t\tcreation_time = 1796395726\n\t\t\tcreation_host = "vm"\n\t\t\tsegment_count = 1\n\n'
            '\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 2\n\n'
            '\t\t\t\ttype = "thin-pool"\n\t\t\t\tmetadata = "pool_tmeta"\n\t\t\t\tpool = "pool_tdata"\n'
            '\t\t\t\ttransaction_id = 0\n\t\t\t\tchunk_size = 128\n\t\t\t\tdiscards = "passdown"\n'
            '\t\t\t\tzero_new_blocks = 0\n\t\t\t}\n\t\t}\n\n')
    text = text.replace("\tlogical_volumes {\n\n", "\tlogical_volumes {\n\n" + pool, 1)
    edited = lvm.dir / "thin.txt"
    edited.write_text(text)
    subprocess.run(["vgcfgrestore", "--force", "-f", str(edited), "vgthin"], env=lvm.env, capture_output=True)
    types = {lv["lv_name"]: lv["segtype"] for lv in lvm.report("lvs", "lv", "-a", "-o", "lv_name,segtype", "vgthin")}
    assert types["pool"] == "thin-pool" and types["[pool_tdata]"] == "linear"
    result = scan(img)
    vg = check_agrees(lvm, result, "vgthin")
    lvs = {lv["name"]: lv for lv in vg["lvs"]}
    assert not lvs["pool"]["servable"] and "thin provisioning" in lvs["pool"]["reason"]
    assert lvs["plain"]["servable"]
    assert not lvs["pool_tdata"]["visible"]


def test_gpt_disk_image_pv_in_partition_3(lvm):
    size = 96 * MiB
    img = lvm.image("disk.img", size)
    p3_first, p3_last = 16 * 2048, (size // 512) - 34 - 1
    write_gpt(img, size, [(2048, 4095), (4096, 16 * 2048 - 1), (p3_first, p3_last)])
    dev = lvm.attach(img, p3_first * 512, (p3_last - p3_first + 1) * 512)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vggpt", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "root", "-L", "20M", "vggpt")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "home", "-L", "8M", "vggpt")
    result = scan(img)
    assert result["errors"] == []
    [pv] = result["pvs"]
    assert (pv["partition"], pv["offset"], pv["format"]) == (3, p3_first * 512, "lvm2")
    vg = check_agrees(lvm, result, "vggpt")
    assert vg["pvs"][0]["partition"] == 3
    text = subprocess.run([str(VGFS_BIN), "scan", str(img)], capture_output=True, text=True, check=True).stdout
    assert "(partition 3, byte %d)" % (p3_first * 512) in text


def test_paths_without_pvs_and_vgfs_pvs(lvm, tmp_path):
    empty = lvm.image("empty.img", 8 * MiB)
    result = scan(empty)
    assert result["pvs"] == [] and result["no_pv"] == [str(empty)]
    r = subprocess.run([str(VGFS_BIN), "scan", str(lvm.dir / "absent.img")], capture_output=True, text=True)
    assert r.returncode == 1 and "absent.img: cannot open" in r.stderr and len(r.stderr.splitlines()) == 1
    r = subprocess.run([str(VGFS_BIN), "scan", str(lvm.dir)], capture_output=True, text=True)
    assert r.returncode == 1 and "not an image file or a block device" in r.stderr
    # A vgfs PV is listed with its own format.
    pv = lvm.image("vgfs.img", 64 * MiB)
    cfg = lvm.dir / "vg.yaml"
    cfg.write_text(f"vg:\n  name: own\n  extent_size: 1MiB\npvs:\n  - {{name: pv0, path: {pv}}}\n"
                   "lvs:\n  - {name: a, size: 4MiB}\n")
    subprocess.run([str(VGFS_BIN), "create", str(cfg)], check=True, capture_output=True)
    result = scan(pv)
    [p] = result["pvs"]
    assert (p["format"], p["vg"], p["seqno"]) == ("vgfs", "own", 1)


def test_mbr_disk_image_pv_in_partition_2(lvm):
    size = 64 * MiB
    img = lvm.image("mbr.img", size)
    parts = [(2048, 8192), (10240, size // 512 - 10240)]  # (first sector, sectors)
    mbr = bytearray(512)
    for i, (first, count) in enumerate(parts):
        struct.pack_into("<B3sB3sII", mbr, 446 + 16 * i, 0, b"\0\0\0", 0x8E, b"\0\0\0", first, count)
    mbr[510:512] = b"\x55\xaa"
    with open(img, "r+b") as f:
        f.write(mbr)
    dev = lvm.attach(img, parts[1][0] * 512, parts[1][1] * 512)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vgmbr", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lv", "-L", "16M", "vgmbr")
    result = scan(img)
    [pv] = result["pvs"]
    assert (pv["partition"], pv["offset"]) == (2, parts[1][0] * 512)
    check_agrees(lvm, result, "vgmbr")
