"""SIGKILL of the vgfs daemon during migration (docs/migration.md rules 5-6): at every
kill point, fsync'ed writes survive, the job resumes with the same id from
(at least) its persisted progress pointer, and it completes with the LV
content equal to the model."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

from vgfstest import (MiB, LvModel, LvSpec, PvSpec, ctl, ctl_ok, is_mounted, job_int, job_status, lv_map, pv_allocated,
                      start_slow_job, wait_job, warm_up_lv)

SIZE = 64 * MiB
LIMIT = "32MiB"
ACTIVE = ("copying", "resyncing", "synchronized")
ORDER = {"copying": 0, "resyncing": 1, "synchronized": 2, "completed": 3}


def make_vg(env):
    return env.make_vg(
        name="vgcrash",
        pvs=[PvSpec("pv0", "pv0.img", "300MiB"), PvSpec("pv1", "pv1.img", "300MiB")],
        lvs=[LvSpec("lv0", extents=[("0-63", "pv0", "0-63")])],
        extent_size="1MiB",
    )


class Crasher:
    """Holds the current foreground mount; kills and remounts it."""

    def __init__(self, env, vg):
        self.env, self.vg = env, vg
        self.mp = env.new_mountpoint()
        self.m = env.mount(vg.config, self.mp, foreground=True)
        self.kills: list[dict] = []

    def kill_and_remount(self):
        pid = self.m.proc.pid
        os.kill(pid, signal.SIGKILL)
        self.m.proc.wait(timeout=10)
        self.env.unmount(self.m)          # fusermount3 -u of the dead mount
        assert not os.path.ismount(self.mp)
        self.m = self.env.mount(self.vg.config, self.mp, foreground=True)
        return self.m


def status(m, job: int) -> dict:
    """jobs/<job>/status; a running job's status file must never vanish.
    On ENOENT, reports what .vgfs/jobs lists and whether the file comes back."""
    try:
        return job_status(m, job)
    except FileNotFoundError:
        if not is_mounted(m.mp):
            rc = None
            if m.proc is not None:
                try:
                    rc = m.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    rc = "still running"
            raise AssertionError(f"the vgfs mount went away while job {job} ran (daemon exit status {rc}); "
                                 f"stderr: {m.stderr()[-2000:]!r}") from None
        listing = sorted(os.listdir(m.meta / "jobs"))
        back = None
        for i in range(20):
            time.sleep(0.1)
            if (m.meta / "jobs" / str(job) / "status").exists():
                back = (i + 1) * 0.1
                break
        raise AssertionError(f"jobs/{job}/status of a running job vanished (ENOENT); .vgfs/jobs lists "
                             f"{listing}; " + (f"back after {back:.1f}s" if back else "still gone after 2s"))


def write_some(m, fd, model: LvModel, rng, p: int, n: int = 4):
    """n random writes, mostly below the progress pointer p (already copied,
    so they dirty regions), one anywhere."""
    for i in range(n):
        if p >= 64 * 1024 and i < n - 1:
            model.random_write(fd, rng, 0, p, min_len=512, max_len=96 * 1024)
        else:
            model.random_write(fd, rng, 0, SIZE, min_len=512, max_len=96 * 1024)


def kill_at(c: Crasher, model: LvModel, job: int, target: str, frac: float | None, rng, timeout=40) -> dict | None:
    """Writes while waiting for the job to reach `target` (copying with
    P >= frac*SIZE, or the sync_status `target`), then does a last batch of
    writes + fsync, records the status and SIGKILLs the daemon. Remounts and
    checks the job and the data. Returns the kill record, or None when the
    job completed before the target was reached."""
    m = c.m
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        deadline = time.monotonic() + timeout
        while True:
            st = status(m, job)
            ph, p = st["sync_status"], job_int(st, "progress_pointer")
            if ph == "completed":
                return None
            assert ph in ACTIVE, f"job {job} went {ph} while waiting for {target}: {st}"
            if target == "copying":
                if ph != "copying" or p >= frac * SIZE:
                    break
            elif ORDER[ph] >= ORDER[target]:
                break
            assert time.monotonic() < deadline, f"job {job} never reached {target}: {st}"
            write_some(m, fd, model, rng, p)
            time.sleep(0.01)
        # The writes that must survive the kill.
        write_some(m, fd, model, rng, p, n=6)
        os.fsync(fd)
        before = status(m, job)
    finally:
        os.close(fd)
    m = c.kill_and_remount()
    after = status(m, job)
    rec = {"target": target, "frac": frac, "phase": before["sync_status"],
           "p_before": job_int(before, "progress_pointer"), "ckpt_before": job_int(before, "checkpoint_pointer"),
           "p_after": job_int(after, "progress_pointer"), "phase_after": after["sync_status"]}
    c.kills.append(rec)
    print(f"kill #{len(c.kills)}: {rec}")
    what = f"kill #{len(c.kills)} {rec}"
    assert after["job"] == str(job), f"{what}: job record gone or renumbered: {after}"
    for k in ("lv", "le_range", "source", "destination", "size"):
        assert after[k] == before[k], f"{what}: {k} changed across the crash: {before[k]} -> {after[k]}"
    assert after["sync_status"] not in ("aborted", "failed"), f"{what}: job ended {after}"
    if rec["phase"] == "copying":
        assert after["sync_status"] in ACTIVE, f"{what}: a job killed while copying is {after['sync_status']}"
    if rec["ckpt_before"] > 0:
        assert rec["p_after"] >= rec["ckpt_before"], (
            f"{what}: progress pointer after remount {rec['p_after']} is below the checkpoint "
            f"{rec['ckpt_before']} persisted before the kill (restarted from scratch?)")
    assert after["paused"] == "no", after
    model.assert_equals(m.lv("lv0"), what)
    return rec


def unlimit(m, job):
    err, reply = ctl(m, f"limit {job} 0")
    if err:
        assert job_status(m, job)["sync_status"] == "completed", f"limit {job} 0: {reply!r}"


PLAN = ([("copying", f) for f in (0.15, 0.4, 0.65, 0.9)]
        + [("resyncing", None)] * 2 + [("synchronized", None)] * 2)


def test_sigkill_at_many_points_during_migration(env):
    vg = make_vg(env)
    vg.create()
    c = Crasher(env, vg)
    rng = random.Random(2024)
    data = rng.randbytes(SIZE)
    model = LvModel(SIZE, data=data)
    fd = os.open(c.m.lv("lv0"), os.O_RDWR)
    try:
        for off in range(0, SIZE, 4 * MiB):
            os.pwrite(fd, data[off:off + 4 * MiB], off)
        os.fsync(fd)
    finally:
        os.close(fd)

    dest = "pv1"
    rounds = 0
    while len(c.kills) < 22 and rounds < 5:
        rounds += 1
        warm_up_lv(c.m, "lv0", dest)
        job = start_slow_job(c.m, f"move lv0 {dest}", limit=LIMIT, max_fraction=0.5)
        for target, frac in PLAN:
            if kill_at(c, model, job, target, frac, rng) is None:
                break
        unlimit(c.m, job)
        st = wait_job(c.m, job, timeout=60)
        assert st["sync_status"] == "completed", st
        assert job_int(st, "dirty_regions") == 0, st
        model.assert_equals(c.m.lv("lv0"), f"after job {job} completed")
        runs = lv_map(c.m, "lv0")
        assert [r[2] for r in runs] == [dest] and sum(r[1] for r in runs) == 64, runs
        src = "pv0" if dest == "pv1" else "pv1"
        assert pv_allocated(c.m, src) == [], f"source PEs of job {job} not freed"
        dest = src

    phases = [k["phase"] for k in c.kills]
    summary = "\n".join(str(k) for k in c.kills)
    assert len(c.kills) >= 20, f"only {len(c.kills)} kills:\n{summary}"
    assert phases.count("copying") >= 1, f"no kill while copying:\n{summary}"
    assert sum(p in ("resyncing", "synchronized") for p in phases) >= 1, (
        f"no kill while resyncing/synchronized:\n{summary}")
    on_target = sum(k["phase"] == k["target"] for k in c.kills)
    assert on_target * 2 > len(c.kills), f"most kills missed their phase:\n{summary}"
    assert any(k["ckpt_before"] > 0 for k in c.kills), summary

    c.m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"vgfs check after the crashes: {r.stdout}{r.stderr}"
    m = env.mount(vg.config, c.mp)
    model.assert_equals(m.lv("lv0"), "after the last clean remount")


def test_sigkill_while_paused_and_after_completion(env):
    vg = make_vg(env)
    vg.create()
    c = Crasher(env, vg)
    rng = random.Random(7)
    data = rng.randbytes(SIZE)
    model = LvModel(SIZE, data=data)
    fd = os.open(c.m.lv("lv0"), os.O_RDWR)
    try:
        for off in range(0, SIZE, 4 * MiB):
            os.pwrite(fd, data[off:off + 4 * MiB], off)
        os.fsync(fd)
    finally:
        os.close(fd)

    warm_up_lv(c.m, "lv0", "pv1")
    job = start_slow_job(c.m, "move lv0 pv1", limit="8MiB")
    deadline = time.monotonic() + 20
    while job_int(job_status(c.m, job), "progress_pointer") < 16 * MiB:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ctl_ok(c.m, f"pause {job}")
    time.sleep(0.2)
    st = job_status(c.m, job)
    assert st["paused"] == "yes", st
    p = job_int(st, "progress_pointer")
    assert job_int(st, "checkpoint_pointer") == p, f"no checkpoint at pause: {st}"
    fd = os.open(c.m.lv("lv0"), os.O_RDWR)
    try:
        for i in range(6):            # below P, while paused
            model.write(fd, i * 2 * MiB + 777, rng.randbytes(3000))
        os.fsync(fd)
    finally:
        os.close(fd)
    m = c.kill_and_remount()
    st = job_status(m, job)
    assert st["paused"] == "yes", f"pause flag lost by a crash: {st}"
    assert st["sync_status"] == "copying", st
    assert job_int(st, "progress_pointer") == p, f"paused job moved across the crash: {p} -> {st}"
    assert job_int(st, "dirty_regions") >= 6, f"dirty bits of writes made while paused lost: {st}"
    model.assert_equals(m.lv("lv0"), "after a kill while paused")
    time.sleep(1.0)
    assert job_int(job_status(m, job), "progress_pointer") == p, "a paused job ran after remount"

    ctl_ok(m, f"limit {job} 0")
    ctl_ok(m, f"resume {job}")
    st = wait_job(m, job, timeout=30)
    assert st["sync_status"] == "completed", st
    # The switch is one durable metadata commit: kill right after it.
    m = c.kill_and_remount()
    st = job_status(m, job)
    assert st["sync_status"] == "completed", f"completed job not completed after a crash: {st}"
    runs = lv_map(m, "lv0")
    assert [r[2] for r in runs] == ["pv1"], runs
    assert pv_allocated(m, "pv0") == []
    model.assert_equals(m.lv("lv0"), "after a kill right after completion")
