"""A migration destination that starts failing I/O mid-copy (docs/migration.md rule 7):
the job ends `failed` with the error as reason, the destination PEs are freed,
and the LV goes on serving (reads and writes) from the source.

The failing destination PV is a file exposed by nbdfuse over nbdkit's file
plugin with the error filter: writes fail with EIO while a trigger file
exists (Debian packages nbdkit and libnbd-bin)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from vgfstest import (MiB, LvModel, LvSpec, PvSpec, ctl, is_mounted, job_int, job_status, lv_map, pid_alive,
                      pv_allocated, pv_map, start_job, start_slow_job, wait_job, warm_up_lv)

SIZE = 64 * MiB


class NbdFile:
    """nbdkit (file plugin + error filter) behind nbdfuse: `path` is a file
    whose writes fail with EIO while `trigger` exists."""

    def __init__(self, base: Path, size: int):
        self.base = base
        self.backing = base / "dest-backing.img"
        self.mnt = base / "nbd"
        self.path = self.mnt / "pv1.img"
        self.trigger = base / "trigger"
        self.pidfile = base / "nbdfuse.pid"
        self.log = base / "nbdfuse.log"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.mnt.mkdir()
        with open(self.backing, "wb") as f:
            f.truncate(size)

    def start(self):
        argv = ["nbdfuse", "-P", str(self.pidfile), str(self.path),
                "--command", "nbdkit", "-s", "--filter=error", "file", str(self.backing),
                "error=EIO", "error-pwrite-rate=100%", f"error-pwrite-file={self.trigger}",
                "error-zero-rate=100%", f"error-zero-file={self.trigger}",
                "error-trim-rate=100%", f"error-trim-file={self.trigger}"]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.pidfile.exists() and self.pidfile.read_text().strip() and is_mounted(self.mnt):
                break
            if self.proc.poll() not in (None, 0):
                break
            time.sleep(0.05)
        if self.pidfile.exists() and self.pidfile.read_text().strip():
            self.pid = int(self.pidfile.read_text().strip())
        if not (is_mounted(self.mnt) and self.path.exists()):
            self.stop()
            raise AssertionError(f"nbdfuse did not come up: {self.log.read_text()}")

    def stop(self):
        if self.trigger.exists():
            self.trigger.unlink()
        if is_mounted(self.mnt):
            for _ in range(40):
                r = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True, text=True)
                if r.returncode == 0 or not is_mounted(self.mnt):
                    break
                time.sleep(0.25)
            else:
                subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pid is not None:
            deadline = time.monotonic() + 20
            while pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def ensure_nbd_tools():
    missing = [t for t in ("nbdkit", "nbdfuse") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages nbdkit, libnbd-bin)")
    r = subprocess.run(["nbdkit", "--dump-plugin", "file"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"nbdkit file plugin unavailable: {r.stderr.strip()}")
    r = subprocess.run(["nbdkit", "--filter=error", "null", "--dump-config"], capture_output=True, text=True)
    if r.returncode != 0 and "error" in r.stderr and "filter" in r.stderr:
        pytest.skip(f"nbdkit error filter unavailable: {r.stderr.strip()}")


@pytest.fixture
def nbd_dest(tmp_path_factory):
    """Requested before `env`, so its teardown (unmount nbdfuse) runs after
    the vgfs mounts that use the file are gone. Lives outside the test's
    tmp_path so env's leak check does not see it."""
    ensure_nbd_tools()
    nbd = NbdFile(tmp_path_factory.mktemp("nbd"), 300 * MiB)
    nbd.start()
    try:
        yield nbd
    finally:
        nbd.stop()


def fill(m, seed) -> LvModel:
    data = random.Random(seed).randbytes(SIZE)
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        for off in range(0, SIZE, 4 * MiB):
            os.pwrite(fd, data[off:off + 4 * MiB], off)
        os.fsync(fd)
    finally:
        os.close(fd)
    return LvModel(SIZE, data=data)


