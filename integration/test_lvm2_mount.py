"""`vgfs mount PATH... MNT` and the offline reports on VGs found from their
PVs (docs/lvm2.md, "Mounting"): LVM2 VGs made by LVM2's own tools, and
vgfs's own VGs given by their PV paths instead of a config.

LVM2's tools run in a private world (vgfstest.lvm2.Lvm: activation = 0, a
device filter for this test's loop devices only, a private lock folder that
the mounts are pointed at with -o lvm_lock_dir). Loops are detached by name
and mounts unmounted in teardown. Where data lands is computed from LVM2's
own vgcfgbackup text (vgfstest.lvm2.pv_byte) and checked on the images.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import VGFS_BIN
from vgfstest import LvSpec, Mount, assert_one_line_error, daemon_pids, is_mounted
from vgfstest.lvm2 import Lvm, add_thin_pool, holds_lock, parse_backup, pv_byte, write_gpt

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def mount(env, lvm: Lvm | None, *paths, opts: str = "", ok: bool = True, vg: str | None = None) -> Mount:
    """vgfs mount PATH... MNT, pointed at the private LVM2 lock folder."""
    mp = env.new_mountpoint()
    o = ",".join(x for x in (opts, f"lvm_lock_dir={lvm.etc / 'lock'}" if lvm else "") if x)
    args = ["mount", *paths, mp] + (["--vg", vg] if vg else []) + (["-o", o] if o else [])
    m = Mount(env, Path(paths[0]), mp)
    m.result = env.vgfs(*args)
    if is_mounted(mp):
        m.pids = daemon_pids(mp)
        env.mounts.append(m)
    if ok:
        assert m.result.returncode == 0 and is_mounted(mp), m.result.stderr
    return m


def vgfs_json(env, verb: str, *args) -> list[dict]:
    r = env.vgfs(verb, *args, "--reportformat", "json", "--units", "b", "--nosuffix")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["report"][0][verb[:-1]]


def read_at(path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def write_at(path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def pattern(seed: int, length: int) -> bytes:
    block = (seed.to_bytes(4, "little") * 1024)
    return bytes((b + i) & 0xFF for i, b in enumerate(block))[:length] * (length // min(length, 4096))


def check_placement(m: Mount, vg: dict, lv: str, images: dict[str, Path], offsets: list[int]) -> None:
    """Bytes written through vgfs at each LV offset are where LVM2's
    metadata puts them, and bytes put there with pwrite read back through
    vgfs (page cache of the LV file bypassed with O_DIRECT)."""
    for i, x in enumerate(offsets):
        data = os.urandom(4096)
        write_at(m.lv(lv), x, data)
        key, byte = pv_byte(vg, lv, x)
        assert read_at(images[key], byte, 4096) == data, (lv, x, key, byte)
    for i, x in enumerate(offsets):
        data = os.urandom(4096)
        key, byte = pv_byte(vg, lv, x)
        write_at(images[key], byte, data)
        fd = os.open(m.lv(lv), os.O_RDONLY | os.O_DIRECT)
        try:
            import mmap
            buf = mmap.mmap(-1, 4096)
            os.preadv(fd, [buf], x)
            assert bytes(buf) == data, (lv, x)
        finally:
            os.close(fd)


def lv_files(m: Mount) -> list[str]:
    return sorted(n for n in os.listdir(m.mp) if n != ".vgfs")


def key_images(vg: dict, dev_image: dict[str, Path]) -> dict[str, Path]:
    return {key: dev_image[pv["device"]] for key, pv in vg["physical_volumes"].items()}


# --------------------------------------------------------------------------
# vgfs's own VGs, by their PVs
# --------------------------------------------------------------------------

def test_vgfs_vg_mounts_from_its_pv_paths(env, tmp_path):
    v = env.make_vg(lvs=[LvSpec("a", "8MiB")])
    v.create()
    pv0, pv1 = v.pv_paths
    # Offline: the reports take the PV paths; one path is enough, the
    # metadata names the other PV where it was last seen.
    lvs = vgfs_json(env, "lvs", pv0)
    assert [l["lv_name"] for l in lvs] == ["a"]
    assert env.vgfs("check", pv0, pv1).returncode == 0
    m = mount(env, None, pv0, pv1)
    data = os.urandom(1 << 16)
    write_at(m.lv("a"), 0, data)
    assert read_at(m.lv("a"), 0, len(data)) == data
    assert m.vg_json()["name"] == v.name
    m.unmount()
    # A text file is a config (by content), whatever its name.
    r = env.vgfs("lvs", v.config)
    assert r.returncode == 0 and "a" in r.stdout


def test_vgfs_vg_in_a_gpt_partition(env, lvm):
    """A vgfs PV in partition 2 of a disk image: opened as a window of the
    image, its data at the partition's offset."""
    size = 96 * MiB
    img = lvm.image("disk.img", size)
    first, last = 8 * 2048, size // 512 - 34 - 1
    write_gpt(img, size, [(2048, first - 1), (first, last)])
    dev = lvm.attach(img, first * 512, (last - first + 1) * 512)
    cfg = lvm.dir / "vg.yaml"
    cfg.write_text(f"vg:\n  name: part\n  extent_size: 1MiB\npvs:\n  - {{name: pv0, path: {dev}}}\n"
                   "lvs:\n  - {name: a, size: 16MiB}\n")
    env.run([VGFS_BIN, "create", cfg], check=True)
    lvm.detach_all()
    m = mount(env, None, img)
    pe_start = m.pe_start("pv0")
    data = os.urandom(1 << 16)
    write_at(m.lv("a"), 4096, data)
    assert read_at(img, first * 512 + pe_start + 4096, len(data)) == data
    m.unmount()


