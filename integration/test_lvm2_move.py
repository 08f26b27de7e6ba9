"""Online moves on LVM2 VGs (docs/lvm2.md, "Moves"; issue 12): `vgfs move`
and `vgfs pvmove` on a VG LVM2 made on loop devices, checked with LVM2's own
`vgck` and `lvs -a` before, while the job runs (its hidden LVs vgfs_move<ID>
and vgfs_move<ID>_rec, which `vgfs lvs -a` lists too) and after (the LV on
the destination, the hidden LVs gone); a live ext4 moved by PV device names; a SIGKILL mid-job, the remount
resuming it with the data exact against a model; SIGKILLs at seeded random
instants under writers, around the switch too, vgck sampled meanwhile;
abort; refusals.

LVM2's tools run in a private world (vgfstest.lvm2.Lvm). The mounts use
another lock folder than LVM2's, so LVM2 can read the VG while vgfs holds it
(the sampling while a job runs); vgfs commits are synced before the reply,
so LVM2 reads what vgfs committed.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import VGFS_BIN
from vgfstest import (LvModel, Mount, RandomWriters, assert_one_line_error, ctl_ok, daemon_pids, is_mounted, job_int,
                      job_status, pid_alive, wait_job)
from vgfstest.lvm2 import Lvm, lvm_try

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def make_vg(lvm: Lvm, name="vgmv", pvs=2, size=64 * MiB) -> list[str]:
    """A VG of `pvs` PVs of 15 extents of 4 MiB, on loop devices."""
    devs = [lvm.attach(lvm.image(f"{name}{i}.img", size)) for i in range(pvs)]
    for d in devs:
        lvm.run("pvcreate", "-q", d)
    lvm.run("vgcreate", "-q", name, *devs)
    return devs


def mount(env, *paths) -> Mount:
    """vgfs mount PATH... MNT (daemon in the background), with its own lock
    folder: LVM2's private one stays free for the sampling."""
    mp = env.new_mountpoint()
    locks = env.tmp / "vgfs-locks"
    locks.mkdir(exist_ok=True)
    m = Mount(env, Path(paths[0]), mp)
    m.result = env.vgfs("mount", *paths, mp, "-o", f"lvm_lock_dir={locks}")
    assert m.result.returncode == 0 and is_mounted(mp), m.result.stderr
    m.pids = daemon_pids(mp)
    env.mounts.append(m)
    return m


def lvm_lvs(lvm: Lvm, vg: str) -> dict[str, list[str]]:
    """LVM2's `lvs -a -o lv_name,seg_pe_ranges`: LV (hidden in brackets) -> its segments' PE ranges."""
    out: dict[str, list[str]] = {}
    for row in lvm.report("lvs", "seg", "-a", "--segments", "-o", "lv_name,seg_pe_ranges", vg):
        out.setdefault(row["lv_name"], []).append(row["seg_pe_ranges"])
    return out


def vgfs_lvs_a(env, *paths) -> dict[str, list[str]]:
    """`vgfs lvs -a --segments -o lv_name,seg_pe_ranges` (mount point or PVs): LV -> PE ranges."""
    import json
    r = env.vgfs("lvs", "-a", "--reportformat", "json", "-o", "lv_name,seg_pe_ranges", *paths)
    assert r.returncode == 0, r.stderr
    out: dict[str, list[str]] = {}
    for row in json.loads(r.stdout)["report"][0]["lv"]:
        out.setdefault(row["lv_name"], []).append(row["seg_pe_ranges"])
    return out


def by_pv_name(lvs: dict[str, list[str]], devs: list[str]) -> dict[str, list[str]]:
    """LVM2's ranges with the device paths replaced by the PV names pv0, pv1, ..."""
    out = {}
    for lv, ranges in lvs.items():
        for i, d in enumerate(devs):
            ranges = [r.replace(f"{d}:", f"pv{i}:") for r in ranges]
        out[lv] = ranges
    return out


def vg_free(lvm: Lvm, vg: str) -> int:
    return int(lvm.report("vgs", "vg", "-o", "vg_free_count", vg)[0]["vg_free_count"])


