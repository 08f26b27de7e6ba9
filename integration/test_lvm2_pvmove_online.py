"""LVM2's unfinished pvmove finished and aborted online by a mounted vgfs
(docs/lvm2.md, "LVM2's unfinished pvmove"; issue 12). LVM2 2.03's `pvmove`
without device-mapper leaves pvmove0 and LOCKED LVs; vgfs mounts the VG,
serves the LVs from the source, shows the move as job 0, and `finish 0` (or
`vgfs pvmove --finish`) moves it with vgfs jobs while the LV is written
through the mount, or `abort 0` puts it back. LVM2 checks the result
(`vgck`, `lvs -a`, the LVs unlocked and usable) and every LV reads back
exactly against a model (the random fill plus the test's writes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_lvm2_move import mount
from test_lvm2_pvmove import World, check_data, check_unlocked_and_usable, pe_ranges, stuck_pvmove
from vgfstest import assert_one_line_error, is_mounted, ctl, ctl_ok, job_int, job_status, reply_job_ids, wait_jobs

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def read_all(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_at(path: Path, model: bytearray, off: int, size: int) -> None:
    data = os.urandom(size)
    fd = os.open(path, os.O_WRONLY)
    try:
        assert os.pwrite(fd, data, off) == size
        os.fsync(fd)
    finally:
        os.close(fd)
    model[off:off + size] = data


def check_job0_shown(m, lvs: str) -> None:
    s = job_status(m, 0)
    assert s["sync_status"] == "stopped" and s["lv"] == lvs, s
    assert "finish 0" in s["reason"] and "abort 0" in s["reason"], s


def check_lvs(w: World, m, models: dict[str, bytearray]) -> None:
    for lv, model in models.items():
        assert read_all(m.lv(lv)) == bytes(model), f"{lv} differs from the model"


def test_finish_lvm2_pvmove_online_under_writes(env, lvm):
    """The issue's last "done when": a pvmove0 left by LVM2 is finished."""
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    stuck_pvmove(w, "-n", "lv1", a, c)
    m = mount(env, a, b, c)
    models = {lv: bytearray(w.data[lv]) for lv in ("lv1", "lv2", "st")}
    # LVM2 locked lv1: vgfs does not serve it until the move is resolved;
    # the other LVs are served and writable.
    assert not m.lv("lv1").exists()
    write_at(m.lv("lv2"), models["lv2"], 1 * MiB, 1 * MiB)
    check_lvs(w, m, {lv: models[lv] for lv in ("lv2", "st")})
    check_job0_shown(m, "lv1")
    jobs = reply_job_ids(ctl_ok(m, "finish 0 limit=4MiB"))
    # lv1 is served from the commit on, written while its jobs copy.
    write_at(m.lv("lv1"), models["lv1"], 2 * MiB + 4096, 3 * MiB)
    assert len(jobs) == 2, jobs  # lv1's two segments, one vgfs job each
    # Mid-job, LVM2 sees a valid VG: the vgfs jobs' hidden LVs, no pvmove0.
    lvm.run("vgck", "vg")
    mid = [s[0] for s in w.segments()]
    assert "[pvmove0]" not in mid and any(s.startswith("[vgfs_move") for s in mid), mid
    write_at(m.lv("lv1"), models["lv1"], 9 * MiB, 1 * MiB)  # during: the jobs' write rules
    for j in jobs:
        ctl_ok(m, f"limit {j} 0")
    done = wait_jobs(m, jobs, timeout=120)
    assert all(s["sync_status"] == "completed" for s in done.values()), done
    assert ctl(m, "abort 0")[0] != 0  # job 0 is gone
    check_lvs(w, m, models)
    m.unmount()
    lvm.run("vgck", "vg")
    assert pe_ranges(w, "lv1") == [f"{c}:0-12"]
    w.data = {lv: bytes(v) for lv, v in models.items()}
    check_unlocked_and_usable(w, ["lv1", "lv2"])


def test_abort_lvm2_pvmove_online(env, lvm):
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    stuck_pvmove(w, f"{a}:0-4", b)  # LVM2 split lv1's first segment at LE 5
    m = mount(env, a, b, c)
    models = {lv: bytearray(w.data[lv]) for lv in ("lv1", "lv2", "st")}
    check_job0_shown(m, "lv1")
    assert not m.lv("lv1").exists()
    assert ctl_ok(m, "abort 0").startswith("ok")
    assert not (m.mp / ".vgfs" / "jobs" / "0").exists()
    write_at(m.lv("lv1"), models["lv1"], 1 * MiB, 2 * MiB)
    write_at(m.lv("lv1"), models["lv1"], 4 * MiB, 2 * MiB)
    check_lvs(w, m, models)
    m.unmount()
    lvm.run("vgck", "vg")
    assert pe_ranges(w, "lv1") == [f"{a}:0-9", f"{a}:15-17"]
    w.data = {lv: bytes(v) for lv, v in models.items()}
    check_unlocked_and_usable(w, ["lv1", "lv2"])


