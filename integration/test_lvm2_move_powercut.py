"""Power cuts during a move on an LVM2 VG (docs/lvm2.md, "Moves"; issue 12;
the rig of docs/powercut.md): LVM2 makes the VG on two PVs, the PVs are then
served through the powercut nbdkit plugin (a volatile write cache: at the
cut a seeded random subset of the unflushed writes lands, torn at 512-byte
sectors), vgfs mounts them from their paths and moves a 16 MiB LV from pv0
to pv1 while a writer writes random data and fsyncs every two writes.

The power goes off inside the commit that starts the job (at each of its
metadata-area writes, at the request right after each, at the flush of the
zeroed record), while it copies (at a record write, right after one, at a
flush) and inside the switch commit (at each metadata-area write and right
after each). After each cut:

- LVM2's `vgck` and `pvck` pass on loop devices over the images, and its
  `lvs -a --segments -o lv_name,seg_pe_ranges` equals `vgfs lvs -a` of the
  same images: the VG as it was, the job's hidden LVs, or the LV moved
  (and not the first when `move` answered ok);
- a read-only mount reads every fsync'd byte exactly (bytes of writes not
  yet acknowledged may be old or new), and a job's record is at or past the
  checkpoint the job showed before the cut;
- a read-write mount resumes the job and finishes it, the LV then reads
  what it read right after the cut, and LVM2 sees the LV on pv1 alone.

Seeded; VGFS_POWERCUT_SEED=N explores other seeds, VGFS_POWERCUT_POINTS=2,9
runs only those cut points.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time

import pytest

from test_lvm2_mount import mount
from vgfstest import AckWriter, ctl, ctl_ok, job_int, job_status, pread_full, wait_job
from vgfstest.lvm2 import lvm_try
from vgfstest.mounts import is_mounted, pid_alive

MiB = 1 << 20
PV_SIZE = 24 * MiB
LV_SIZE = 16 * MiB
RATE = "4MiB"
# The metadata area pvcreate makes: header at 4 KiB, ring up to pe_start (1 MiB).
MDA_RANGE = f"{4096}-{1 * MiB}"
NEVER = 1 << 40
SEED = int(os.environ.get("VGFS_POWERCUT_SEED", "0"))
ACTIVE = ("copying", "resyncing", "synchronized")

# The three states LVM2 and vgfs may show after a cut (PE ranges by PV name).
BEFORE = {"lva": ["pv0:0-15"]}
DONE = {"lva": ["pv1:0-15"]}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def lvm2_vg(env, lvm, rig) -> bytes:
    """LVM2's VG vgpm on the rig's base images (1 MiB extents): lva, 16
    extents on pv0, filled with random bytes through vgfs; snapshot "filled"."""
    rig.make_bases(PV_SIZE)
    devs = [lvm.attach(rig.base(p)) for p in ("pv0", "pv1")]
    lvm.run("pvcreate", "-q", *devs)
    lvm.run("vgcreate", "-q", "-s", "1m", "vgpm", *devs)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lva", "-L", f"{LV_SIZE >> 20}M", "vgpm", devs[0])
    lvm.detach_all()
    data = random.Random(99 + SEED).randbytes(LV_SIZE)
    m = mount(env, lvm, rig.link("pv0"), rig.link("pv1"))
    fd = os.open(m.lv("lva"), os.O_WRONLY)
    try:
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    m.unmount()
    rig.save("filled")
    return data


def lvm2_view(lvm, rig) -> tuple[str, dict]:
    """LVM2 on loop devices over the base images: (problem or "", LV ->
    seg_pe_ranges with the PV names pv0/pv1 for the devices)."""
    try:
        devs = {lvm.attach(rig.base(p)): p for p in ("pv0", "pv1")}
        ck = lvm_try(lvm, "vgck", "vgpm")
        if ck.returncode != 0:
            return f"vgck failed ({ck.returncode}): {ck.stdout}{ck.stderr}", {}
        pk = lvm_try(lvm, "pvck", *devs)
        if pk.returncode != 0:
            return f"pvck failed ({pk.returncode}): {pk.stdout}{pk.stderr}", {}
        out: dict[str, list[str]] = {}
        for row in lvm.report("lvs", "seg", "-a", "--segments", "-o", "lv_name,seg_pe_ranges", "vgpm"):
            ranges = row["seg_pe_ranges"]
            for dev, pv in devs.items():
                ranges = ranges.replace(f"{dev}:", f"{pv}:")
            out.setdefault(row["lv_name"], []).append(ranges)
        return "", out
    finally:
        lvm.detach_all()


def vgfs_view(env, rig) -> tuple[str, dict]:
    """`vgfs lvs -a --segments` of the base images, offline."""
    import json
    r = env.vgfs("lvs", "-a", "--reportformat", "json", "-o", "lv_name,seg_pe_ranges",
                 rig.base("pv0"), rig.base("pv1"))
    if r.returncode != 0:
        return f"vgfs lvs failed: {r.stderr}", {}
    out: dict[str, list[str]] = {}
    for row in json.loads(r.stdout)["report"][0]["lv"]:
        out.setdefault(row["lv_name"], []).append(row["seg_pe_ranges"])
    return "", out


def running(record_pe: int) -> dict:
    return {"lva": ["pv0:0-15"], "[vgfs_move1]": ["pv1:0-15"], "[vgfs_move1_rec]": [f"pv0:{record_pe}-{record_pe}"]}


def read_lv(m) -> bytes:
    fd = os.open(m.lv("lva"), os.O_RDONLY)
    try:
        return pread_full(fd, LV_SIZE, 0)
    finally:
        os.close(fd)


def power_off(env, m) -> None:
    """The machine is off: SIGKILL the daemon, drop its dead FUSE mount."""
    for pid in m.pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in m.pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    env.unmount(m)


class Boot:
    """One boot: the images of snapshot "filled", the rig up, vgfs mounted
    from the PV links, a writer, the move, the cut, the power off."""

    def __init__(self, env, lvm, rig, data: bytes):
        self.env, self.lvm, self.rig, self.data = env, lvm, rig, data

    def run(self, point: dict, seed: int):
        """Returns (move answered ok, the checkpoint seen before the cut,
        writer, plugin log, counters at the end, whether the cut came from
        a trigger)."""
        point = dict(point)
        phase, writer_on = point.pop("phase"), point.pop("writer", "on") == "on"
        after_done = point.pop("after_done", False)
        self.rig.restore("filled")
        self.rig.start()
        m = mount(self.env, self.lvm, self.rig.link("pv0"), self.rig.link("pv1"))
        writer = AckWriter(m.lv("lva"), self.data, seed).start()
        ok, ckpt, counters = False, 0, {}
        try:
            deadline = time.monotonic() + 20
            while writer.acks < 3:   # some acknowledged writes before anything else
                assert time.monotonic() < deadline and writer.error is None, writer.error
                time.sleep(0.005)
            if phase == "start":
                if not writer_on:
                    writer.stop()
                self.rig.arm(seed=seed, tear=True, **point)
            err, reply = ctl(m, f"move lva pv1 limit={RATE}")
            ok = err == 0 and reply.startswith("ok job 1")
            if phase == "start":
                counters = self.rig.counters()
            else:
                assert ok, reply
                while ckpt == 0:   # the job has a durable checkpoint
                    st = job_status(m, 1)
                    assert st["sync_status"] in ACTIVE, f"job ended before its first checkpoint: {st}"
                    ckpt = job_int(st, "checkpoint_pointer")
                    assert time.monotonic() < deadline, f"no checkpoint in 20s: {st}"
                    time.sleep(0.02)
                if not writer_on:
                    writer.stop()
                self.rig.arm(seed=seed, tear=True, **point)
                if phase == "switch":
                    ctl_ok(m, "limit 1 0")
                deadline = time.monotonic() + 20
                while not self.rig.is_cut and time.monotonic() < deadline:
                    st = job_status(m, 1)
                    if st["sync_status"] in ACTIVE:
                        ckpt = max(ckpt, job_int(st, "checkpoint_pointer"))
                    elif after_done:
                        break
                    time.sleep(0.01)
                counters = self.rig.counters()
            triggered = self.rig.is_cut
            self.rig.cut_now()
        finally:
            power_off(self.env, m)
            writer.stop()
        return ok, ckpt, writer, self.rig.stop(), counters, triggered


def check_after_cut(env, lvm, rig, what: str, ok: bool, ckpt: int, writer, record_pe: int) -> str:
    """The checks of one cut (module docstring); returns which state it left."""
    problem, l2 = lvm2_view(lvm, rig)
    assert not problem, f"{what}\nLVM2: {problem}"
    problem, vg = vgfs_view(env, rig)
    assert not problem, f"{what}\n{problem}"
    assert l2 == vg, f"{what}\nLVM2's lvs -a: {l2}\nvgfs lvs -a:  {vg}"
    states = {"before": BEFORE, "running": running(record_pe), "done": DONE}
    state = next((k for k, v in states.items() if v == l2), None)
    assert state, f"{what}\nneither before, running nor done: {l2}"
    assert not (ok and state == "before"), f"{what}\nmove answered ok, but the job is lost"

    m = mount(env, lvm, rig.link("pv0"), rig.link("pv1"), opts="ro")
    try:
        if state == "running":
            st = job_status(m, 1)
            assert st["sync_status"] in ACTIVE, f"{what}\nthe job after the cut: {st}"
            assert job_int(st, "progress_pointer") >= ckpt, (
                f"{what}\nthe record says P={job_int(st, 'progress_pointer')}, below the checkpoint {ckpt} "
                f"the job showed before the cut")
        s1 = read_lv(m)
    finally:
        m.unmount()
    writer.check(s1, f"{what}\nafter the cut")

    m = mount(env, lvm, rig.link("pv0"), rig.link("pv1"))
    try:
        if state == "running":   # resumed; done already when it had copied everything
            if job_status(m, 1)["sync_status"] != "completed":
                ctl(m, "limit 1 0")
            st = wait_job(m, 1, timeout=60)
            assert st["sync_status"] == "completed", f"{what}\nthe resumed job: {st}"
        s2 = read_lv(m)
    finally:
        m.unmount()
    if s2 != s1:
        off = next(j for j in range(0, LV_SIZE, 512) if s1[j:j + 512] != s2[j:j + 512])
        raise AssertionError(f"{what}\nfinishing the job changed what the LV reads at byte {off}")
    problem, l2 = lvm2_view(lvm, rig)
    assert not problem, f"{what}\nLVM2 after the resumed job: {problem}"
    assert l2 == (BEFORE if state == "before" else DONE), f"{what}\nLVM2 after the resumed job: {l2}"
    return state


def test_move_on_lvm2_vg_cut_at_start_copy_and_switch(power_rig, env, lvm):
    rig = power_rig(["pv0", "pv1"])
    data = lvm2_vg(env, lvm, rig)
    boot = Boot(env, lvm, rig, data)

    # Dry runs: the cut only after the start commit's reply, then only after
    # the job completed, every unflushed write kept: how many metadata-area
    # writes each commit makes, and where the record is.
    never = dict(cut_at_write=f"{MDA_RANGE}:{NEVER}", keep=100)
    ok, _, writer, _, start, _ = boot.run(dict(phase="start", **never), seed=1)
    assert ok, start
    problem, l2 = lvm2_view(lvm, rig)
    assert not problem and set(l2) == {"lva", "[vgfs_move1]", "[vgfs_move1_rec]"}, (problem, l2)
    [rec] = l2["[vgfs_move1_rec]"]
    record_pe = int(rec.split(":")[1].split("-")[0])
    assert l2 == running(record_pe), l2
    ok, _, writer, _, switch, _ = boot.run(dict(phase="switch", after_done=True, **never), seed=2)
    problem, l2 = lvm2_view(lvm, rig)
    assert not problem and l2 == DONE, (problem, l2)
    start_writes, switch_writes = start["range-writes"], switch["range-writes"]
    # Text, precommit and commit headers on each PV (docs/lvm2.md, "Commit protocol as built").
    assert start_writes >= 6 and switch_writes >= 6, (start, switch)
    pe_start = 1 * MiB
    rec_range = f"{pe_start + record_pe * MiB}-{pe_start + (record_pe + 1) * MiB}"

    torn = dict(keep=100, torn=100, tear_sectors="even")
    points = ([dict(phase="start", cut_at_write=f"{MDA_RANGE}:{k}", **torn) for k in range(1, start_writes + 1)]
              + [dict(phase="start", cut_after_write=f"{MDA_RANGE}:{k}", keep_last=1) for k in (2, 4, 6)]
              + [dict(phase="start", writer="off", cut_at_flush=1, keep=0),   # the zeroed record's flush
                 dict(phase="copy", cut_at_write=f"{rec_range}:1", **torn),
                 dict(phase="copy", cut_after_write=f"{rec_range}:1", keep_last=1),
                 dict(phase="copy", writer="off", cut_at_flush=1, keep=0),
                 dict(phase="copy", cut_at_flush=3)]
              + [dict(phase="switch", cut_at_write=f"{MDA_RANGE}:{k}", **torn) for k in range(1, switch_writes + 1)]
              + [dict(phase="switch", writer="off", cut_after_write=f"{MDA_RANGE}:{k}", keep_last=1)
                 for k in (1, 3, 5)]
              + [dict(phase="switch", after_done=True, keep=0)])   # right after the switch, the cache lost
    only = os.environ.get("VGFS_POWERCUT_POINTS")
    rng = random.Random(4343 + SEED)
    outcomes = []
    for i, point in enumerate(points):
        seed = rng.randrange(1 << 30)
        if only and str(i) not in only.split(","):
            continue
        ok, ckpt, writer, log, _, triggered = boot.run(point, seed)
        what = (f"cut #{i} {point} seed={seed}: move {'ok' if ok else 'not ok'}, checkpoint {ckpt}, "
                f"{writer.acks} fsyncs acknowledged\n" + "\n".join(log))
        if not point.get("after_done"):
            assert triggered, f"{what}\nthe cut point was never reached"
        outcomes.append(check_after_cut(env, lvm, rig, what, ok, ckpt, writer, record_pe))
    print(f"start commit: {start_writes} metadata writes, switch: {switch_writes}; outcomes {outcomes}")
    if not only:
        assert {"before", "running", "done"} <= set(outcomes), outcomes