def test_errors_name_what_and_where(env, lvm, tmp_path):
    empty = lvm.image("empty.img", 8 * MiB)
    mp = env.new_mountpoint()
    assert_one_line_error(env.vgfs("mount", empty, mp), f"{empty}: no PV")
    assert_one_line_error(env.vgfs("lvs", lvm.dir / "absent.img"), "absent.img: cannot open")
    assert_one_line_error(env.vgfs("mount", empty, mp, "--vg", "x"), "no PV")
    assert not is_mounted(mp)


# --------------------------------------------------------------------------
# LVM2 VGs
# --------------------------------------------------------------------------

def make_one_pv(lvm: Lvm, name="vgone", size=64 * MiB):
    img = lvm.image(f"{name}.img", size)
    dev = lvm.attach(img)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", name, dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "data", "-L", "8M", name)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "logs", "-L", "12M", name)
    return img, dev


def test_one_pv_linear(env, lvm):
    img, dev = make_one_pv(lvm)
    vg = parse_backup(lvm.backup("vgone"))["vgone"]
    m = mount(env, lvm, img)
    assert lv_files(m) == ["data", "logs"]
    assert os.path.getsize(m.lv("data")) == 8 * MiB and os.path.getsize(m.lv("logs")) == 12 * MiB
    images = key_images(vg, {dev: img})
    check_placement(m, vg, "logs", images, [0, 4096 * 3, 5 * MiB + 512 * 8, 12 * MiB - 4096])
    # The reports agree with LVM2's on the mount.
    ours = {l["lv_name"]: int(l["lv_size"]) for l in vgfs_json(env, "lvs", m.mp)}
    assert ours == {"data": 8 * MiB, "logs": 12 * MiB}
    # check and dump of the mounted VG read its PVs without their locks.
    c = env.vgfs("check", m.mp)
    assert c.returncode == 0 and "VG vgone (mounted on" in c.stdout, c.stderr
    d = env.vgfs("dump", m.mp)
    assert d.returncode == 0 and "name: vgone" in d.stdout, d.stderr
    # Offline commands on a mounted VG are refused by the PVs' locks.
    assert_one_line_error(env.vgfs("lvs", img), "mounted")
    m.unmount()
    c = env.vgfs("check", img)
    assert c.returncode == 0 and c.stdout.startswith("VG vgone: 1 PVs, 2 LVs"), c.stderr
    assert env.vgfs("dump", img).stdout == d.stdout
    lvm.run("vgck", "vgone")


