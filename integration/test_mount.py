"""Mounting (daemonized, foreground, mount -t fuse.vgfs, read-only, locking)
and the `.vgfs/` views, `vgfs lvs|pvs|dump|check`."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from vgfstest import (FIG3_LVX_RUNS, MiB, LvSpec, Mount, PvSpec, assert_one_line_error, daemon_pids,
                      fig3_vg,
                      format_range, is_mounted, json_lvs, json_pvs, lv_runs_from_json,
                      parse_int_bytes, parse_range, pid_alive, parse_size, read_kv, split_list, VGFS_BIN)

try:
    import yaml  # python3-yaml
except ImportError:  # pragma: no cover
    yaml = None


def size_matches(text: str, want: int) -> bool:
    """A size in a text view: '1048576', '1048576 (1MiB)', '1MiB' or a human
    one-decimal form like '1.5GiB' (within rounding)."""
    t = text.strip().split()[0] if text.strip() else ""
    if t.isdigit():
        return int(t) == want
    try:
        return parse_size(t) == want
    except ValueError:
        pass
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]iB|B)", text.strip().split(" (")[0])
    if not m:
        return False
    mult = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m.group(2)]
    return abs(float(m.group(1)) * mult - want) <= 0.05 * mult


def expected_pv_map(vgj: dict, pv: str, pe_count: int) -> list[str]:
    """PE→LE lines (docs/records.md) of PV `pv` derived from every LV map in vg.json."""
    used = []
    for lv in vgj["lvs"]:
        for le, n, p, pe in lv_runs_from_json(lv):
            if p == pv:
                used.append((pe, n, lv["name"], le))
    used.sort()
    lines = []
    cur = 0
    merged = []
    for pe, n, name, le in used:
        if merged and merged[-1][2] == name and merged[-1][0] + merged[-1][1] == pe \
                and merged[-1][3] + merged[-1][1] == le:
            merged[-1] = (merged[-1][0], merged[-1][1] + n, name, merged[-1][3])
        else:
            merged.append((pe, n, name, le))
    for pe, n, name, le in merged:
        if pe > cur:
            lines.append(f"{format_range(cur, pe - cur)} free")
        lines.append(f"{format_range(pe, n)} {name} {format_range(le, n)}")
        cur = pe + n
    if cur < pe_count:
        lines.append(f"{format_range(cur, pe_count - cur)} free")
    return lines


def map_lines(path) -> list[str]:
    with open(path) as f:
        return [" ".join(l.split()) for l in f.read().splitlines() if l.strip()]


@pytest.fixture
def fig3(env):
    vg = fig3_vg(env)
    vg.create()
    return vg


# --------------------------------------------------------------------------
# Mount forms
# --------------------------------------------------------------------------

def test_daemonized_mount_is_ready_on_return(env, fig3):
    m = fig3.mount()
    assert is_mounted(m.mp)
    assert (m.mp / ".vgfs" / "vg").exists()
    assert os.stat(m.lv("lvx")).st_size == 45 * MiB
    assert m.pids, "no vgfs daemon process found serving the mount"
    m.unmount()
    assert not is_mounted(m.mp)


def test_daemon_detaches_from_stdout_and_stderr(env, fig3):
    """`out=$(vgfs mount ...)` must not hang: the daemon closes the caller's
    stdout/stderr pipes."""
    mp = env.new_mountpoint()
    p = subprocess.Popen([str(VGFS_BIN), "mount", str(fig3.config), str(mp)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    m = Mount(env, fig3.config, mp)
    env.mounts.append(m)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("vgfs mount kept stdout/stderr open after daemonizing")
    finally:
        m.pids = daemon_pids(mp)
    assert p.returncode == 0, err
    assert is_mounted(mp)


def test_relative_paths_are_resolved_before_daemonizing(env, fig3):
    m = env.mount("vg.yaml", "mnt_rel", cwd=fig3.dir)
    assert m.mp == fig3.dir / "mnt_rel"
    with open(m.lv("lvx"), "r+b") as f:
        f.write(b"relative")
    m.unmount()
    m2 = env.mount(fig3.config)
    with open(m2.lv("lvx"), "rb") as f:
        assert f.read(8) == b"relative"


def test_foreground_mount(env, fig3):
    m = fig3.mount(foreground=True)
    assert m.proc.poll() is None, "vgfs -f must stay in the foreground"
    with open(m.lv("lvy"), "r+b") as f:
        f.write(b"fg")
    env.run(["fusermount3", "-u", m.mp], check=True)
    rc = m.proc.wait(timeout=30)
    assert rc == 0, f"foreground vgfs exited {rc} after unmount: {m.stderr()}"
    assert not is_mounted(m.mp)


@pytest.fixture
def vgfs_on_system_path():
    """mount(8) runs helpers with a fixed PATH, so the real `mount -t
    fuse.vgfs` form needs vgfs installed system-wide: link it into
    /usr/local/sbin for the test unless one is there already."""
    import shutil
    link = Path("/usr/local/sbin/vgfs")
    found = shutil.which("vgfs", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    made = False
    if found is None:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(VGFS_BIN)
        made = True
    yield
    if made:
        link.unlink()


@pytest.mark.parametrize("how", ["helper", "hash", "fuse.vgfs"])
def test_mount_t_fuse_vgfs(env, fig3, how, vgfs_on_system_path):
    m = env.mount(fig3.config, via_mount_t=how)
    assert os.stat(m.lv("lvx")).st_size == 45 * MiB
    with open(m.lv("lvx"), "r+b") as f:
        f.write(b"via mount -t")
    m.unmount()
    m2 = env.mount(fig3.config, via_mount_t=how, opts="ro")
    with open(m2.lv("lvx"), "rb") as f:
        assert f.read(12) == b"via mount -t"
    with pytest.raises(OSError) as ei:
        os.open(m2.lv("lvx"), os.O_WRONLY)
    assert ei.value.errno == errno.EROFS


def test_allow_other_option(env, fig3):
    m = fig3.mount(opts="allow_other")
    with open("/proc/self/mountinfo") as f:
        line = [l for l in f if f" {m.mp} " in l][0]
    assert "allow_other" in line, line


def test_second_mount_of_same_pvs_is_refused(env, fig3):
    m = fig3.mount()
    m2 = env.mount(fig3.config, expect_ok=False)
    assert_one_line_error(m2.result, "locked")
    assert not is_mounted(m2.mp)
    # The first mount is unaffected.
    with open(m.lv("lvx"), "rb") as f:
        assert len(f.read(4096)) == 4096
    m_ro = env.mount(fig3.config, opts="ro", expect_ok=False)
    assert_one_line_error(m_ro.result, "locked")
    assert not is_mounted(m_ro.mp)
    m3 = env.mount(fig3.config, foreground=True, expect_ok=False)
    assert m3.proc.wait(timeout=30) == 1
    assert_one_line_error(m3.result, "locked")


def test_read_only_mount(env, fig3):
    m = fig3.mount()
    with open(m.lv("lvx"), "r+b") as f:
        f.write(b"before ro")
    m.unmount()
    before = fig3.pv_hashes()
    m = fig3.mount(opts="ro")
    with open(m.lv("lvx"), "rb") as f:
        assert f.read(9) == b"before ro"
    for flags in (os.O_WRONLY, os.O_RDWR):
        with pytest.raises(OSError) as ei:
            os.open(m.lv("lvx"), flags)
        assert ei.value.errno == errno.EROFS
    with pytest.raises(OSError) as ei:
        os.truncate(m.lv("lvx"), 0)
    assert ei.value.errno == errno.EROFS
    with pytest.raises(OSError) as ei:
        fd = os.open(m.meta / "ctl", os.O_WRONLY)
        try:
            os.write(fd, b"pause 1\n")
        finally:
            os.close(fd)
    assert ei.value.errno == errno.EROFS
    vgj = m.vg_json()
    assert vgj["name"] == "vgio"
    m.unmount()
    assert fig3.pv_hashes() == before, "a read-only mount changed the PVs"


# --------------------------------------------------------------------------
# The tree and the .vgfs views
# --------------------------------------------------------------------------

def test_tree_entries_and_modes(env, fig3):
    m = fig3.mount()
    assert sorted(os.listdir(m.mp)) == [".vgfs", "lvx", "lvy"]
    meta = set(os.listdir(m.meta))
    assert {"ctl", "vg", "vg.json", "lvs", "pvs"} <= meta, meta
    assert sorted(os.listdir(m.meta / "lvs")) == ["lvx", "lvy"]
    assert sorted(os.listdir(m.meta / "pvs")) == ["pv0", "pv1"]
    for lv in ("lvx", "lvy"):
        assert {"info", "map"} <= set(os.listdir(m.meta / "lvs" / lv))
    for pv in ("pv0", "pv1"):
        assert {"info", "map"} <= set(os.listdir(m.meta / "pvs" / pv))

    sx, sy = os.stat(m.lv("lvx")), os.stat(m.lv("lvy"))
    assert stat.S_ISREG(sx.st_mode) and stat.S_ISREG(sy.st_mode)
    assert stat.S_IMODE(sx.st_mode) == 0o600, oct(sx.st_mode)
    assert stat.S_IMODE(sy.st_mode) == 0o640, oct(sy.st_mode)
    assert sx.st_uid == os.geteuid() and sy.st_uid == os.geteuid()
    assert sx.st_size == 45 * MiB and sy.st_size == 8 * MiB
    sc = os.stat(m.meta / "ctl")
    assert stat.S_ISREG(sc.st_mode)
    assert sc.st_mode & 0o200, "ctl must be writable by its owner"
    assert not sc.st_mode & 0o022, f"ctl must be writable by its owner only: {oct(sc.st_mode)}"
    assert stat.S_ISDIR(os.stat(m.meta).st_mode)


def test_vg_summary_view(env, fig3):
    m = fig3.mount()
    kv = read_kv(m.meta / "vg")
    for k in ("name", "uuid", "extent_size", "region_size", "seqno", "pv_count", "lv_count",
              "size", "free"):
        assert k in kv, f"vg view lacks {k!r}: {kv}"
    vgj = m.vg_json()
    assert kv["name"] == "vgio" == vgj["name"]
    assert re.fullmatch(r"[0-9a-fA-F-]{32,36}", kv["uuid"]), kv["uuid"]
    assert kv["uuid"] == vgj["uuid"]
    assert size_matches(kv["extent_size"], MiB) and vgj["extent_size"] == MiB
    assert size_matches(kv["region_size"], 256 * 1024) and vgj["region_size"] == 256 * 1024
    assert int(kv["seqno"]) == vgj["seqno"] >= 1
    assert int(kv["pv_count"]) == vgj["pv_count"] == 2
    assert int(kv["lv_count"]) == vgj["lv_count"] == 2
    pe_total = sum(p["pe_count"] for p in vgj["pvs"])
    free_total = sum(p["free_pe"] for p in vgj["pvs"])
    assert vgj["size"] == pe_total * MiB
    assert vgj["free"] == free_total * MiB == (pe_total - 45 - 8) * MiB
    assert size_matches(kv["size"], vgj["size"]), kv["size"]
    assert size_matches(kv["free"], vgj["free"]), kv["free"]


def test_lv_views_fig3_form(env, fig3):
    m = fig3.mount()
    assert map_lines(m.meta / "lvs" / "lvx" / "map") == [
        "0-19 pv0 50-69", "20-39 pv1 10-29", "40-44 pv0 5-9"]
    info = read_kv(m.meta / "lvs" / "lvx" / "info")
    for k in ("name", "uuid", "size", "le_count", "le_size", "pvs", "mode"):
        assert k in info, f"lvs/lvx/info lacks {k!r}: {info}"
    assert info["name"] == "lvx"
    assert int(info["le_count"]) == 45
    assert size_matches(info["le_size"], MiB), info["le_size"]
    assert size_matches(info["size"], 45 * MiB), info["size"]
    assert split_list(info["pvs"]) == ["pv0", "pv1"]
    assert info["mode"] in ("0600", "600", "0o600"), info["mode"]
    infoy = read_kv(m.meta / "lvs" / "lvy" / "info")
    assert infoy["mode"] in ("0640", "640", "0o640"), infoy["mode"]
    assert int(infoy["le_count"]) == 8
    assert infoy["uuid"] != info["uuid"]


def test_allocator_places_lv_in_smallest_fitting_free_run(env, fig3):
    """include/vgfs/metadata.h: one contiguous run in the smallest free run
    that fits. Free runs after lvx: pv0 0-4, 10-49, 70-..; pv1 0-9, 30-..:
    8 extents go to pv1 0-7."""
    m = fig3.mount()
    assert map_lines(m.meta / "lvs" / "lvy" / "map") == ["0-7 pv1 0-7"]


def test_pv_views_fig4_form_and_pe_start(env, fig3):
    m = fig3.mount()
    vgj = m.vg_json()
    for pvj in vgj["pvs"]:
        name = pvj["name"]
        info = read_kv(m.meta / "pvs" / name / "info")
        for k in ("name", "uuid", "path", "pe_count", "pe_size", "pe_start", "free_pe", "lvs"):
            assert k in info, f"pvs/{name}/info lacks {k!r}: {info}"
        assert info["name"] == name
        assert info["path"] == str(fig3.pv_path(name)), info["path"]
        pe_start = parse_int_bytes(info["pe_start"])
        assert pe_start == pvj["pe_start"]
        assert pe_start % MiB == 0 and pe_start >= 1 * MiB + 2 * 4 * MiB
        pe_count = int(info["pe_count"])
        assert pe_count == pvj["pe_count"] == (128 * MiB - pe_start) // MiB
        assert size_matches(info["pe_size"], MiB)
        lines = map_lines(m.meta / "pvs" / name / "map")
        assert lines == expected_pv_map(vgj, name, pe_count), f"pvs/{name}/map"
        used = sum(parse_range(l.split()[0])[1] for l in lines if not l.endswith(" free"))
        assert int(info["free_pe"]) == pvj["free_pe"] == pe_count - used
    pv0 = map_lines(m.meta / "pvs" / "pv0" / "map")
    assert pv0[:4] == ["0-4 free", "5-9 lvx 40-44", "10-49 free", "50-69 lvx 0-19"]
    assert split_list(read_kv(m.meta / "pvs" / "pv0" / "info")["lvs"]) == ["lvx"]
    assert split_list(read_kv(m.meta / "pvs" / "pv1" / "info")["lvs"]) == ["lvx", "lvy"]


def test_single_extent_runs_are_written_as_one_number(env):
    vg = env.make_vg(name="vgone",
                     pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lvs1", extents=[("0", "pv0", "7"), ("1-2", "pv1", "3-4"),
                                                  ("3", "pv0", "9")])])
    vg.create()
    m = vg.mount()
    assert map_lines(m.meta / "lvs" / "lvs1" / "map") == ["0 pv0 7", "1-2 pv1 3-4", "3 pv0 9"]
    pe_count = int(read_kv(m.meta / "pvs" / "pv0" / "info")["pe_count"])
    assert map_lines(m.meta / "pvs" / "pv0" / "map") == [
        "0-6 free", "7 lvs1 0", "8 free", "9 lvs1 3", f"10-{pe_count - 1} free"]
    vgj = m.vg_json()
    lv = json_lvs(vgj)[0]
    assert lv["map"][0] == {"le": "0", "pv": "pv0", "pe": "7"}


def test_vg_json_is_consistent_with_text_views(env, fig3):
    m = fig3.mount()
    vgj = m.vg_json()
    for k in ("name", "uuid", "extent_size", "region_size", "seqno", "pv_count", "lv_count",
              "size", "free", "pvs", "lvs", "jobs"):
        assert k in vgj, f"vg.json lacks {k!r}"
    assert vgj["jobs"] == []
    assert [p["name"] for p in vgj["pvs"]] == ["pv0", "pv1"]
    assert [l["name"] for l in vgj["lvs"]] == ["lvx", "lvy"]
    for pvj in vgj["pvs"]:
        for k in ("name", "uuid", "path", "pe_start", "pe_count", "pe_size", "free_pe", "lvs", "map"):
            assert k in pvj, f"vg.json pv lacks {k!r}"
        assert isinstance(pvj["pe_start"], int) and isinstance(pvj["pe_size"], int)
        assert pvj["pe_size"] == MiB
        info = read_kv(m.meta / "pvs" / pvj["name"] / "info")
        assert info["uuid"] == pvj["uuid"]
        lines = []
        for e in pvj["map"]:
            if e.get("free"):
                assert "lv" not in e, e
                lines.append(f"{e['pe']} free")
            else:
                lines.append(f"{e['pe']} {e['lv']} {e['le']}")
        assert lines == map_lines(m.meta / "pvs" / pvj["name"] / "map")
        assert pvj["lvs"] == split_list(info["lvs"])
    for lvj in vgj["lvs"]:
        for k in ("name", "uuid", "mode", "size", "le_count", "le_size", "pvs", "map"):
            assert k in lvj, f"vg.json lv lacks {k!r}"
        assert lvj["size"] == lvj["le_count"] * lvj["le_size"] == os.stat(m.lv(lvj["name"])).st_size
        lines = [f"{e['le']} {e['pv']} {e['pe']}" for e in lvj["map"]]
        assert lines == map_lines(m.meta / "lvs" / lvj["name"] / "map")
    assert lv_runs_from_json(vgj["lvs"][0]) == FIG3_LVX_RUNS


def test_views_read_complete_with_small_reads(env, fig3):
    """Served with direct I/O: byte-at-a-time reads give the same text."""
    m = fig3.mount()
    for rel in ("vg", "vg.json", "lvs/lvx/map", "pvs/pv1/info"):
        p = m.meta / rel
        whole = p.read_bytes()
        fd = os.open(p, os.O_RDONLY)
        try:
            parts = []
            while True:
                b = os.read(fd, 7)
                if not b:
                    break
                parts.append(b)
        finally:
            os.close(fd)
        assert b"".join(parts) == whole, rel
        assert whole.endswith(b"\n") or rel.endswith(".json"), rel


# --------------------------------------------------------------------------
# Control file
# --------------------------------------------------------------------------

def test_ctl_unknown_command_is_einval_with_reply(env, fig3):
    m = fig3.mount()
    ctl = m.meta / "ctl"
    fd = os.open(ctl, os.O_RDWR)
    try:
        with pytest.raises(OSError) as ei:
            os.write(fd, b"frobnicate everything\n")
        assert ei.value.errno == errno.EINVAL
        os.lseek(fd, 0, os.SEEK_SET)
        reply = os.read(fd, 4096).decode()
        assert reply.startswith("error: unknown command"), repr(reply)
        assert reply.endswith("\n") and reply.count("\n") == 1, repr(reply)
    finally:
        os.close(fd)
    # O_TRUNC is accepted at open, so `echo CMD > ctl` reaches the write.
    fd = os.open(ctl, os.O_WRONLY | os.O_TRUNC)
    try:
        with pytest.raises(OSError) as ei:
            os.write(fd, b"x\n")
        assert ei.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    r = env.run(["bash", "-c", f"echo x > '{ctl}'"])
    assert r.returncode != 0
    assert "invalid argument" in r.stderr.lower(), f"open of ctl failed instead of write: {r.stderr!r}"


# --------------------------------------------------------------------------
# Command line listings
# --------------------------------------------------------------------------

def test_lvs_pvs_online_and_offline_agree(env, fig3):
    m = fig3.mount()
    variants = [("lvs", "--maps", "--json"), ("pvs", "--maps", "--json"), ("lvs", "--json"),
                ("pvs", "--json"), ("lvs",), ("pvs",), ("lvs", "--maps"), ("pvs", "--maps")]
    online = {}
    for v in variants:
        r = env.vgfs(*v, m.mp)
        assert r.returncode == 0, f"vgfs {' '.join(v)} MOUNTPOINT: {r.stderr}"
        online[v] = r.stdout
    vgj = m.vg_json()
    lj = json_lvs(json.loads(online[("lvs", "--maps", "--json")]))
    pj = json_pvs(json.loads(online[("pvs", "--maps", "--json")]))
    assert [l["name"] for l in lj] == ["lvx", "lvy"]
    assert [p["name"] for p in pj] == ["pv0", "pv1"]
    assert lv_runs_from_json(lj[0]) == FIG3_LVX_RUNS
    assert lj == vgj["lvs"], "lvs --maps --json differs from vg.json"
    assert pj == vgj["pvs"], "pvs --maps --json differs from vg.json"
    for name in ("lvx", "lvy"):
        assert name in online[("lvs",)]
    assert "50-69" in online[("lvs", "--maps")]
    assert "pv1" in online[("pvs",)]

    # Offline on a mounted VG: refused, pointing at the mountpoint.
    r = env.vgfs("lvs", fig3.config)
    line = assert_one_line_error(r)
    assert re.search(r"mount ?point", line, re.I), f"should tell to use the mountpoint: {line!r}"

    m.unmount()
    for v in variants:
        r = env.vgfs(*v, fig3.config)
        assert r.returncode == 0, f"vgfs {' '.join(v)} CONFIG (offline): {r.stderr}"
        if "--json" in v:
            assert json.loads(r.stdout) == json.loads(online[v]), f"offline {v} differs"
        else:
            assert r.stdout == online[v], f"offline {v} differs:\n{r.stdout}\nvs\n{online[v]}"


def test_dump_prints_metadata_yaml(env, fig3):
    r = env.vgfs("dump", fig3.config)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert re.search(r"seqno:\s*1\b", text), "after create the metadata seqno is 1"
    for word in ("vgio", "lvx", "lvy", "pv0", "pv1"):
        assert word in text
    if yaml is not None:
        doc = yaml.safe_load(text)
        assert isinstance(doc, dict), type(doc)
        flat = json.dumps(doc)
        assert "lvx" in flat and "pv1" in flat


def test_check_healthy_vg(env, fig3):
    r = env.vgfs("check", fig3.config)
    assert r.returncode == 0, f"{r.stdout}{r.stderr}"
    m = fig3.mount()
    with open(m.lv("lvx"), "r+b") as f:
        f.write(os.urandom(MiB))
    m.unmount()
    r = env.vgfs("check", fig3.config)
    assert r.returncode == 0, f"{r.stdout}{r.stderr}"


def test_metadata_survives_remount(env, fig3):
    m = fig3.mount()
    first = m.vg_json()
    m.unmount()
    m2 = fig3.mount()
    second = m2.vg_json()
    assert second["uuid"] == first["uuid"]
    assert second["lvs"] == first["lvs"] and second["pvs"] == first["pvs"]
    assert second["seqno"] >= first["seqno"]


def test_config_only_finds_pvs_after_create(env, fig3):
    """After create the PVs are the truth: a config that lists only the PVs
    (no LVs, other sizes) mounts the same VG."""
    m = fig3.mount()
    fig3_lvx = m.vg_json()["lvs"]
    m.unmount()
    cfg = fig3.dir / "pvs-only.yaml"
    cfg.write_text("vg:\n  name: vgio\npvs:\n  - {name: pv0, path: pv0.img}\n"
                   "  - {name: pv1, path: pv1.img}\n")
    m2 = env.mount(cfg)
    assert m2.vg_json()["lvs"] == fig3_lvx


def test_create_makes_sparse_pv_images(env, fig3):
    for p in fig3.pv_paths:
        st = os.stat(p)
        assert st.st_size == 128 * MiB
        assert st.st_blocks * 512 <= 16 * MiB, f"{p} is not sparse: {st.st_blocks * 512} bytes used"


def test_block_device_pvs(env):
    """PVs on block devices (loop devices), size taken from the device."""
    d = env.tmp / "bd"
    d.mkdir()
    devs = []
    for i in range(2):
        f = d / f"back{i}.img"
        with open(f, "wb") as fh:
            fh.truncate(64 * MiB)
        devs.append(env.losetup(f))
    # A given size larger than the device is an error and changes nothing.
    vg = env.make_vg(name="vgbd", subdir="bdvg",
                     pvs=[PvSpec("pv0", devs[0], "128MiB"), PvSpec("pv1", devs[1], None)],
                     lvs=[LvSpec("lv0", size="80MiB")])
    vg.write_config()
    r = env.vgfs("create", vg.config)
    assert_one_line_error(r, "pv0")
    for i in range(2):
        assert (d / f"back{i}.img").stat().st_blocks == 0, "failed create wrote to the device"

    vg.pvs = [PvSpec("pv0", devs[0], None), PvSpec("pv1", devs[1], None)]
    vg.create()
    m = vg.mount()
    info = read_kv(m.meta / "pvs" / "pv0" / "info")
    assert info["path"] == devs[0]
    pe_start = parse_int_bytes(info["pe_start"])
    assert int(info["pe_count"]) == (64 * MiB - pe_start) // MiB
    data = os.urandom(80 * MiB)
    with open(m.lv("lv0"), "r+b") as f:
        f.write(data)
    runs = lv_runs_from_json(m.vg_json()["lvs"][0])
    starts = {p: m.pe_start(p) for p in ("pv0", "pv1")}
    m.unmount()
    for le, n, pv, pe in runs:
        back = d / f"back{0 if pv == 'pv0' else 1}.img"
        with open(back, "rb") as f:
            f.seek(starts[pv] + pe * MiB)
            assert f.read(n * MiB) == data[le * MiB:(le + n) * MiB], f"LE {le} on {pv}"
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, r.stdout + r.stderr
    m2 = vg.mount()
    with open(m2.lv("lv0"), "rb") as f:
        assert f.read() == data
    m2.unmount()
    for dev in devs:
        env.loop_detach(dev)


@pytest.mark.parametrize("how", ["sigterm", "umount"])
def test_daemon_stops_cleanly(env, fig3, how):
    """SIGTERM to the daemon, or a plain umount(8), ends the mount; the data
    is on the PVs and the VG mounts again."""
    m = fig3.mount()
    data = os.urandom(MiB)
    with open(m.lv("lvy"), "r+b") as f:
        f.write(data)
    assert m.pids
    if how == "sigterm":
        for pid in m.pids:
            os.kill(pid, signal.SIGTERM)
    else:
        env.run(["umount", m.mp], check=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (any(pid_alive(p) for p in m.pids) or is_mounted(m.mp)):
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in m.pids), "daemon still running"
    assert not is_mounted(m.mp), "mount still present after the daemon stopped"
    m.unmount()
    r = env.vgfs("check", fig3.config)
    assert r.returncode == 0, r.stdout + r.stderr
    m2 = fig3.mount()
    with open(m2.lv("lvy"), "rb") as f:
        assert f.read(MiB) == data


def test_two_vgs_mounted_at_once(env):
    a = fig3_vg(env, name="vga", subdir="a")
    b = fig3_vg(env, name="vgb", subdir="b")
    a.create()
    b.create()
    ma, mb = a.mount(), b.mount()
    assert ma.vg_json()["name"] == "vga" and mb.vg_json()["name"] == "vgb"
    with open(ma.lv("lvx"), "r+b") as f:
        f.write(b"A" * 4096)
    with open(mb.lv("lvx"), "r+b") as f:
        f.write(b"B" * 4096)
    with open(ma.lv("lvx"), "rb") as f:
        assert f.read(4096) == b"A" * 4096
    with open(mb.lv("lvx"), "rb") as f:
        assert f.read(4096) == b"B" * 4096


def test_size_suffixes_and_name_characters(env):
    vg = env.make_vg(name="vg.sizes+1",
                     pvs=[PvSpec("pv_a-1", "a.img", "67108864"),      # plain bytes
                          PvSpec("pv.b+2", "b.img", "65536KiB"),
                          PvSpec("pvT", "t.img", "1TiB")],            # sparse
                     lvs=[LvSpec("lv.data+1_x-y", size="8388608B"),
                          LvSpec("lvg", size="1GiB"),
                          LvSpec("lvk", size="2048KiB")],
                     extent_size="1MiB")
    vg.create()
    m = vg.mount()
    assert sorted(os.listdir(m.mp)) == sorted([".vgfs", "lv.data+1_x-y", "lvg", "lvk"])
    assert os.stat(m.lv("lv.data+1_x-y")).st_size == 8 * MiB
    assert os.stat(m.lv("lvg")).st_size == 1024 * MiB
    assert os.stat(m.lv("lvk")).st_size == 2 * MiB
    vgj = m.vg_json()
    assert vgj["name"] == "vg.sizes+1"
    pes = {p["name"]: p["pe_count"] for p in vgj["pvs"]}
    start = {p["name"]: p["pe_start"] for p in vgj["pvs"]}
    assert pes["pv_a-1"] == (64 * MiB - start["pv_a-1"]) // MiB
    assert pes["pv.b+2"] == (64 * MiB - start["pv.b+2"]) // MiB
    assert pes["pvT"] == (1024 * 1024 * MiB - start["pvT"]) // MiB
    assert os.path.isdir(m.meta / "lvs" / "lv.data+1_x-y")
    assert os.path.isdir(m.meta / "pvs" / "pv.b+2")


def test_allocator_spans_pvs_with_fewest_runs(env):
    vg = env.make_vg(name="vgspan",
                     pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lvs", size="80MiB")])
    vg.create()
    m = vg.mount()
    runs = lv_runs_from_json(m.vg_json()["lvs"][0])
    pe_count = m.vg_json()["pvs"][0]["pe_count"]
    assert len(runs) == 2, runs
    assert sum(r[1] for r in runs) == 80
    assert runs[0][0] == 0 and runs[0][1] == pe_count and runs[0][3] == 0, runs
    assert {runs[0][2], runs[1][2]} == {"pv0", "pv1"}
    assert runs[1] == (pe_count, 80 - pe_count, runs[1][2], 0)


def test_many_lvs_and_large_views(env):
    """150 LVs (some with 127-character names) and one LV of 1600 one-extent
    runs: readdir pagination, and views larger than one FUSE read."""
    runs = [(str(i), f"pv{i % 2}", str(799 - i // 2)) for i in range(1600)]
    small = [f"lv{i:03d}" for i in range(146)] + [("L" * 120) + f"{i:07d}" for i in range(4)]
    assert all(len(n) <= 127 for n in small)
    vg = env.make_vg(name="vgmany",
                     pvs=[PvSpec("pv0", "pv0.img", "80MiB"), PvSpec("pv1", "pv1.img", "80MiB")],
                     lvs=[LvSpec("lvmany", extents=runs)] + [LvSpec(n, size="64KiB") for n in small],
                     extent_size="64KiB", region_size="64KiB")
    vg.create()
    m = vg.mount()
    names = os.listdir(m.mp)
    assert len(names) == len(set(names)) == 1 + 1 + len(small)
    assert set(names) == {".vgfs", "lvmany", *small}
    assert set(os.listdir(m.meta / "lvs")) == {"lvmany", *small}
    whole = (m.meta / "vg.json").read_bytes()
    assert len(whole) > 128 * 1024, f"vg.json is only {len(whole)} bytes; test needs a large view"
    fd = os.open(m.meta / "vg.json", os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 4096)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    assert b"".join(chunks) == whole
    vgj = json.loads(whole)
    assert vgj["lv_count"] == len(vgj["lvs"]) == 1 + len(small)
    lv = [l for l in vgj["lvs"] if l["name"] == "lvmany"][0]
    assert len(lv["map"]) == 1600
    lines = map_lines(m.meta / "lvs" / "lvmany" / "map")
    assert len(lines) == 1600 and lines[1599] == "1599 pv1 0"
    pvmap = map_lines(m.meta / "pvs" / "pv0" / "map")
    assert "799 lvmany 0" in pvmap and "0 lvmany 1598" in pvmap
    r = env.vgfs("lvs", "--maps", "--json", m.mp)
    assert r.returncode == 0, r.stderr
    online = json.loads(r.stdout)
    m.unmount()
    r = env.vgfs("lvs", "--maps", "--json", vg.config)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == online
