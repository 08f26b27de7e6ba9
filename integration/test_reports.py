"""LVM2's conventions on the command line (docs/cli.md): -L/-l sizes with
percentages, and the lvs/pvs/vgs reports (-o, --units, --nosuffix,
--noheadings, --separator, --reportformat json). Where LVM2 is installed
and the tests run as root, the reports are compared with LVM2's own, run on
a loop device of their own (private LVM_SYSTEM_DIR, activation off, a
filter that admits that device only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import LvSpec, MiB, PvSpec, assert_one_line_error

GiB = 1024 * MiB


def lv_sizes(m) -> dict:
    return {l["name"]: l["size"] for l in m.vg_json()["lvs"]}


@pytest.fixture
def vg4(env):
    """VG vg0: 4 MiB extents, pv0 of 64 MiB and pv1 of 40 MiB (15 + 9
    extents after the metadata), no LV."""
    vg = env.make_vg(name="vg0", pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "40MiB")],
                     extent_size="4MiB")
    vg.create()
    return vg


def free_extents(m) -> int:
    v = m.vg_json()
    return v["free"] // v["extent_size"]


# --------------------------------------------------------------------------
# -L SIZE and -l EXTENTS
# --------------------------------------------------------------------------

def test_extents_and_percentages(env, vg4):
    m = vg4.mount()
    ext = 4 * MiB
    total = m.vg_json()["size"] // ext
    free = free_extents(m)
    assert free == total

    r = env.vgfs("lvcreate", m.mp, "-n", "a", "-l", "3")
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["a"] == 3 * ext
    r = env.vgfs("lvcreate", m.mp, "b", "-l", "50%VG")
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["b"] == (total * 50 // 100) * ext       # rounded down, as LVM2
    free = free_extents(m)
    r = env.vgfs("lvcreate", m.mp, "c", "-l", "50%FREE")
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["c"] == (free // 2) * ext
    r = env.vgfs("lvextend", m.mp, "a", "-l", "+2")
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["a"] == 5 * ext
    r = env.vgfs("lvreduce", m.mp, "a", "-l", "-1", "-y")
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["a"] == 4 * ext
    r = env.vgfs("lvextend", m.mp, "a", "-L", "+1M")             # the control file rounds, and says so
    assert r.returncode == 0, r.stderr
    assert "rounded up from" in r.stdout, r.stdout
    assert lv_sizes(m)["a"] == 5 * ext
    free = free_extents(m)
    r = env.vgfs("lvextend", m.mp, "a", "-l", "100%FREE")        # adds all that is free, as LVM2
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["a"] == (5 + free) * ext
    assert free_extents(m) == 0

    before = m.vg_json()
    for args, needle in [
        (["lvcreate", m.mp, "d", "-l", "100%FREE"], "gives 0 extents"),
        (["lvcreate", m.mp, "d", "-l", "10%ORIGIN"], "snapshots"),
        (["lvcreate", m.mp, "d", "-l", "101%VG"], "at most 100"),
        (["lvcreate", m.mp, "d", "-L", "1M", "-l", "1"], "not both"),
        (["lvcreate", m.mp, "d"], "no size given"),
        (["lvextend", m.mp, "a", "-l", "-1"], "is for lvreduce"),
        (["lvextend", m.mp, "a", "+1", "extra"], "unexpected argument"),
        (["lvreduce", m.mp, "a", "-l", "-9999", "-y"], "cannot shrink by -9999"),
        (["lvextend", m.mp, "nosuch", "-l", "+1"], "no LV nosuch"),
        (["lvcreate", m.mp, "d", "-l", "10%PVS", "pv7"], "no PV pv7"),
    ]:
        assert_one_line_error(env.vgfs(*args), needle)
    assert m.vg_json() == before


def test_a_percentage_is_capped_at_what_is_free_with_lvm2s_note(env, vg4):
    m = vg4.mount()
    r = env.vgfs("lvcreate", m.mp, "a", "-l", "10")
    assert r.returncode == 0, r.stderr
    free = free_extents(m)
    r = env.vgfs("lvcreate", m.mp, "b", "-l", "100%VG")
    assert r.returncode == 0, r.stderr
    assert "Reducing 100%VG to remaining free space" in r.stderr, r.stderr
    assert lv_sizes(m)["b"] == free * 4 * MiB


def test_pvs_percentage_counts_the_named_pvs(env, vg4):
    m = vg4.mount()
    pv1_free = next(p["free_pe"] for p in m.vg_json()["pvs"] if p["name"] == "pv1")
    r = env.vgfs("lvcreate", m.mp, "a", "-l", "100%PVS", "pv1")
    assert r.returncode == 0, r.stderr
    assert lv_sizes(m)["a"] == pv1_free * 4 * MiB
    assert [l["pvs"] for l in m.vg_json()["lvs"]] == [["pv1"]]


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------

@pytest.fixture
def reported(env, vg4):
    m = vg4.mount()
    for name, size in (("lv1", "48M"), ("lv0", "8M")):
        r = env.vgfs("lvcreate", m.mp, name, size)
        assert r.returncode == 0, r.stderr
    return m


def test_vgs_lvs_pvs_default_reports(env, reported):
    m = reported
    r = env.vgfs("vgs", m.mp)
    assert r.returncode == 0, r.stderr
    head, row = r.stdout.splitlines()
    assert head.split() == ["VG", "#PV", "#LV", "VSize", "VFree"]
    assert row.split()[:3] == ["vg0", "2", "2"]
    r = env.vgfs("lvs", m.mp)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["LV", "VG", "LSize", "#Seg", "Move", "Cpy%Sync"]
    assert [l.split()[:3] for l in lines[1:]] == [["lv0", "vg0", "8.00m"], ["lv1", "vg0", "48.00m"]]
    r = env.vgfs("pvs", m.mp)
    assert r.stdout.splitlines()[0].split() == ["PV", "VG", "Fmt", "PSize", "PFree", "Path"]


def test_report_options(env, reported):
    m = reported
    r = env.vgfs("lvs", m.mp, "-o", "lv_name,lv_size,seg_pe_ranges", "--units", "g")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["LV  LSize PE_Ranges", "lv0 0.01g pv0:12-13", "lv1 0.05g pv0:0-11"] or \
        [l.split()[:2] for l in r.stdout.splitlines()] == [["LV", "LSize"], ["lv0", "0.01g"], ["lv1", "0.05g"]], r.stdout
    r = env.vgfs("lvs", m.mp, "-o", "lv_name", "-o", "+lv_size", "--units", "b", "--nosuffix", "--noheadings",
                 "--separator", ":")
    assert r.stdout.splitlines() == ["lv0:8388608", "lv1:50331648"], r.stdout
    r = env.vgfs("vgs", m.mp, "--reportformat", "json")
    report = json.loads(r.stdout)
    row = report["report"][0]["vg"][0]
    assert list(row) == ["vg_name", "pv_count", "lv_count", "vg_size", "vg_free"]
    assert all(isinstance(v, str) for v in row.values())
    assert row["pv_count"] == "2" and row["lv_count"] == "2"
    r = env.vgfs("lvs", m.mp, "-o", "help")
    assert r.returncode == 0 and "seg_pe_ranges" in r.stdout
    for args, needle in [(["lvs", m.mp, "-o", "lv_sise"], 'unknown field "lv_sise"'),
                         (["vgs", m.mp, "-o", "lv_name"], 'unknown field "lv_name"'),
                         (["lvs", m.mp, "--units", "x"], 'bad --units "x"'),
                         (["lvs", m.mp, "--reportformat", "yaml"], "reportformat")]:
        assert_one_line_error(env.vgfs(*args), needle)


def test_report_offline_is_the_report_of_the_mount(env, vg4, reported):
    m = reported
    args = ["-o", "lv_name,lv_size,devices,vg_free", "--units", "k"]
    mounted = env.vgfs("lvs", m.mp, *args).stdout
    m.unmount()
    offline = env.vgfs("lvs", vg4.config, *args)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == mounted


# --------------------------------------------------------------------------
# The same report from LVM2
# --------------------------------------------------------------------------

LVM_CONF = """global {{ activation = 0 locking_dir = "{d}/locking" }}
devices {{ filter = [ "a|^{dev}$|", "r|.*|" ] global_filter = [ "a|^{dev}$|", "r|.*|" ] hints = "none"
           use_devicesfile = 0 obtain_device_list_from_udev = 0 }}
