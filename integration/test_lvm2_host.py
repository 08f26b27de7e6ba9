"""What vgfs refuses and writes on an LVM2 VG beyond its metadata commands
(docs/lvm2.md, "Mounting"): owner, group and mode of LV files (LVM2's text
has no place for them), LV names LVM2 or vgfs keep for themselves, a VG
that device-mapper serves on the host (a fake sysfs), and the LVM2 text of
`vgfs dump --lvm2` and of the archive (`-o archive=DIR`), which LVM2's
`vgcfgrestore --test -f` must read.

LVM2's tools run in the private world of the `lvm` fixture (activation = 0,
a device filter for this test's loops only); loops are detached by name."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from test_lvm2_mount import make_one_pv, mount
from vgfstest import assert_one_line_error
from vgfstest.lvm2 import lvm_try, parse_backup

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def seqno(lvm, vg: str) -> int:
    return int(lvm.report("vgs", "vg", "-o", "vg_seqno", vg)[0]["vg_seqno"])


def test_owner_mode_and_reserved_names_refused_nothing_written(env, lvm):
    img, dev = make_one_pv(lvm, "vgown")
    before = seqno(lvm, "vgown")
    m = mount(env, lvm, img)
    lv = m.lv("data")
    st = os.stat(lv)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.getuid()
    # chmod, chown, chgrp: one errno each, the file unchanged
    for change in (lambda: os.chmod(lv, 0o640), lambda: os.chown(lv, 1234, -1), lambda: os.chown(lv, -1, 1234)):
        with pytest.raises(OSError) as e:
            change()
        assert e.value.errno == errno.EOPNOTSUPP
    after = os.stat(lv)
    assert (after.st_mode, after.st_uid, after.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    os.chmod(lv, 0o600)   # no change: nothing to refuse (cp -p, install)
    assert_one_line_error(env.vgfs("lvchange", m.mp, "data", "--mode", "0640"),
                          "lvm2 VG", "no place for an LV's owner", "nothing was changed")
    assert_one_line_error(env.vgfs("lvchange", m.mp, "data", "--uid", "1234"), "lvm2 VG")
    assert_one_line_error(env.vgfs("lvcreate", m.mp, "owned", "4M", "--mode", "0640"),
                          "lvcreate", "no place for an LV's owner")
    # names LVM2 keeps for its own LVs, and vgfs's prefix for its move LVs
    for name in ("pvmove0", "snapshot1", "lv_mlog", "x_rimage_0", "pool_tdata", "vgfs_move1"):
        assert_one_line_error(env.vgfs("lvcreate", m.mp, name, "4M"), name)
        assert_one_line_error(env.vgfs("lvrename", m.mp, "data", name), name)
    m.unmount()
    assert seqno(lvm, "vgown") == before   # nothing was committed
    assert sorted(l["lv_name"] for l in lvm.report("lvs", "lv", "-o", "lv_name", "vgown")) == ["data", "logs"]
    lvm.run("vgck", "vgown")


def fake_dm(root, dev: str, uuid: str, name: str) -> None:
    d = root / "block" / dev / "dm"
    d.mkdir(parents=True)
    (d / "uuid").write_text(uuid + "\n")
    (d / "name").write_text(name + "\n")


def test_vg_active_in_device_mapper_is_refused(env, lvm):
    img, dev = make_one_pv(lvm, "vgdm")
    vg = parse_backup(lvm.backup("vgdm"))["vgdm"]
    vg_id = vg["id"].replace("-", "")
    lv_id = vg["logical_volumes"]["data"]["id"].replace("-", "")
    sysfs = env.tmp / "sysfs"
    fake_dm(sysfs, "dm-0", "LVM-" + "x" * 32 + "y" * 32, "other-lv")   # another VG's LV: no refusal
    os.environ["VGFS_SYSFS_ROOT"] = str(sysfs)
    try:
        m = mount(env, lvm, img)
        m.unmount()
        fake_dm(sysfs, "dm-3", "LVM-" + vg_id + lv_id, "vgdm-data")
        for opts in ("", "ro"):
            m = mount(env, lvm, img, opts=opts, ok=False)
            assert_one_line_error(m.result, "VG vgdm is active in this host's device-mapper", "dm-3", "vgdm-data",
                                  "vgchange -an vgdm")
        # the reports still read it, as LVM2's do
        assert env.vgfs("lvs", img).returncode == 0
    finally:
        del os.environ["VGFS_SYSFS_ROOT"]


def test_dump_lvm2_and_archive_are_read_by_vgcfgrestore(env, lvm):
    img, dev = make_one_pv(lvm, "vgarc")
    lvm.detach_all()   # vgfs serves the image; LVM2 sees it again below
    arch = env.tmp / "archive"
    m = mount(env, lvm, img, opts=f"archive={arch}")
    for words in (["lvcreate", m.mp, "new", "4M"], ["lvextend", m.mp, "data", "+4M"]):
        r = env.vgfs(*words)
        assert r.returncode == 0, (words, r.stderr)
    mounted = env.vgfs("dump", "--lvm2", m.mp)
    assert mounted.returncode == 0, mounted.stderr
    m.unmount()
    files = sorted(os.listdir(arch))
    assert [f.rsplit("_", 1)[0] for f in files] == ["vgarc", "vgarc"] and all(f.endswith(".vg") for f in files), files
    offline = env.vgfs("dump", "--lvm2", img)
    assert offline.returncode == 0, offline.stderr
    strip = lambda t: [l for l in t.splitlines() if "creation_time" not in l and not l.startswith("# Generated")]
    assert strip(offline.stdout) == strip(mounted.stdout)
    text = offline.stdout
    assert text.startswith("# Generated by vgfs") and "\nvgarc {\n\tid = " in text
    dump = env.tmp / "vgarc.dump.vg"
    dump.write_text(text)
    parsed = parse_backup(text)["vgarc"]
    assert sorted(parsed["logical_volumes"]) == ["data", "logs", "new"]
    dev = lvm.attach(img)
    for f in [dump] + [arch / f for f in files]:
        r = lvm_try(lvm, "vgcfgrestore", "--test", "-f", str(f), "vgarc")
        assert r.returncode == 0 and "Restored volume group vgarc" in r.stdout, (f, r.stdout, r.stderr)
    # the archive holds the states before each commit: seqno 3 and 4 of LVM2's 3 commits
    assert [parse_backup((arch / f).read_text())["vgarc"]["seqno"] for f in files] == [3, 4]
    assert_one_line_error(env.vgfs("dump", "--lvm2", dev, "--vg", "nope"), "no VG nope")
    lvm.run("vgck", "vgarc")


def test_dump_lvm2_of_a_vgfs_vg_is_refused(env):
    vg = env.make_vg()
    vg.create()
    assert_one_line_error(env.vgfs("dump", "--lvm2", vg.config), "is a vgfs VG", "drop --lvm2")