def test_two_pvs_striped_and_several_segments(env, lvm):
    imgs = [lvm.image(f"pv{i}.img", 64 * MiB) for i in range(2)]
    devs = [lvm.attach(i) for i in imgs]
    lvm.run("pvcreate", "-q", *devs)
    lvm.run("vgcreate", "-q", "vgtwo", *devs)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lin", "-L", "8M", "vgtwo", devs[0])
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-i2", "-I64k", "-n", "st", "-L", "16M", "vgtwo")
    lvm.run("lvextend", "-q", "-L", "+8M", "vgtwo/lin", devs[1])
    vg = parse_backup(lvm.backup("vgtwo"))["vgtwo"]
    assert vg["logical_volumes"]["lin"]["segment_count"] == 2
    images = key_images(vg, dict(zip(devs, imgs)))
    m = mount(env, lvm, *imgs)
    check_placement(m, vg, "st", images, [0, 64 << 10, 3 * (64 << 10) + 4096, 8 * MiB + 12288, 16 * MiB - 4096])
    check_placement(m, vg, "lin", images, [0, 8 * MiB - 4096, 8 * MiB, 16 * MiB - 4096])
    m.unmount()
    # Through the loop devices too (block devices: claimed O_EXCL while mounted).
    m = mount(env, lvm, *devs)
    with pytest.raises(OSError) as e:
        os.close(os.open(devs[0], os.O_RDONLY | os.O_EXCL))
    assert e.value.errno == errno.EBUSY
    m.unmount()
    os.close(os.open(devs[0], os.O_RDONLY | os.O_EXCL))
    # One PV alone: the VG is refused, naming the missing PV's uuid.
    pv1_uuid = lvm.report("pvs", "pv", "-o", "pv_uuid", devs[1])[0]["pv_uuid"]
    mp = env.new_mountpoint()
    assert_one_line_error(env.vgfs("mount", imgs[0], mp, "-o", f"lvm_lock_dir={lvm.etc / 'lock'}"),
                          f"uuid {pv1_uuid}", "is missing")
    assert not is_mounted(mp)
    assert_one_line_error(env.vgfs("lvs", imgs[0]), pv1_uuid, "missing")


def test_choosing_among_two_vgs_with_vg(env, lvm):
    a, _ = make_one_pv(lvm, "vga")
    b, _ = make_one_pv(lvm, "vgb")
    mp = env.new_mountpoint()
    assert_one_line_error(env.vgfs("mount", a, b, mp), "hold 2 VGs", "vga (lvm2", "vgb (lvm2", "--vg NAME")
    assert_one_line_error(env.vgfs("mount", a, b, mp, "--vg", "vgc"), "no VG vgc")
    m = mount(env, lvm, a, b, vg="vgb")
    assert m.vg_json()["name"] == "vgb"
    assert [l["lv_name"] for l in vgfs_json(env, "lvs", a, b, "--vg", "vga")] == ["data", "logs"]
    m.unmount()