def fill(path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    return data


def read_all(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_pvmove_of_a_live_ext4_by_device_names(env, lvm):
    """The issue's "done when": a mounted ext4 on an LVM2 LV moves to another
    PV by `vgfs pvmove MNT /dev/loopA /dev/loopB --wait` while a writer adds
    files; e2fsck is clean, the files are exact, LVM2's vgck passes and its
    lvs shows the new mapping."""
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "data", "-L", "32M", "vgmv", devs[0])
    assert lvm_lvs(lvm, "vgmv") == {"data": [f"{devs[0]}:0-7"]}
    m = mount(env, *devs)
    loop = env.losetup(m.lv("data"))
    env.run(["mkfs.ext4", "-q", "-F", loop], check=True)
    fs = env.tmp / "fs"
    env.mount_ext4(loop, fs)
    rng = random.Random(1)
    files = {f"f{i}": rng.randbytes(rng.randint(1, 2 * MiB)) for i in range(8)}
    for name, data in files.items():
        (fs / name).write_bytes(data)
    # A writer keeps adding files while the move runs.
    writer = subprocess.Popen(["bash", "-c", f"for i in $(seq 1 40); do head -c 65536 /dev/urandom > {fs}/w$i; "
                               f"sync {fs}/w$i; done"])
    r = env.vgfs("pvmove", m.mp, devs[0], devs[1], "--wait", timeout=120)
    assert writer.wait(timeout=60) == 0
    assert r.returncode == 0, r.stderr
    assert "completed" in r.stdout + r.stderr
    written = {p.name: p.read_bytes() for p in fs.iterdir() if p.name.startswith("w")}
    assert len(written) == 40
    env.umount_ext4(fs)
    env.run(["e2fsck", "-fn", loop], check=True)
    env.mount_ext4(loop, fs, read_only=True)
    for name, data in list(files.items()) + list(written.items()):
        assert (fs / name).read_bytes() == data, name
    env.umount_ext4(fs)
    env.loop_detach(loop)
    m.unmount()
    lvm.run("vgck", "vgmv")
    assert lvm_lvs(lvm, "vgmv") == {"data": [f"{devs[1]}:0-7"]}
    assert vg_free(lvm, "vgmv") == 30 - 8


def test_lvm2_sees_the_hidden_lvs_while_a_job_runs(env, lvm):
    """Sampled mid-job (rate limited): vgck passes, lvs -a lists the hidden
    LVs on the destination and the record extent, the free count excludes
    them; after the job they are gone in the same commit as the remap."""
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "a", "-L", "16M", "vgmv", devs[0])
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "b", "-L", "8M", "vgmv", devs[0])
    m = mount(env, *devs)
    data = fill(m.lv("a"), 16 * MiB, 2)
    r = env.vgfs("move", m.mp, "a", "pv1", "--limit", "1MiB")
    assert r.returncode == 0 and r.stdout.startswith("ok job 1"), r.stdout + r.stderr
    for _ in range(3):  # a few samples of LVM2's view while it copies
        lvm.run("vgck", "vgmv")
        lvs = lvm_lvs(lvm, "vgmv")
        assert lvs["a"] == [f"{devs[0]}:0-3"]
        assert lvs["[vgfs_move1]"] == [f"{devs[1]}:0-3"]
        # The record: one extent, on the source PV (it has room).
        assert lvs["[vgfs_move1_rec]"] == [f"{devs[0]}:6-6"]
        assert vg_free(lvm, "vgmv") == 30 - 6 - 4 - 1
        # vgfs's lvs -a lists the same hidden LVs; without -a, only the user's.
        assert vgfs_lvs_a(env, m.mp) == by_pv_name(lvs, devs)
        r = env.vgfs("lvs", m.mp, "--noheadings", "-o", "lv_name")
        assert r.returncode == 0 and r.stdout.split() == ["a", "b"], r.stdout + r.stderr
        st = job_status(m, 1)
        assert st["sync_status"] == "copying", st
        time.sleep(0.3)
    # vgfs's own view: the record extents are reserved for job 1.
    assert "6 a record job 1" in (m.meta / "pvs" / "pv0" / "map").read_text()
    ctl_ok(m, "limit 1 0")
    assert wait_job(m, 1, timeout=60)["sync_status"] == "completed"
    lvm.run("vgck", "vgmv")
    assert lvm_lvs(lvm, "vgmv") == {"a": [f"{devs[1]}:0-3"], "b": [f"{devs[0]}:4-5"]}
    assert vgfs_lvs_a(env, m.mp) == {"a": ["pv1:0-3"], "b": ["pv0:4-5"]}
    assert read_all(m.lv("a")) == data
    m.unmount()
    lvm.run("vgck", "vgmv")


