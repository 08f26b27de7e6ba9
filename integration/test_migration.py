"""Online migration (docs/migration.md; README.md "Control file", "Commands"):
moves of whole LVs and LE ranges while the LV is written (threads with an
in-memory model, fio with verification, ext4 on a loop device), abort / pause
/ resume / limit, refusals through the control file, pvmove and concurrent
jobs."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vgfstest import (VGFS_BIN, MiB, LvModel, LvSpec, PvSpec, RandomWriters, ctl, ctl_ok, job_int, job_status, lv_map,
                      parse_int_bytes, pv_allocated, pv_map, read_kv, read_pv_bytes, reply_job_ids, sha256_file,
                      start_slow_job, wait_job, warm_up_lv)

ACTIVE = ("copying", "resyncing", "synchronized")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def two_pv_vg(env, lv_mib=64, pv_size="300MiB", extent_size="1MiB", name="vgm", extra_lvs=(), pvs=None):
    """pv0/pv1 of `pv_size`; lv0 of `lv_mib` extents (1 MiB) at PE 0 of pv0."""
    es = int(extent_size.replace("MiB", ""))
    n = lv_mib // es
    return env.make_vg(
        name=name,
        pvs=pvs or [PvSpec("pv0", "pv0.img", pv_size), PvSpec("pv1", "pv1.img", pv_size)],
        lvs=[LvSpec("lv0", extents=[(f"0-{n - 1}", "pv0", f"0-{n - 1}")])] + list(extra_lvs),
        extent_size=extent_size,
    )


def fill_lv(m, lv: str, size: int, seed: int) -> LvModel:
    """Writes random data over the whole LV; returns the model."""
    data = random.Random(seed).randbytes(size)
    fd = os.open(m.lv(lv), os.O_RDWR)
    try:
        model = LvModel(size, data=data)
        for off in range(0, size, 4 * MiB):
            os.pwrite(fd, data[off:off + 4 * MiB], off)
        os.fsync(fd)
    finally:
        os.close(fd)
    return model


class PhaseWatch:
    """Polls a job's status from a thread; `phase()` is the last sync_status
    seen, `seen` every status in order of appearance, `max_dirty` the
    largest dirty_regions."""

    def __init__(self, m, job: int, interval: float = 0.03):
        self.m, self.job, self.interval = m, job, interval
        self.current = "before"
        self.seen: list[str] = []
        self.max_dirty = 0
        self.last: dict[str, str] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                st = job_status(self.m, self.job)
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                return
            self.last = st
            ph = st.get("sync_status", "?")
            self.current = ph
            if not self.seen or self.seen[-1] != ph:
                self.seen.append(ph)
            self.max_dirty = max(self.max_dirty, int(st.get("dirty_regions", "0") or 0))
            if ph in ("completed", "aborted", "failed"):
                return
            time.sleep(self.interval)

    def phase(self) -> str:
        return self.current

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(timeout=10)
        assert not self.errors, f"status polling failed: {self.errors}"


def assert_pv_image_holds(vg, pe_starts, runs, model: LvModel, es: int, what: str):
    """Reads the PV images directly (VG unmounted) at pe_start + PE*es for
    each (le, count, pv, pe) run and compares with the model."""
    for le, n, pv, pe in runs:
        got = read_pv_bytes(vg.pv_path(pv), pe_starts[pv] + pe * es, n * es)
        want = bytes(model.buf[le * es:(le + n) * es])
        if got != want:
            for i in range(0, len(want), 4096):
                if got[i:i + 4096] != want[i:i + 4096]:
                    raise AssertionError(f"{what}: PV {pv} image differs from the model at LE {le} "
                                         f"+ byte {i} (PE {pe + i // es} of {pv})")
            raise AssertionError(f"{what}: PV {pv} image is short at LE {le}")


def fill_pattern(m, lv: str, size: int) -> None:
    """Non-zero data over the whole LV, quickly (content not checked)."""
    chunk = bytes(range(256)) * (4 * MiB // 256)
    fd = os.open(m.lv(lv), os.O_RDWR)
    try:
        for off in range(0, size, 4 * MiB):
            os.pwrite(fd, chunk, off)
        os.fsync(fd)
    finally:
        os.close(fd)


def vg_state(m) -> tuple:
    """Everything a refused command must leave alone: seqno, every LV and PV
    map, and the list of job ids with their ranges."""
    j = m.vg_json()
    jobs = sorted((x["job"], x["lv"], x["le_range"], x["source"], x["destination"]) for x in j.get("jobs", []))
    maps = {}
    for lv in j["lvs"]:
        maps["lv:" + lv["name"]] = (m.meta / "lvs" / lv["name"] / "map").read_text()
    for pv in j["pvs"]:
        maps["pv:" + pv["name"]] = (m.meta / "pvs" / pv["name"] / "map").read_text()
    return j["seqno"], maps, jobs


def fio_available():
    if shutil.which("fio") is None:
        pytest.skip("fio not installed")


# --------------------------------------------------------------------------
# moves under writes
# --------------------------------------------------------------------------

def test_move_whole_lv_under_random_writers(env):
    size = 128 * MiB
    es = MiB
    vg = two_pv_vg(env, lv_mib=128, pv_size="400MiB")
    vg.create()
    m = vg.mount()
    model = fill_lv(m, "lv0", size, seed=11)
    lvpath = m.lv("lv0")
    warm_up_lv(m, "lv0", "pv1")

    phase = {"now": "before"}
    writers = RandomWriters(model, lvpath, n=4, seed=5, phase=lambda: phase["now"]).start()
    watch = None
    try:
        time.sleep(0.2)
        job = start_slow_job(m, "move lv0 pv1", limit="32MiB")
        watch = PhaseWatch(m, job).start()
        phase["now"] = "started"
        while watch.current == "before":
            time.sleep(0.01)
        writers.phase = watch.phase
        st = wait_job(m, job, timeout=45)
        time.sleep(0.5)       # writes after the switch go to the destination
    finally:
        per_phase = writers.stop()
        if watch:
            watch.stop()
    assert st["sync_status"] == "completed", st
    assert per_phase.get("copying", 0) > 0, f"no write landed while copying: {per_phase}"
    assert per_phase.get("completed", 0) > 0, f"no write landed after the switch: {per_phase}"
    assert watch.max_dirty > 0, "writes below the progress pointer never set a dirty bit"
    assert job_int(st, "dirty_regions") == 0, st
    assert job_int(st, "progress_pointer") == size, st
    assert job_int(st, "size") == size, st
    assert st["lv"] == "lv0" and st["le_range"] == "0-127", st
    assert st["source"] == "pv0 0-127", st
    dest_pv, dest_range = st["destination"].split()
    assert dest_pv == "pv1", st
    dest_first = int(dest_range.split("-")[0])

    model.assert_equals(lvpath, "after the move")
    runs = lv_map(m, "lv0")
    assert runs == [(0, 128, "pv1", dest_first)], f"LV map after the move: {runs}"
    assert pv_allocated(m, "pv0") == [], f"source PEs not freed: {pv_map(m, 'pv0')}"
    assert pv_allocated(m, "pv1") == [(dest_first, 128, "lv0", 0)], pv_map(m, "pv1")
    pe_starts = {pv: m.pe_start(pv) for pv in ("pv0", "pv1")}
    m.unmount()

    assert_pv_image_holds(vg, pe_starts, runs, model, es, "PV image after unmount")
    m2 = vg.mount()
    model.assert_equals(m2.lv("lv0"), "after remount")
    assert lv_map(m2, "lv0") == runs
    assert job_status(m2, job)["sync_status"] == "completed"
    m2.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"vgfs check after the move: {r.stdout}{r.stderr}"


def test_move_le_subrange_under_writes(env):
    size = 128 * MiB
    vg = two_pv_vg(env, lv_mib=128, pv_size="400MiB")
    vg.create()
    m = vg.mount()
    model = fill_lv(m, "lv0", size, seed=12)
    lvpath = m.lv("lv0")
    warm_up_lv(m, "lv0", "pv1")

    phase = {"now": "before"}
    writers = RandomWriters(model, lvpath, n=3, seed=6, phase=lambda: phase["now"]).start()
    watch = None
    try:
        time.sleep(0.2)
        job = start_slow_job(m, "move lv0:10-100 pv1", limit="16MiB")
        watch = PhaseWatch(m, job).start()
        phase["now"] = "started"
        while watch.current == "before":
            time.sleep(0.01)
        writers.phase = watch.phase
        st0 = job_status(m, job)
        assert st0["le_range"] == "10-100" and st0["source"] == "pv0 10-100", st0
        assert job_int(st0, "size") == 91 * MiB, st0
        st = wait_job(m, job, timeout=60)
        time.sleep(0.3)
    finally:
        per_phase = writers.stop()
        if watch:
            watch.stop()
    assert st["sync_status"] == "completed", st
    assert per_phase.get("copying", 0) > 0, per_phase
    dest_first = int(st["destination"].split()[1].split("-")[0])
    model.assert_equals(lvpath, "after the sub-range move")
    runs = lv_map(m, "lv0")
    assert runs == [(0, 10, "pv0", 0), (10, 91, "pv1", dest_first), (101, 27, "pv0", 101)], runs
    assert pv_allocated(m, "pv0") == [(0, 10, "lv0", 0), (101, 27, "lv0", 101)], pv_map(m, "pv0")
    assert pv_allocated(m, "pv1") == [(dest_first, 91, "lv0", 10)], pv_map(m, "pv1")
    m.unmount()
    m2 = vg.mount()
    model.assert_equals(m2.lv("lv0"), "sub-range move, after remount")
    assert lv_map(m2, "lv0") == runs


def test_move_converges_under_fio_randwrite_with_verify(env):
    fio_available()
    size = 64 * MiB
    vg = two_pv_vg(env, lv_mib=64)
    vg.create()
    m = vg.mount()
    lvpath = m.lv("lv0")
    warm_up_lv(m, "lv0", "pv1")
    fio_out = env.tmp / "fio.json"
    fio_err = env.tmp / "fio.err"
    loops = 3
    # Each loop writes every 4 KiB block of the LV once in random order at
    # 4000 IOPS (~4 s), then reads all of them back and checks them.
    argv = ["fio", "--name=w", f"--filename={lvpath}", "--rw=randwrite", "--bs=4k", "--direct=1",
            "--ioengine=psync", f"--size={size}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
            f"--loops={loops}", "--rate_iops=,4000", "--randrepeat=0", "--verify_state_save=0", "--output-format=json",
            f"--output={fio_out}"]
    with open(fio_err, "w") as err:
        fio = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                               cwd=env.tmp)
    try:
        time.sleep(1.0)
        assert fio.poll() is None, f"fio ended early: {fio_err.read_text()}"
        job = start_slow_job(m, "move lv0 pv1", limit="32MiB", max_fraction=0.6)
        seen, max_dirty = [], 0
        deadline = time.monotonic() + 60
        st = job_status(m, job)
        while True:
            st = job_status(m, job)
            ph = st["sync_status"]
            if not seen or seen[-1] != ph:
                seen.append(ph)
            max_dirty = max(max_dirty, job_int(st, "dirty_regions"))
            if ph in ("completed", "aborted", "failed"):
                break
            assert fio.poll() is None, (f"fio finished (rc={fio.returncode}) before the move converged; "
                                        f"phases {seen}, status {st}")
            assert time.monotonic() < deadline, f"move did not converge in 60 s under fio: {seen} {st}"
            time.sleep(0.05)
        fio_running_at_completion = fio.poll() is None
        assert st["sync_status"] == "completed", st
        assert fio_running_at_completion, "fio had already finished when the move completed"
        assert max_dirty > 0 and job_int(st, "copied_bytes") > size, (
            f"the move was not loaded by fio writes (max dirty {max_dirty}, status {st})")
        rc = fio.wait(timeout=120)
    finally:
        if fio.poll() is None:
            fio.terminate()
            fio.wait(timeout=30)
    assert rc == 0, f"fio (verify) failed rc={rc}\n{fio_err.read_text()}\n{fio_out.read_text()[-3000:]}"
    res = json.loads(fio_out.read_text())["jobs"][0]
    assert res["error"] == 0, res["error"]
    assert res["write"]["total_ios"] == loops * size // 4096, res["write"]["total_ios"]
    assert res["read"]["total_ios"] == loops * size // 4096, "fio did not verify every block"
    runs = lv_map(m, "lv0")
    assert [r[2] for r in runs] == ["pv1"], runs
    assert pv_allocated(m, "pv0") == []


def _regular_files(root: Path) -> dict[str, str]:
    out = {}
    for r, dirs, files in os.walk(root):
        if "lost+found" in dirs:
            dirs.remove("lost+found")
        for name in files:
            p = Path(r) / name
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = sha256_file(p)
    return out


def test_move_under_ext4_file_copy(env):
    srcs = [p for p in (Path("/usr/include/linux"), Path("/usr/include/c++")) if p.is_dir()]
    if not srcs:
        pytest.skip("no /usr/include tree to copy")
    src_sums = {}
    for s in srcs:
        for k, v in _regular_files(s).items():
            src_sums[f"{s.name}/{k}"] = v

    vg = env.make_vg(
        name="vgext",
        pvs=[PvSpec("pv0", "pv0.img", "400MiB"), PvSpec("pv1", "pv1.img", "400MiB")],
        lvs=[LvSpec("lvfs", extents=[("0-47", "pv0", "2-49")])],
        extent_size="4MiB",
    )
    vg.create()
    m = vg.mount()
    lvfile = m.lv("lvfs")
    fill_pattern(m, "lvfs", 192 * MiB)
    warm_up_lv(m, "lvfs", "pv1")
    dev = env.losetup(lvfile)
    env.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", dev], check=True)
    ext = env.tmp / "ext"
    env.mount_ext4(dev, ext)

    job = start_slow_job(m, "move lvfs pv1", limit="40MiB")
    done = threading.Event()
    copies: list[str] = []          # trees fully copied (the last two are kept)
    during_move = []                # trees finished while the move ran
    failures: list[str] = []

    def copier():
        try:
            give_up = time.monotonic() + 120
            k = -1
            while time.monotonic() < give_up:
                k += 1
                dst = ext / f"tree{k}"
                dst.mkdir()
                r = subprocess.run(["cp", "-a"] + [str(s) for s in srcs] + [str(dst)],
                                   capture_output=True, text=True, timeout=120)
                if r.returncode != 0:
                    failures.append(f"cp -a into {dst}: {r.stderr}")
                    return
                subprocess.run(["sync", "-f", str(dst)], capture_output=True, timeout=120)
                copies.append(dst.name)
                if not done.is_set():
                    during_move.append(dst.name)
                if len(copies) > 2:
                    shutil.rmtree(ext / copies.pop(0))
                if done.is_set():
                    return
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))

    t = threading.Thread(target=copier, daemon=True)
    t.start()
    seen = []
    try:
        deadline = time.monotonic() + 90
        while True:
            st = job_status(m, job)
            if not seen or seen[-1] != st["sync_status"]:
                seen.append(st["sync_status"])
            if st["sync_status"] in ("completed", "aborted", "failed"):
                break
            assert time.monotonic() < deadline, f"move under ext4 did not finish: {st}"
            assert t.is_alive() or failures, "copier stopped early"
            time.sleep(0.05)
    finally:
        done.set()
        t.join(timeout=180)
    assert not failures, failures
    assert st["sync_status"] == "completed", st
    assert during_move, "no tree copy finished while the move ran"
    os.sync()
    for name in copies:
        assert _regular_files(ext / name) == src_sums, f"{name}: files differ from the source tree"
    env.umount_ext4(ext)
    env.loop_detach(dev)
    r = env.run(["e2fsck", "-fn", str(lvfile)])
    assert r.returncode == 0, f"e2fsck -fn after the move: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    runs = lv_map(m, "lvfs")
    assert [x[2] for x in runs] == ["pv1"], runs
    assert pv_allocated(m, "pv0") == []

    # Read the tree back from disk (fresh ext4 mount, no page cache).
    dev2 = env.losetup(lvfile, read_only=True)
    env.mount_ext4(dev2, ext, read_only=True)
    for name in copies:
        assert _regular_files(ext / name) == src_sums, f"{name}: files differ after re-mounting ext4"
    env.umount_ext4(ext)
    env.loop_detach(dev2)
    m.unmount()


# --------------------------------------------------------------------------
# abort, pause, resume, limit
# --------------------------------------------------------------------------

def test_abort_midway_leaves_source_untouched(env):
    size = 128 * MiB
    vg = two_pv_vg(env, lv_mib=128, pv_size="400MiB")
    vg.create()
    m = vg.mount()
    model = fill_lv(m, "lv0", size, seed=21)
    warm_up_lv(m, "lv0", "pv1")
    map_before = lv_map(m, "lv0")
    pv0_before = pv_map(m, "pv0")

    # CLI move --wait follows the job; it must exit 1 when the job is aborted.
    follower = subprocess.Popen([str(VGFS_BIN), "move", str(m.mp), "lv0", "pv1", "--wait"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True)
    try:
        first = follower.stdout.readline()
        job = reply_job_ids(first.strip())[0]
        ctl_ok(m, f"limit {job} 16MiB")
        st = job_status(m, job)
        dest = st["destination"].split()
        dest_first = int(dest[1].split("-")[0])
        assert pv_allocated(m, "pv1") == [(dest_first, 128, "lv0", 0, f"job {job}")], pv_map(m, "pv1")
        # writes during the job, above and below the progress pointer
        fd = os.open(m.lv("lv0"), os.O_RDWR)
        rng = random.Random(3)
        try:
            t_end = time.monotonic() + 1.5
            while time.monotonic() < t_end:
                model.random_write(fd, rng, max_len=256 * 1024)
            p = job_int(job_status(m, job), "progress_pointer")
            assert 0 < p < size, f"progress pointer {p} not mid-way"
            for _ in range(20):    # below P: dirty regions
                model.random_write(fd, rng, 0, p, max_len=64 * 1024)
            os.fsync(fd)
        finally:
            os.close(fd)
        r = env.vgfs("abort", m.mp, job)
        assert r.returncode == 0, f"vgfs abort: {r.stdout}{r.stderr}"
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.terminate()
            follower.wait(timeout=10)
    assert follower.returncode == 1, (f"vgfs move --wait must exit 1 for an aborted job: "
                                      f"rc={follower.returncode} out={out[-300:]!r} err={err!r}")
    st = job_status(m, job)
    assert st["sync_status"] == "aborted", st
    assert job_int(st, "progress_pointer") < size, st
    model.assert_equals(m.lv("lv0"), "after abort")
    assert lv_map(m, "lv0") == map_before, "LV map changed by an aborted job"
    assert pv_map(m, "pv0") == pv0_before, "source PV map changed by an aborted job"
    assert pv_allocated(m, "pv1") == [], f"destination PEs not freed after abort: {pv_map(m, 'pv1')}"
    err_, reply = ctl(m, f"abort {job}")
    assert err_ != 0 and reply.startswith("error: "), (
        f"abort of an aborted job must be refused: errno={err_} reply={reply!r}")
    m.unmount()
    m2 = vg.mount()
    assert job_status(m2, job)["sync_status"] == "aborted"
    model.assert_equals(m2.lv("lv0"), "after abort and remount")
    assert lv_map(m2, "lv0") == map_before
    assert pv_allocated(m2, "pv1") == []


def test_pause_stops_the_copier_and_resume_completes(env):
    size = 128 * MiB
    vg = two_pv_vg(env, lv_mib=128, pv_size="400MiB")
    vg.create()
    m = vg.mount()
    model = fill_lv(m, "lv0", size, seed=31)
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="8MiB")
    deadline = time.monotonic() + 20
    while job_int(job_status(m, job), "progress_pointer") < 8 * MiB:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = env.vgfs("pause", m.mp, job)
    assert r.returncode == 0, r.stderr
    time.sleep(0.3)      # the region being copied may finish
    st1 = job_status(m, job)
    assert st1["paused"] == "yes", st1
    assert st1["sync_status"] == "copying", st1
    p1 = job_int(st1, "progress_pointer")
    assert job_int(st1, "checkpoint_pointer") == p1, f"no checkpoint at pause: {st1}"
    # writes below P while paused are still tracked
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    rng = random.Random(4)
    try:
        for i in range(8):
            model.write(fd, i * MiB + 1000, rng.randbytes(5000))
        os.fsync(fd)
    finally:
        os.close(fd)
    time.sleep(1.5)
    st2 = job_status(m, job)
    assert job_int(st2, "progress_pointer") == p1, f"progress advanced while paused: {p1} -> {st2}"
    assert job_int(st2, "dirty_regions") >= 8, f"writes below P while paused not tracked: {st2}"
    assert st2["paused"] == "yes"
    ctl_ok(m, f"limit {job} 0")
    r = env.vgfs("resume", m.mp, job)
    assert r.returncode == 0, r.stderr
    st = wait_job(m, job, timeout=30)
    assert st["sync_status"] == "completed" and st["paused"] == "no", st
    model.assert_equals(m.lv("lv0"), "after pause/resume")
    assert [x[2] for x in lv_map(m, "lv0")] == ["pv1"]


def test_limit_caps_the_copy_rate(env):
    size = 128 * MiB
    vg = two_pv_vg(env, lv_mib=128, pv_size="400MiB")
    vg.create()
    m = vg.mount()
    model = fill_lv(m, "lv0", size, seed=41)
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="4MiB", max_fraction=0.6)
    time.sleep(0.5)
    st_a, t_a = job_status(m, job), time.monotonic()
    time.sleep(2.0)
    st_b, t_b = job_status(m, job), time.monotonic()
    rate = (job_int(st_b, "copied_bytes") - job_int(st_a, "copied_bytes")) / (t_b - t_a)
    assert 0 < rate < 8 * MiB, f"with limit 4MiB the job copied {rate / MiB:.1f} MiB/s"
    assert job_int(st_b, "rate_limit") == 4 * MiB, st_b
    assert 0 < job_int(st_b, "rate") < 8 * MiB, f"rate field with limit 4MiB: {st_b['rate']}"
    # the CLI form changes the limit of a running job; 0 = no limit
    r = env.vgfs("limit", m.mp, job, "0")
    assert r.returncode == 0, r.stderr
    st = wait_job(m, job, timeout=20)
    assert st["sync_status"] == "completed", st
    model.assert_equals(m.lv("lv0"), "after a rate-limited move")


# --------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------

def assert_refused(m, command, want_errno, before, needle=None):
    err, reply = ctl(m, command)
    assert err == want_errno, (f"{command!r}: expected errno {errno.errorcode[want_errno]}, got "
                               f"{errno.errorcode.get(err, err) if err else 'success'}; reply={reply!r}")
    assert reply.startswith("error: ") and reply.endswith("\n") and reply.count("\n") == 1, (
        f"{command!r}: reply must be one 'error: ...' line, got {reply!r}")
    assert len(reply.strip()) > len("error: ") + 5, f"{command!r}: empty error sentence {reply!r}"
    if needle:
        assert needle.lower() in reply.lower(), f"{command!r}: expected {needle!r} in {reply!r}"
    after = vg_state(m)
    assert after == before, f"{command!r} was refused but changed the VG:\nbefore={before}\nafter={after}"
    return reply


def test_refusals_change_nothing(env):
    vg = env.make_vg(
        name="vgref",
        pvs=[PvSpec("pv0", "pv0.img", "300MiB"), PvSpec("pv1", "pv1.img", "300MiB"),
             PvSpec("pv2", "pv2.img", "20MiB")],
        lvs=[LvSpec("lv0", extents=[("0-191", "pv0", "0-191")]),
             LvSpec("lv1", extents=[("0-15", "pv0", "200-215")])],
        extent_size="1MiB",
    )
    vg.create()
    m = vg.mount()
    fill_pattern(m, "lv0", 192 * MiB)      # data, not holes: the copy takes time
    pv2_free = parse_int_bytes(read_kv(m.meta / "pvs" / "pv2" / "info")["free_pe"])
    assert 0 < pv2_free < 16, f"pv2 should have a few free PEs, has {pv2_free}"
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="1MiB")
    before = vg_state(m)

    assert_refused(m, "move lv0:5-6 pv2", errno.EBUSY, before)
    assert_refused(m, "move lv0 pv1", errno.EBUSY, before)
    assert_refused(m, "pvmove pv0", errno.EBUSY, before)
    assert_refused(m, "move lv1 pv2", errno.ENOSPC, before)
    assert_refused(m, "move lvz pv1", errno.ENOENT, before, "lvz")
    assert_refused(m, "move lv1 pvz", errno.ENOENT, before, "pvz")
    assert_refused(m, "pvmove pvz", errno.ENOENT, before, "pvz")
    for cmd in ("abort 99", "pause 99", "resume 99", "limit 99 1MiB"):
        assert_refused(m, cmd, errno.ENOENT, before, "99")
    for cmd in ("move", "move lv0", "abort x", f"limit {job} fast", "frob", "move lv1:3-1 pv1",
                "move lv1:0-x pv1"):
        assert_refused(m, cmd, errno.EINVAL, before)
    # the CLI reports a refusal as one line and exit 1
    r = env.vgfs("move", m.mp, "lvz", "pv1")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("vgfs: ") and "lvz" in lines[0], (
        f"rc={r.returncode} stderr={r.stderr!r}")
    assert vg_state(m) == before
    # the running job was not disturbed
    st = job_status(m, job)
    assert st["sync_status"] == "copying" and st["paused"] == "no", st
    ctl_ok(m, f"abort {job}")
    assert wait_job(m, job, timeout=20)["sync_status"] == "aborted"


def test_read_only_mount_refuses_and_runs_no_job(env):
    size = 128 * MiB
    vg = two_pv_vg(env, lv_mib=128, pv_size="400MiB")
    vg.create()
    m = vg.mount()
    model = fill_lv(m, "lv0", size, seed=51)
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="2MiB")
    time.sleep(1.2)
    m.unmount()                       # the unfinished job is checkpointed
    hashes = vg.pv_hashes()

    ro = vg.mount(opts="ro")
    st_a = job_status(ro, job)
    assert st_a["sync_status"] == "copying", st_a
    before = vg_state(ro)
    for cmd in ("move lv0:0-3 pv1", "pvmove pv0", f"abort {job}", f"pause {job}", f"limit {job} 1MiB"):
        # `-o ro` reaches the kernel: opening the control file for writing
        # fails with EROFS before vgfs sees the command.
        with pytest.raises(OSError) as ei:
            ctl(ro, cmd)
        assert ei.value.errno == errno.EROFS, f"{cmd!r} on a read-only mount: {ei.value}"
        assert vg_state(ro) == before
    model.assert_equals(ro.lv("lv0"), "read-only mount")
    time.sleep(1.2)
    st_b = job_status(ro, job)
    assert job_int(st_b, "progress_pointer") == job_int(st_a, "progress_pointer"), (
        f"a job ran on a read-only mount: {st_a['progress_pointer']} -> {st_b['progress_pointer']}")
    ro.unmount()
    assert vg.pv_hashes() == hashes, "a read-only mount changed the PV images"

    m2 = vg.mount()
    ctl_ok(m2, f"limit {job} 0")
    st = wait_job(m2, job, timeout=30)
    assert st["sync_status"] == "completed", st
    model.assert_equals(m2.lv("lv0"), "job resumed after the read-only mount")


# --------------------------------------------------------------------------
# pvmove, concurrent jobs
# --------------------------------------------------------------------------

def test_pvmove_empties_the_pv(env):
    vg = env.make_vg(
        name="vgpv",
        pvs=[PvSpec("pv0", "pv0.img", "200MiB"), PvSpec("pv1", "pv1.img", "200MiB"),
             PvSpec("pv2", "pv2.img", "200MiB")],
        lvs=[LvSpec("lv0", extents=[("0-19", "pv0", "0-19"), ("20-29", "pv1", "0-9"),
                                    ("30-39", "pv0", "40-49")]),
             LvSpec("lv1", extents=[("0-9", "pv1", "20-29"), ("10-24", "pv0", "60-74")])],
        extent_size="1MiB",
    )
    vg.create()
    m = vg.mount()
    m0 = fill_lv(m, "lv0", 40 * MiB, seed=61)
    m1 = fill_lv(m, "lv1", 25 * MiB, seed=62)
    err, reply = ctl(m, "pvmove pv0 pv2")
    assert err == 0, reply
    jobs = reply_job_ids(reply)
    assert len(jobs) == 3, f"pvmove of three source runs should start three jobs: {reply!r}"
    fds = [os.open(m.lv("lv0"), os.O_RDWR), os.open(m.lv("lv1"), os.O_RDWR)]
    rng = random.Random(7)
    try:
        for _ in range(60):
            m0.random_write(fds[0], rng, max_len=128 * 1024)
            m1.random_write(fds[1], rng, max_len=128 * 1024)
    finally:
        for fd in fds:
            os.close(fd)
    for j in jobs:
        st = wait_job(m, j, timeout=60)
        assert st["sync_status"] == "completed", st
        assert st["destination"].split()[0] == "pv2", st
    assert pv_allocated(m, "pv0") == [], f"pvmove left extents on pv0: {pv_map(m, 'pv0')}"
    assert [r[2] for r in pv_map(m, "pv0")] == ["free"]
    assert (20, 10, "pv1", 0) in lv_map(m, "lv0") and (0, 10, "pv1", 20) in lv_map(m, "lv1")
    assert {r[2] for r in lv_map(m, "lv0")} == {"pv1", "pv2"}
    m0.assert_equals(m.lv("lv0"), "lv0 after pvmove")
    m1.assert_equals(m.lv("lv1"), "lv1 after pvmove")
    assert sum(r[1] for r in pv_allocated(m, "pv2")) == 45
    # a PV with nothing on it: pvmove has nothing to do and changes nothing
    before = vg_state(m)
    err, reply = ctl(m, "pvmove pv0")
    assert vg_state(m)[1:] == before[1:], f"pvmove of an empty PV changed maps/jobs: {reply!r}"
    m.unmount()
    m2 = vg.mount()
    m0.assert_equals(m2.lv("lv0"), "lv0 after pvmove and remount")
    m1.assert_equals(m2.lv("lv1"), "lv1 after pvmove and remount")
    assert pv_allocated(m2, "pv0") == []


def test_concurrent_jobs_on_disjoint_ranges(env):
    vg = env.make_vg(
        name="vgcc",
        pvs=[PvSpec("pv0", "pv0.img", "400MiB"), PvSpec("pv1", "pv1.img", "400MiB"),
             PvSpec("pv2", "pv2.img", "400MiB")],
        lvs=[LvSpec("lv0", extents=[("0-127", "pv0", "0-127")]),
             LvSpec("lv1", extents=[("0-63", "pv0", "150-213")])],
        extent_size="1MiB",
    )
    vg.create()
    m = vg.mount()
    m0 = fill_lv(m, "lv0", 128 * MiB, seed=71)
    m1 = fill_lv(m, "lv1", 64 * MiB, seed=72)
    warm_up_lv(m, "lv0", "pv1")
    warm_up_lv(m, "lv1", "pv2")
    ja = start_slow_job(m, "move lv0:0-63 pv1", limit="16MiB", max_fraction=0.5)
    jb = start_slow_job(m, "move lv0:64-127 pv2", limit="16MiB", max_fraction=0.5)
    jc = start_slow_job(m, "move lv1 pv1", limit="16MiB", max_fraction=0.5)
    assert len({ja, jb, jc}) == 3
    w0 = RandomWriters(m0, m.lv("lv0"), n=2, seed=8).start()
    w1 = RandomWriters(m1, m.lv("lv1"), n=1, seed=9).start()
    all_active_seen = False
    try:
        deadline = time.monotonic() + 60
        while True:
            sts = [job_status(m, j)["sync_status"] for j in (ja, jb, jc)]
            if all(s in ACTIVE for s in sts):
                all_active_seen = True
            if all(s in ("completed", "aborted", "failed") for s in sts):
                break
            assert time.monotonic() < deadline, f"concurrent jobs did not finish: {sts}"
            time.sleep(0.05)
    finally:
        w0.stop()
        w1.stop()
    assert sts == ["completed"] * 3, sts
    assert all_active_seen, "the three jobs never ran at the same time"
    m0.assert_equals(m.lv("lv0"), "lv0 after two concurrent range moves")
    m1.assert_equals(m.lv("lv1"), "lv1 after a concurrent move")
    assert [r[2] for r in lv_map(m, "lv0")] == ["pv1", "pv2"], lv_map(m, "lv0")
    assert [r[2] for r in lv_map(m, "lv1")] == ["pv1"], lv_map(m, "lv1")
    assert pv_allocated(m, "pv0") == []
    # the CLI lists them
    r = env.vgfs("jobs", m.mp, "--json")
    assert r.returncode == 0, r.stderr
    listed = {j["job"]: j["sync_status"] for j in json.loads(r.stdout)}
    assert all(listed.get(j) == "completed" for j in (ja, jb, jc)), listed
    # and a follow-up move with --wait exits 0 once completed
    r = env.vgfs("move", m.mp, "lv1", "pv2", "--wait", timeout=60)
    assert r.returncode == 0, f"vgfs move --wait: rc={r.returncode}\n{r.stdout[-500:]}\n{r.stderr}"
    assert r.stdout.startswith("ok job "), r.stdout[:200]
    assert [x[2] for x in lv_map(m, "lv1")] == ["pv2"]
    m1.assert_equals(m.lv("lv1"), "lv1 after vgfs move --wait")