def test_lock_file_held_while_mounted(env, lvm):
    img, dev = make_one_pv(lvm)
    lock = lvm.etc / "lock" / "V_vgone"
    m = mount(env, lvm, img)
    assert holds_lock(lock, exclusive=False)
    # LVM2 waits for the lock; told not to wait, it fails.
    r = subprocess.run(["lvcreate", "-q", "-an", "-Zn", "--config", "global/wait_for_locks=0", "-n", "x", "-L", "4M",
                        "vgone"], env=lvm.env, capture_output=True, text=True)
    assert r.returncode != 0
    # A second mount of the VG is refused by the lock, in one line.
    mp = env.new_mountpoint()
    assert_one_line_error(env.vgfs("mount", img, mp, "-o", f"lvm_lock_dir={lvm.etc / 'lock'}"), "V_vgone")
    m.unmount()
    assert not holds_lock(lock)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "x", "-L", "4M", "vgone")
    # Read-only mounts share the lock: LVM2's readers still run.
    m = mount(env, lvm, img, opts="ro")
    assert holds_lock(lock) and not holds_lock(lock, exclusive=False)
    lvm.run("vgs", "vgone")
    m.unmount()


def test_gpt_disk_image_ext4_on_an_lv(env, lvm):
    size = 128 * MiB
    img = lvm.image("disk.img", size)
    p3_first, p3_last = 16 * 2048, (size // 512) - 34 - 1
    write_gpt(img, size, [(2048, 4095), (4096, 16 * 2048 - 1), (p3_first, p3_last)])
    dev = lvm.attach(img, p3_first * 512, (p3_last - p3_first + 1) * 512)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vggpt", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "root", "-L", "40M", "vggpt")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-i1", "-n", "home", "-L", "16M", "vggpt")
    vg = parse_backup(lvm.backup("vggpt"))["vggpt"]
    lvm.detach_all()
    m = mount(env, lvm, img)
    assert lv_files(m) == ["home", "root"]
    # Partition 3 of the image: PV byte b is image byte p3 + b.
    key, byte = pv_byte(vg, "home", 4096)
    data = os.urandom(4096)
    write_at(m.lv("home"), 4096, data)
    assert read_at(img, p3_first * 512 + byte, 4096) == data
    loop = env.losetup(m.lv("root"))
    env.run(["mkfs.ext4", "-q", "-F", loop], check=True)
    env.run(["e2fsck", "-fn", loop], check=True)
    fs = env.tmp / "ext4"
    env.mount_ext4(loop, fs)
    (fs / "hello.txt").write_text("hello from an LVM2 LV\n")
    env.umount_ext4(fs)
    env.mount_ext4(loop, fs, read_only=True)
    assert (fs / "hello.txt").read_text() == "hello from an LVM2 LV\n"
    env.umount_ext4(fs)
    env.run(["e2fsck", "-fn", loop], check=True)
    env.loop_detach(loop)
    m.unmount()


def test_thin_pool_vg_serves_its_linear_lv_and_refuses_changes(env, lvm):
    img = lvm.image("thin.img", 64 * MiB)
    dev = lvm.attach(img)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vgthin", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "plain", "-L", "4M", "vgthin")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "pdata", "-L", "8M", "vgthin")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "pmeta", "-L", "4M", "vgthin")
    add_thin_pool(lvm, "vgthin", "pdata", "pmeta")
    types = {lv["lv_name"]: lv["segtype"] for lv in lvm.report("lvs", "lv", "-a", "-o", "lv_name,segtype", "vgthin")}
    assert types["thin"] == "thin" and types["pool"] == "thin-pool"
    before = read_at(img, 0, 1 << 20)
    m = mount(env, lvm, img)
    assert lv_files(m) == ["plain"]
    data = os.urandom(1 << 16)
    write_at(m.lv("plain"), 0, data)
    assert read_at(m.lv("plain"), 0, len(data)) == data
    # lvs lists the LVs vgfs does not serve, with the reason; hidden ones with -a.
    rows = {l["lv_name"]: l for l in vgfs_json(env, "lvs", m.mp)}
    assert set(rows) == {"plain", "pool", "thin"}
    assert rows["plain"]["lv_served"] == "yes"
    assert rows["thin"]["lv_served"].startswith("no: ") and "thin" in rows["thin"]["lv_served"]
    assert rows["thin"]["lv_attr"] == "-wi-------"
    rows_all = {l["lv_name"] for l in vgfs_json(env, "lvs", m.mp, "-a")}
    assert {"[pool_tdata]", "[pool_tmeta]"} <= rows_all
    text = env.vgfs("lvs", m.mp).stdout
    assert "not" not in text.split("\n")[0] and "Served" in text
    # Metadata changes are refused with the reason, nothing written.
    for words in (["lvcreate", m.mp, "new", "4M"], ["lvextend", m.mp, "plain", "+4M"],
                  ["lvrename", m.mp, "plain", "other"], ["lvremove", m.mp, "plain", "-y"]):
        r = env.vgfs(*words)
        line = assert_one_line_error(r, words[0], "refuses metadata changes")
        assert "thin" in line
    m.unmount()
    assert read_at(img, 0, 1 << 20) == before  # label and metadata untouched
    lvm.run("vgck", "vgthin")