def test_sigkill_mid_job_resumes_after_remount(env, lvm):
    """SIGKILL of the daemon while a move copies and a writer writes: LVM2
    accepts the VG as it was left (the hidden LVs), the remount resumes the
    job from its persisted pointer, and the LV equals the model."""
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "a", "-L", "32M", "vgmv", devs[0])
    m = mount(env, *devs)
    model = LvModel(32 * MiB, data=fill(m.lv("a"), 32 * MiB, 3))
    assert env.vgfs("move", m.mp, "a", "pv1", "--limit", "8MiB").returncode == 0
    rng = random.Random(4)
    fd = os.open(m.lv("a"), os.O_RDWR)
    try:
        deadline = time.monotonic() + 30
        while job_int(job_status(m, 1), "checkpoint_pointer") < 4 * MiB:
            assert time.monotonic() < deadline, job_status(m, 1)
            model.random_write(fd, rng, max_len=256 * 1024)
            os.fsync(fd)
            time.sleep(0.05)
        for _ in range(20):  # writes below and above P, acknowledged by fsync
            model.random_write(fd, rng, max_len=256 * 1024)
        os.fsync(fd)
        persisted = job_int(job_status(m, 1), "checkpoint_pointer")
    finally:
        os.close(fd)
    for pid in m.pids:
        os.kill(pid, signal.SIGKILL)
    for pid in m.pids:
        while pid_alive(pid):
            time.sleep(0.02)
    env.unmount(m)
    lvm.run("vgck", "vgmv")
    lvs = lvm_lvs(lvm, "vgmv")
    assert lvs["a"] == [f"{devs[0]}:0-7"] and "[vgfs_move1]" in lvs and "[vgfs_move1_rec]" in lvs, lvs
    m = mount(env, *devs)
    st = job_status(m, 1)
    assert st["sync_status"] in ("copying", "resyncing", "synchronized"), st
    assert job_int(st, "checkpoint_pointer") >= persisted, (st, persisted)
    ctl_ok(m, "limit 1 0")
    assert wait_job(m, 1, timeout=60)["sync_status"] == "completed"
    assert model.first_difference(m.lv("a")) is None
    m.unmount()
    lvm.run("vgck", "vgmv")
    assert lvm_lvs(lvm, "vgmv") == {"a": [f"{devs[1]}:0-7"]}


def test_abort_leaves_the_source_and_no_hidden_lv(env, lvm):
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "a", "-L", "16M", "vgmv", devs[0])
    seqno = int(lvm.report("vgs", "vg", "-o", "vg_seqno", "vgmv")[0]["vg_seqno"])
    m = mount(env, *devs)
    data = fill(m.lv("a"), 16 * MiB, 5)
    assert env.vgfs("pvmove", m.mp, "pv0", "--limit", "1MiB").returncode == 0
    assert "[vgfs_move1]" in lvm_lvs(lvm, "vgmv")
    r = env.vgfs("abort", m.mp, "1")
    assert r.returncode == 0, r.stderr
    assert job_status(m, 1)["sync_status"] == "aborted"
    lvm.run("vgck", "vgmv")
    assert lvm_lvs(lvm, "vgmv") == {"a": [f"{devs[0]}:0-3"]}
    assert vg_free(lvm, "vgmv") == 30 - 4
    # Two commits: the start and the abort.
    assert int(lvm.report("vgs", "vg", "-o", "vg_seqno", "vgmv")[0]["vg_seqno"]) == seqno + 2
    assert read_all(m.lv("a")) == data
    m.unmount()