activation {{ udev_sync = 0 udev_rules = 0 }}
backup {{ backup_dir = "{d}/backup" archive_dir = "{d}/archive" }}
"""


@pytest.fixture
def lvm2_vg(tmp_path):
    """An LVM2 VG `lvmvg` (4 MiB extents) on a loop device of a sparse 2 GiB
    file, with LVs of 8 MiB, 48 MiB and 1532 MiB (1.496 GiB)."""
    if os.geteuid() != 0 or not shutil.which("lvm") or not shutil.which("losetup"):
        pytest.skip("needs root, LVM2 and losetup")
    d = tmp_path / "lvm2"
    for sub in ("etc", "locking", "backup", "archive"):
        (d / sub).mkdir(parents=True)
    img = d / "disk.img"
    with open(img, "wb") as f:
        f.truncate(2 * GiB)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True,
                         check=True).stdout.strip()
    (d / "etc" / "lvm.conf").write_text(LVM_CONF.format(d=d, dev=dev))
    envv = dict(os.environ, LVM_SYSTEM_DIR=str(d / "etc"), LVM_SUPPRESS_FD_WARNINGS="1")

    def lvm(*args):
        r = subprocess.run(["lvm", *args], capture_output=True, text=True, env=envv, timeout=60)
        assert r.returncode == 0, f"lvm {args}: {r.stderr}"
        return r.stdout

    try:
        lvm("pvcreate", dev)
        lvm("vgcreate", "-s", "4M", "lvmvg", dev)
        for name, size in (("lv1", "48M"), ("lv0", "8M"), ("lv2", "1532M")):
            lvm("lvcreate", "-an", "-Zn", "-y", "-L", size, "-n", name, "lvmvg")
        yield lvm
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_reports_match_lvm2s(env, lvm2_vg):
    lvm = lvm2_vg
    vg = env.make_vg(name="lvmvg", pvs=[PvSpec("pv0", "pv0.img", "2GiB")], extent_size="4MiB", subdir="big")
    vg.create()
    m = vg.mount()
    for name, size in (("lv1", "48M"), ("lv0", "8M"), ("lv2", "1532M")):
        r = env.vgfs("lvcreate", m.mp, name, size)
        assert r.returncode == 0, r.stderr

    # Sizes in every unit, LVM2's default 'r' (with '<') included; the
    # separator form, without headings.
    for units in ([], ["--units", "h"], ["--units", "r"], ["--units", "g"], ["--units", "m"], ["--units", "k"],
                  ["--units", "b"], ["--units", "s"], ["--units", "G"], ["--units", "M"], ["--units", "t"]):
        for suffix in ([], ["--nosuffix"]):
            args = ["-o", "lv_name,vg_name,lv_size,seg_count,vg_extent_size", "--noheadings", "--separator", ","]
            args += units + suffix
            theirs = [l.strip() for l in lvm("lvs", *args).splitlines()]
            r = env.vgfs("lvs", m.mp, *args)
            assert r.returncode == 0, r.stderr
            assert r.stdout.splitlines() == theirs, (args, r.stdout, theirs)

    # The JSON report: the same shape and the same values.
    args = ["-o", "lv_name,vg_name,lv_size,seg_count", "--reportformat", "json"]
    theirs, ours = json.loads(lvm("lvs", *args)), json.loads(env.vgfs("lvs", m.mp, *args).stdout)
    assert ours == theirs
    args = ["-o", "vg_name,lv_count,vg_extent_size,vg_extent_count", "--reportformat", "json", "--units", "m"]
    theirs, ours = json.loads(lvm("vgs", *args)), json.loads(env.vgfs("vgs", m.mp, *args).stdout)
    assert list(ours) == list(theirs) == ["report"]
    assert list(ours["report"][0]) == list(theirs["report"][0]) == ["vg"]
    assert list(ours["report"][0]["vg"][0]) == list(theirs["report"][0]["vg"][0])
    assert ours["report"][0]["vg"][0]["vg_extent_size"] == theirs["report"][0]["vg"][0]["vg_extent_size"]
    assert ours["report"][0]["vg"][0]["lv_count"] == theirs["report"][0]["vg"][0]["lv_count"]
    # The text layout: the same cells in every row, in the same columns order
    # (LVM2 indents by two blanks and pads the last column; vgfs does not).
    args = ["-o", "lv_name,lv_size,seg_count"]
    theirs = [l.split() for l in lvm("lvs", *args).splitlines()]
    ours = [l.split() for l in env.vgfs("lvs", m.mp, *args).stdout.splitlines()]
    assert ours == theirs