def lvm2_segments(lvm: Lvm, vg: str) -> list[tuple]:
    """LVM2's view: (name, size, PE ranges with PV uuids, segtype) per segment."""
    uuid_of = {p["pv_name"]: p["pv_uuid"] for p in lvm.report("pvs", "pv", "-o", "pv_name,pv_uuid")}
    out = []
    for s in lvm.report("lvs", "seg", "-a", "--segments", "-o", "lv_name,lv_size,seg_pe_ranges,segtype", vg):
        ranges = " ".join(uuid_of[r.split(":")[0]] + ":" + r.split(":")[1] for r in s["seg_pe_ranges"].split())
        out.append((s["lv_name"], int(s["lv_size"]), ranges, s["segtype"]))
    return sorted(out)


def vgfs_segments(env, *source) -> list[tuple]:
    """vgfs's view of the same, offline from the PVs."""
    uuid_of = {p["pv_name"]: p["pv_uuid"] for p in vgfs_json(env, "pvs", *source, "-o", "pv_name,pv_uuid")}
    out = []
    for s in vgfs_json(env, "lvs", *source, "-a", "-o", "lv_name,lv_size,seg_pe_ranges,segtype"):
        ranges = " ".join(uuid_of[r.split(":")[0]] + ":" + r.split(":")[1] for r in s["seg_pe_ranges"].split())
        out.append((s["lv_name"], int(s["lv_size"]), ranges, s["segtype"]))
    return sorted(out)


def test_changes_through_vgfs_pass_lvm2_checks_and_round_trip(env, lvm):
    imgs = [lvm.image(f"w{i}.img", 64 * MiB) for i in range(3)]
    devs = [lvm.attach(i) for i in imgs]
    lvm.run("pvcreate", "-q", devs[0], devs[1])
    lvm.run("vgcreate", "-q", "vgw", devs[0], devs[1])
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lin", "-L", "8M", "vgw")
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-i2", "-I64k", "-n", "st", "-L", "8M", "vgw")
    m = mount(env, lvm, devs[0], devs[1])
    for words in (["lvcreate", m.mp, "new", "12M"], ["lvextend", m.mp, "lin", "+4M", ], ["lvrename", m.mp, "new", "renamed"],
                  ["lvreduce", m.mp, "renamed", "8M", "-y"], ["pvadd", m.mp, devs[2]]):
        r = env.vgfs(*words)
        assert r.returncode == 0, (words, r.stderr)
    data = os.urandom(1 << 16)
    write_at(m.lv("renamed"), 0, data)
    pvs = {p["pv_name"]: p["pv_path"] for p in vgfs_json(env, "pvs", m.mp, "-o", "pv_name,pv_path")}
    added = next(name for name, path in pvs.items() if path == devs[2])
    r = env.vgfs("lvcreate", m.mp, "onnew", "4M", added)
    assert r.returncode == 0, r.stderr
    r = env.vgfs("lvremove", m.mp, "onnew", "-y")
    assert r.returncode == 0, r.stderr
    r = env.vgfs("pvremove", m.mp, added)
    assert r.returncode == 0, r.stderr
    m.unmount()
    lvm.run("vgck", "vgw")
    for d in devs[:2]:
        lvm.run("pvck", d)
    assert vgfs_segments(env, devs[0], devs[1]) == lvm2_segments(lvm, "vgw")
    vg = parse_backup(lvm.backup("vgw"))["vgw"]
    key, byte = pv_byte(vg, "renamed", 0)
    images = key_images(vg, dict(zip(devs, imgs)))
    assert read_at(images[key], byte, len(data)) == data
    # The PV vgfs took out is an orphan again for LVM2.
    assert lvm.report("pvs", "pv", "-o", "pv_name,vg_name", devs[2]) in ([], [{"pv_name": devs[2], "vg_name": ""}])
    # Then LVM2 changes the VG and vgfs reads it back.
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "fromlvm", "-L", "4M", "vgw")
    lvm.run("lvextend", "-q", "-L", "+4M", "vgw/lin")
    assert vgfs_segments(env, devs[0], devs[1]) == lvm2_segments(lvm, "vgw")
    m = mount(env, lvm, devs[0], devs[1])
    assert os.path.getsize(m.lv("fromlvm")) == 4 * MiB and os.path.getsize(m.lv("lin")) == 16 * MiB
    assert read_at(m.lv("renamed"), 0, len(data)) == data
    m.unmount()