def test_refusals_change_nothing(env, lvm):
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "st", "-i2", "-I64k", "-l", "2", "vgmv")
    seqno = int(lvm.report("vgs", "vg", "-o", "vg_seqno", "vgmv")[0]["vg_seqno"])
    m = mount(env, *devs)
    assert_one_line_error(env.vgfs("move", m.mp, "st", "pv1"), "striped")
    assert_one_line_error(env.vgfs("pvmove", m.mp, devs[0]), "striped")
    assert_one_line_error(env.vgfs("lvcreate", m.mp, "vgfs_move1", "4M"), "vgfs_move")
    assert_one_line_error(env.vgfs("pvmove", m.mp, "/dev/null"), "not a PV of the VG")
    m.unmount()
    assert int(lvm.report("vgs", "vg", "-o", "vg_seqno", "vgmv")[0]["vg_seqno"]) == seqno
    lvm.run("vgck", "vgmv")
    r = lvm_try(lvm, "lvcreate", "-q", "-an", "-Zn", "-n", "x", "-l", "1", "vgmv")
    assert r.returncode == 0, r.stderr


def test_readme_lvm2_pvmove_runs_as_written(env, lvm):
    """README.md's pvmove block of "LVM2 volume groups", with the loop
    devices of a VG LVM2 made for /dev/sdb and /dev/sdc."""
    from vgfstest import REPO
    text = (REPO / "README.md").read_text()
    start = text.index("\n## LVM2 volume groups\n")
    section = text[start:text.index("\n## ", start + 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    [script] = [b for b in blocks if "pvmove" in b and "--finish" not in b]
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "root", "-L", "16M", "vgmv", devs[0])
    work = env.tmp / "readme"
    work.mkdir()
    script = script.replace("/dev/sdb", devs[0]).replace("/dev/sdc", devs[1]).replace("/mnt/", f"{work}/mnt/")
    locks = work / "locks"
    locks.mkdir()
    script = re.sub(r"(vgfs mount [^\n#]*?)(\s*#|\n)", rf"\1 -o lvm_lock_dir={locks}\2", script, count=1)
    path = f"{VGFS_BIN.parent}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    try:
        r = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=dict(os.environ, PATH=path),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"root\s+pv1:0-3", r.stdout), r.stdout
    finally:
        if is_mounted(work / "mnt" / "vg"):
            subprocess.run(["fusermount3", "-u", str(work / "mnt" / "vg")], capture_output=True)
    lvm.run("vgck", "vgmv")
    assert lvm_lvs(lvm, "vgmv") == {"root": [f"{devs[1]}:0-3"]}


class VgckSampler:
    """LVM2's vgck in a loop on a thread until stop(): LVM2 must accept the
    VG at any instant of a job, its commits included."""

    def __init__(self, lvm: Lvm, vg: str):
        self.lvm, self.vg = lvm, vg
        self.failures: list[str] = []
        self.count = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            r = lvm_try(self.lvm, "vgck", self.vg)
            self.count += 1
            if r.returncode != 0:
                self.failures.append(f"vgck exit {r.returncode}: {r.stdout}{r.stderr}")

    def start(self) -> "VgckSampler":
        self.thread.start()
        return self

    def stop(self) -> int:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "vgck is stuck"
        return self.count


def kill_daemon(env, m) -> None:
    for pid in m.pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in m.pids:
        while pid_alive(pid):
            time.sleep(0.01)
    env.unmount(m)