def test_destination_io_error_fails_the_job(nbd_dest, env):
    vg = env.make_vg(
        name="vgfault",
        pvs=[PvSpec("pv0", "pv0.img", "300MiB"), PvSpec("pv1", str(nbd_dest.path), None)],
        lvs=[LvSpec("lv0", extents=[("0-63", "pv0", "0-63")])],
        extent_size="1MiB",
    )
    vg.create()
    m = vg.mount()
    model = fill(m, 91)
    runs_before = lv_map(m, "lv0")
    pv0_before = pv_map(m, "pv0")
    rng = random.Random(5)

    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="8MiB", max_fraction=0.2)
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        deadline = time.monotonic() + 20
        while True:
            st = job_status(m, job)
            assert st["sync_status"] == "copying", st
            p = job_int(st, "progress_pointer")
            if p >= 16 * MiB:
                break
            assert time.monotonic() < deadline, st
            model.random_write(fd, rng, max_len=64 * 1024)
            time.sleep(0.02)
        for _ in range(10):                        # below and above P
            model.random_write(fd, rng, 0, p, max_len=64 * 1024)
            model.random_write(fd, rng, p, SIZE, max_len=64 * 1024)
        os.fsync(fd)

        nbd_dest.trigger.touch()
        deadline = time.monotonic() + 30
        writes_during = 0
        while True:
            st = job_status(m, job)
            if st["sync_status"] not in ("copying", "resyncing", "synchronized"):
                break
            assert time.monotonic() < deadline, f"job did not fail on a failing destination: {st}"
            model.random_write(fd, rng, max_len=64 * 1024)    # the LV keeps serving
            writes_during += 1
            time.sleep(0.02)
        for _ in range(20):
            model.random_write(fd, rng, max_len=256 * 1024)
        os.fsync(fd)
    finally:
        os.close(fd)

    assert st["sync_status"] == "failed", f"expected failed, got {st}"
    reason = st.get("reason", "")
    assert reason.strip(), f"failed job without a reason: {st}"
    assert "pv1" in reason or "input/output" in reason.lower() or "eio" in reason.lower(), reason
    assert job_int(st, "progress_pointer") < SIZE, st
    model.assert_equals(m.lv("lv0"), "after the destination failed")
    assert lv_map(m, "lv0") == runs_before, "LV map changed by a failed job"
    assert pv_map(m, "pv0") == pv0_before, "source PV map changed by a failed job"
    assert pv_allocated(m, "pv1") == [], f"destination PEs not freed after failure: {pv_map(m, 'pv1')}"
    vgj = m.vg_json()
    jj = [j for j in vgj["jobs"] if j["job"] == job]
    assert jj and jj[0]["sync_status"] == "failed" and jj[0]["reason"], jj

    # A failed job is over: commands on it are refused and change nothing.
    for cmd in (f"abort {job}", f"pause {job}", f"resume {job}", f"limit {job} 1MiB"):
        err, reply = ctl(m, cmd)
        assert err != 0 and reply.startswith("error: "), f"{cmd!r} on a failed job: errno={err} {reply!r}"
    assert job_status(m, job)["sync_status"] == "failed"

    # The device recovers; the failed job stays failed across a remount.
    nbd_dest.trigger.unlink()
    m.unmount()
    m2 = vg.mount()
    st = job_status(m2, job)
    assert st["sync_status"] == "failed" and st["reason"].strip(), st
    model.assert_equals(m2.lv("lv0"), "failed job, after remount")
    assert lv_map(m2, "lv0") == runs_before
    assert pv_allocated(m2, "pv1") == []

    # A new move onto the recovered PV completes.
    job2 = start_job(m2, "move lv0 pv1")
    assert job2 != job
    st = wait_job(m2, job2, timeout=60)
    assert st["sync_status"] == "completed", st
    model.assert_equals(m2.lv("lv0"), "after a move onto the recovered PV")
    assert [r[2] for r in lv_map(m2, "lv0")] == ["pv1"]
    m2.unmount()