def test_readme_lvm2_section_runs_as_written(env, lvm):
    """README.md's "LVM2 volume groups" block, run with bash -e on a disk
    image LVM2 made (GPT, PV in partition 2, an ext4 on LV root), its
    /mnt paths moved into the test's folder."""
    import re
    from vgfstest import REPO
    text = (REPO / "README.md").read_text()
    start = text.index("\n## LVM2 volume groups\n")
    section = text[start:text.index("\n## ", start + 1)]
    script = re.findall(r"```sh\n(.*?)```", section, flags=re.S)[0]  # the pvmove block: test_lvm2_move.py
    size = 96 * MiB
    work = env.tmp / "readme"
    work.mkdir()
    img = work / "disk.img"
    with open(img, "wb") as f:
        f.truncate(size)
    first, last = 4096, size // 512 - 34 - 1
    write_gpt(img, size, [(2048, first - 1), (first, last)])
    dev = lvm.attach(img, first * 512, (last - first + 1) * 512)
    lvm.run("pvcreate", "-q", dev)
    lvm.run("vgcreate", "-q", "vgdisk", dev)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "root", "-L", "32M", "vgdisk")
    lvm.detach_all()
    m = mount(env, lvm, img)
    loop = env.losetup(m.lv("root"))
    env.run(["mkfs.ext4", "-q", "-F", loop], check=True)
    env.loop_detach(loop)
    m.unmount()
    # The README's paths, moved under the test's folder; LVM2's lock folder
    # the private one.
    script = script.replace("/mnt/", f"{work}/mnt/")
    mount_line = f"vgfs mount disk.img {work}/mnt/disk"
    assert mount_line in script
    script = script.replace(mount_line, f"{mount_line} -o lvm_lock_dir={lvm.etc / 'lock'}")
    path = f"{VGFS_BIN.parent}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    try:
        r = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=dict(os.environ, PATH=path),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "lost+found" in r.stdout and "root" in r.stdout
    finally:
        if is_mounted(work / "mnt" / "root"):
            subprocess.run(["umount", str(work / "mnt" / "root")], capture_output=True)
        for d in subprocess.run(["losetup", "-j", str(work / "mnt" / "disk" / "root")], capture_output=True,
                                text=True).stdout.splitlines():
            subprocess.run(["losetup", "-d", d.split(":")[0]], capture_output=True)
        if is_mounted(work / "mnt" / "disk"):
            subprocess.run(["fusermount3", "-u", str(work / "mnt" / "disk")], capture_output=True)