def test_sigkill_at_random_points_under_writers(env, lvm):
    """SIGKILL of the daemon at seeded random instants of one move (printed
    seed; VGFS_SIGKILL_SEED=N replays one) while two writers write against
    a model: twice while it copies, once right around the switch commit.
    LVM2's vgck is sampled while the job runs (it must accept the metadata
    at any instant, hidden LVs included); after each kill LVM2's vgck and
    lvs -a agree with vgfs's lvs -a, every completed write is on the LV,
    and the remount resumes the job at or past its persisted checkpoint."""
    seed = int(os.environ.get("VGFS_SIGKILL_SEED", str(random.SystemRandom().randrange(1 << 30))))
    print(f"VGFS_SIGKILL_SEED={seed}")
    rng = random.Random(seed)
    devs = make_vg(lvm)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "a", "-L", "32M", "vgmv", devs[0])
    m = mount(env, *devs)
    model = LvModel(32 * MiB, data=fill(m.lv("a"), 32 * MiB, seed))
    assert env.vgfs("move", m.mp, "a", "pv1", "--limit", "8MiB").returncode == 0
    running = {"a": ["pv0:0-7"], "[vgfs_move1]": ["pv1:0-7"], "[vgfs_move1_rec]": ["pv0:8-8"]}
    done = {"a": ["pv1:0-7"]}
    persisted, samples, outcomes = 0, [], []
    for kill in ("copy", "copy", "switch"):
        what = f"seed {seed}, kill #{len(outcomes) + 1} ({kill})"
        writers = RandomWriters(model, m.lv("a"), n=2, seed=rng.randrange(1 << 30), pause=0.01).start()
        sampler = VgckSampler(lvm, "vgmv").start()
        try:
            if kill == "copy":   # a random instant of the rate-limited copy
                at = time.monotonic() + rng.uniform(0.2, 1.5)
                while time.monotonic() < at:
                    st = job_status(m, 1)
                    assert st["sync_status"] in ("copying", "resyncing", "synchronized"), f"{what}: {st}"
                    persisted = max(persisted, job_int(st, "checkpoint_pointer"))
                    time.sleep(0.01)
            else:   # unthrottled; killed a random 0-30 ms after the copy reached the end
                ctl_ok(m, "limit 1 0")
                deadline = time.monotonic() + 60
                while True:
                    st = job_status(m, 1)
                    if st["sync_status"] == "completed" or job_int(st, "progress_pointer") >= 32 * MiB:
                        break
                    assert time.monotonic() < deadline, f"{what}: {st}"
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.03))
        finally:
            kill_daemon(env, m)
            writers.stop(killed=True)
            samples.append(sampler.stop())
        assert not sampler.failures, f"{what}: vgck failed while the job ran: {sampler.failures[0]}"
        ck = lvm_try(lvm, "vgck", "vgmv")
        assert ck.returncode == 0, f"{what}: vgck after the kill: {ck.stderr}"
        lvs = by_pv_name(lvm_lvs(lvm, "vgmv"), devs)
        assert lvs == vgfs_lvs_a(env, *devs), f"{what}: LVM2 and vgfs differ: {lvs}"
        assert lvs in (running, done), f"{what}: {lvs}"
        outcomes.append("running" if lvs == running else "done")
        m = mount(env, *devs)
        model.adopt_after_kill(m.lv("a"), what)
        if lvs == running:   # resumed (and, when it had copied everything, maybe switched already)
            st = job_status(m, 1)
            assert st["sync_status"] in ("copying", "resyncing", "synchronized", "completed"), f"{what}: {st}"
            assert job_int(st, "checkpoint_pointer") >= persisted, (what, st, persisted)
            if st["sync_status"] != "completed":
                ctl_ok(m, "limit 1 8MiB")
    print(f"seed {seed}: vgck samples while the job ran {samples}; after the kills {outcomes}")
    if outcomes[-1] == "running" and job_status(m, 1)["sync_status"] != "completed":
        ctl_ok(m, "limit 1 0")
        assert wait_job(m, 1, timeout=60)["sync_status"] == "completed", f"seed {seed}"
    assert model.first_difference(m.lv("a")) is None, f"seed {seed}"
    m.unmount()
    lvm.run("vgck", "vgmv")
    assert by_pv_name(lvm_lvs(lvm, "vgmv"), devs) == done