def test_finish_whole_pv_with_a_striped_leg_by_the_cli(env, lvm):
    """`vgfs pvmove MNT --finish --wait`: every LV of PV a, the leg of the
    striped st included (a leg job), lands where LVM2 chose on c."""
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    stuck_pvmove(w, a, c)
    m = mount(env, a, b, c)
    st = job_status(m, 0)
    assert st["lv"] == "lv1,lv2,st" and job_int(st, "size") == (13 + 5 + 4) * MiB, st
    r = env.vgfs("pvmove", m.mp, "--finish", "--wait", timeout=120)
    assert r.returncode == 0, r.stderr
    models = {lv: bytearray(w.data[lv]) for lv in ("lv1", "lv2", "st")}
    write_at(m.lv("st"), models["st"], 3 * MiB - 4096, 64 * 1024 + 8192)
    check_lvs(w, m, models)
    m.unmount()
    lvm.run("vgck", "vg")
    assert pe_ranges(w, "lv1") == [f"{c}:0-12"]
    assert pe_ranges(w, "lv2") == [f"{c}:13-17"]
    assert pe_ranges(w, "st") == [f"{c}:18-21 {b}:0-3"]
    w.data = {lv: bytes(v) for lv, v in models.items()}
    check_unlocked_and_usable(w, ["lv1", "lv2", "st"])


def test_cli_abort_and_refusals(env, lvm):
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    m = mount(env, a, b, c)
    # No pvmove0: finish and abort of job 0 say so and change nothing.
    r = env.vgfs("pvmove", m.mp, "--finish")
    assert_one_line_error(r, "holds no move left unfinished")
    m.unmount()
    stuck_pvmove(w, "-n", "lv2", a, b)
    before = lvm.backup("vg")
    m = mount(env, a, b, c)
    r = env.vgfs("pvmove", m.mp, "--abort")
    assert r.returncode == 0, r.stderr
    assert m.lv("lv2").exists()
    check_lvs(w, m, {lv: bytearray(w.data[lv]) for lv in ("lv1", "lv2", "st")})
    m.unmount()
    assert "pvmove0" in before and "pvmove0" not in lvm.backup("vg")
    lvm.run("vgck", "vg")
    assert pe_ranges(w, "lv2") == [f"{a}:10-14"]
    check_unlocked_and_usable(w, ["lv2", "lv1"])


def test_readme_finish_block_runs_as_written(env, lvm):
    """README.md's `--finish` block of "LVM2 volume groups", on an LVM2
    stuck pvmove of two PVs standing in for /dev/sdb and /dev/sdc."""
    from vgfstest import REPO, VGFS_BIN
    text = (REPO / "README.md").read_text()
    start = text.index("\n## LVM2 volume groups\n")
    section = text[start:text.index("\n## ", start + 1)]
    [script] = [b for b in re.findall(r"```sh\n(.*?)```", section, flags=re.S) if "--finish" in b]
    w = World(lvm)
    a, b, c = w.dev["a"], w.dev["b"], w.dev["c"]
    stuck_pvmove(w, "-n", "lv2", a, c)
    work = env.tmp / "readme"
    (work / "locks").mkdir(parents=True)
    script = script.replace("/dev/sdb /dev/sdc", f"{a} {b} {c}").replace("/mnt/", f"{work}/mnt/")
    script = re.sub(r"(vgfs mount [^\n#]*?)(\s*#|\n)", rf"\1 -o lvm_lock_dir={work / 'locks'}\2", script, count=1)
    path = f"{VGFS_BIN.parent}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    try:
        r = subprocess.run(["bash", "-e", "-c", f"mkdir -p {work}/mnt/vg\n{script}"], cwd=work,
                           env=dict(os.environ, PATH=path), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        if is_mounted(work / "mnt" / "vg"):
            subprocess.run(["fusermount3", "-u", str(work / "mnt" / "vg")], capture_output=True)
    lvm.run("vgck", "vg")
    assert pe_ranges(w, "lv2") == [f"{c}:0-4"]
    check_data(w, ["lv1", "lv2", "st"])
    check_unlocked_and_usable(w, ["lv2", "lv1"])
