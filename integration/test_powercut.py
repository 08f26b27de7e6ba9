"""Power cuts through the powercut nbdkit plugin (docs/powercut.md): the PVs
keep every unflushed write in memory and, at a cut, a seeded random subset
of them lands on the base images, torn at 512-byte sectors. Cut points are
exact: the Nth flush, or the Nth write to the metadata slots or to the
migration area, counted from an arm right before the operation.

- every metadata command, cut at each of its flushes and slot writes and
  right after its reply: the VG loads, in the old or the new state, and in
  the new one whenever the command answered ok;
- `vgfs create`, cut at each flush and label/slot write: a valid VG or a
  clean refusal that `create --force` then fixes;
- migrations under a writer that fsyncs: every acknowledged write survives,
  the job resumes from at least its last durable checkpoint, and finishing
  the job does not change one byte of what the LV reads after the cut."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import zlib

import pytest

from vgfstest import (AckWriter, KiB, MiB, LvSpec, PvSpec, assert_one_line_error, ctl, ctl_ok, job_int, job_status,
                      lv_map, pread_full, wait_job)
from powercut.rig import MIGRATION_AREA, SLOTS

PV_SIZE = 32 * MiB
SLOT_RANGE = f"{SLOTS[0]}-{SLOTS[1]}"
AREA_RANGE = f"{MIGRATION_AREA[0]}-{MIGRATION_AREA[1]}"
NEVER = 1 << 40
# Another seed for every random choice, to explore beyond the fixed run.
SEED = int(os.environ.get("VGFS_POWERCUT_SEED", "0"))


def state_of(env, vg) -> tuple[int, str, str]:
    """(rc, normalized metadata, stderr) from an offline `vgfs dump`: UUIDs
    and the sequence number left out, so two runs of one command compare."""
    r = env.vgfs("dump", vg.config)
    text = "\n".join(l for l in r.stdout.splitlines()
                     if not l.strip().startswith(("uuid:", "seqno:", "#")))
    return r.returncode, text, r.stderr


def kill_mount(env, m) -> None:
    """The machine is off: SIGKILL the daemon, drop its dead FUSE mount."""
    if m.proc is not None and m.proc.poll() is None:
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(timeout=10)
    env.unmount(m)


# --------------------------------------------------------------------------
# Metadata commands
# --------------------------------------------------------------------------

def lifecycle_vg(env, rig):
    """pv0, pv1 (in the config) with lva, lvb; snapshot "plain" at seqno 2,
    where PEs 0-2 of pv1 are free but hold the bytes of a removed LV, and
    "withpv2" (pv2 pvadd'ed, not in the config) at seqno 4. Even seqnos:
    the commands under test commit to slot 1, so a commit that wrongly
    overwrites slot 0 destroys the only copy of the old state."""
    rig.make_bases(PV_SIZE)
    vg = env.make_vg(name="vgpc", pvs=[PvSpec(p, str(rig.link(p)), None) for p in ("pv0", "pv1")],
                     lvs=[LvSpec("lva", extents=[("0-3", "pv0", "0-3")]),
                          LvSpec("lvb", extents=[("0-3", "pv0", "4-7")]),
                          LvSpec("lvold", extents=[("0-2", "pv1", "0-2")])], extent_size="1MiB")
    vg.create()
    m = env.mount(vg.config)
    fd = os.open(m.lv("lvold"), os.O_RDWR)
    os.pwrite(fd, OLD_BYTES * (3 * MiB), 0)
    os.fsync(fd)
    os.close(fd)
    ctl_ok(m, "lvremove lvold")
    m.unmount()
    rig.save("plain")
    m = env.mount(vg.config)
    ctl_ok(m, f"pvadd {rig.link('pv2')} pv2")
    ctl_ok(m, "lvcreate lvk 1MiB pv0")
    m.unmount()
    rig.save("withpv2")
    rig.restore("plain")
    return vg


OLD_BYTES = b"\xab"


def assert_reads_zeros(env, vg, lv: str, what: str) -> None:
    """A new LV must not show what a removed one left on its PEs."""
    m = env.mount(vg.config, opts="ro")
    try:
        fd = os.open(m.lv(lv), os.O_RDONLY)
        try:
            got = pread_full(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        m.unmount()
    zeros = got.count(0) == len(got)
    assert zeros, (f"{what}\nnew LV {lv} reads old bytes at {len(got) - len(got.lstrip(bytes(1)))}: "
                   f"{got.count(OLD_BYTES)} bytes of the removed LV")


COMMANDS = [
    ("plain", "lvcreate lvc 3MiB pv1"),
    ("plain", "lvextend lva 6MiB"),
    ("plain", "lvreduce lvb 2MiB"),
    ("plain", "lvremove lvb"),
    ("plain", "lvrename lva lvz"),
    ("plain", "pvadd {pv2} pv2"),
    ("withpv2", "pvremove pv2"),
]


class Cycle:
    """One boot of the machine: base images from a snapshot, the rig up, a
    foreground mount, the command, the power off, the state after."""

    def __init__(self, env, rig, vg):
        self.env, self.rig, self.vg = env, rig, vg
        self.mp = env.new_mountpoint()

    def run(self, snapshot: str, command: str, **triggers):
        self.rig.restore(snapshot)
        self.rig.start()
        m = self.env.mount(self.vg.config, self.mp, foreground=True)
        self.rig.arm(**triggers)
        err, reply = ctl(m, command)
        counters = self.rig.counters()
        self.rig.cut_now()
        kill_mount(self.env, m)
        log = self.rig.stop()
        return err == 0 and reply.startswith("ok"), reply, counters, log


@pytest.mark.parametrize("snapshot,command", COMMANDS, ids=[c.split()[0] for _, c in COMMANDS])
def test_metadata_command_cut_at_each_flush(power_rig, env, snapshot, command):
    rig = power_rig(["pv0", "pv1", "pv2"])
    vg = lifecycle_vg(env, rig)
    command = command.format(pv2=rig.link("pv2"))
    c = Cycle(env, rig, vg)

    rig.restore(snapshot)
    rc, old, err = state_of(env, vg)
    assert rc == 0, err
    # Dry run: no cut until after the reply, and no unflushed write lost
    # then (keep=100) to learn the new state and count the flushes.
    ok, reply, counters, _ = c.run(snapshot, command, cut_at_write=f"{SLOT_RANGE}:{NEVER}", keep=100)
    assert ok, f"{command!r}: {reply!r}"
    rc, new, err = state_of(env, vg)
    assert rc == 0, err
    assert new != old, f"{command!r} changed nothing"
    flushes, slot_writes = counters["flushes"], counters["range-writes"]
    assert flushes >= 1 and slot_writes >= 1, counters

    # Each cut point twice: a random subset (keep=50, torn sectors), and
    # the harshest case (keep=0: nothing unflushed lands; at a slot write,
    # keep=100 torn=100: every unflushed write lands torn).
    points = ([dict(cut_at_flush=k) for k in range(1, flushes + 1)]
              + [dict(cut_at_flush=k, keep=0) for k in range(1, flushes + 1)]
              + [dict(cut_at_write=f"{SLOT_RANGE}:{k}") for k in range(1, slot_writes + 1)]
              + [dict(cut_at_write=f"{SLOT_RANGE}:{k}", keep=100, torn=100, tear_sectors="even")
                 for k in range(1, slot_writes + 1)]
              + [dict(), dict(keep=0)])          # cut right after the reply
    rng = random.Random(zlib.crc32(command.encode()) + SEED)
    outcomes = []
    for i, point in enumerate(points):
        seed = rng.randrange(1 << 30)
        ok, reply, counters, log = c.run(snapshot, command, seed=seed, tear=True, **point)
        if "cut_at_flush" in point or "cut_at_write" in point:
            assert log and "cut (at " in " ".join(log), f"{command!r}: cut point {point} never reached: {log}"
        rc, got, err = state_of(env, vg)
        what = (f"{command!r} cut {point or 'after the reply'} seed={seed}: reply {reply.strip()!r}\n"
                + "\n".join(log))
        assert rc == 0, f"{what}\nthe VG does not load: {err}"
        assert got in (old, new), f"{what}\nneither the old nor the new state:\n{got}\nold:\n{old}\nnew:\n{new}"
        if ok:
            assert got == new, f"{what}\nthe command answered ok but its state is lost:\n{got}"
        if "lvc" in got and command.startswith("lvcreate"):
            assert_reads_zeros(env, vg, "lvc", what)
        outcomes.append(("new" if got == new else "old", ok))
    # The read-write mount of what the last cut left repairs and serves it.
    m = env.mount(vg.config)
    assert sorted(os.listdir(m.mp)) == sorted(
        [l["name"] for l in m.vg_json()["lvs"]] + [".vgfs"]), os.listdir(m.mp)
    m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"vgfs check after the repairing mount: {r.stdout}{r.stderr}"
    print(f"{command}: {flushes} flushes, {slot_writes} slot writes; outcomes {outcomes}")


# --------------------------------------------------------------------------
# vgfs create
# --------------------------------------------------------------------------

def test_create_cut_at_each_flush_and_write(power_rig, env):
    rig = power_rig(["pv0", "pv1"])
    rig.make_bases(PV_SIZE)
    vg = env.make_vg(name="vgcr", pvs=[PvSpec(p, str(rig.link(p)), None) for p in ("pv0", "pv1")],
                     lvs=[LvSpec("lva", size="4MiB"), LvSpec("lvb", size="20MiB")], extent_size="1MiB")
    vg.write_config()
    rig.save("blank")
    everything = f"0-{PV_SIZE}"

    def boot_and_create(**triggers):
        rig.restore("blank")
        rig.start()
        rig.arm(**triggers)
        r = env.vgfs("create", vg.config)
        counters = rig.counters()
        rig.cut_now()
        return r, counters, rig.stop()

    r, counters, _ = boot_and_create(cut_at_write=f"{everything}:{NEVER}", keep=100)
    assert r.returncode == 0, r.stderr
    rc, want, err = state_of(env, vg)
    assert rc == 0, err
    assert "lva" in want and "lvb" in want, want
    flushes, writes = counters["flushes"], counters["range-writes"]
    assert flushes >= 2 and writes >= 2, counters

    points = ([dict(cut_at_flush=k) for k in range(1, flushes + 1)]
              + [dict(cut_at_flush=k, keep=0) for k in range(1, flushes + 1)]
              + [dict(cut_at_write=f"{everything}:{k}") for k in range(1, writes + 1)]
              + [dict(cut_at_write=f"{everything}:{k}", keep=100, torn=100) for k in range(1, writes + 1)]
              + [dict(keep=0)])
    rng = random.Random(5 + SEED)
    seen = {"valid VG": 0, "refused": 0}
    for point in points:
        seed = rng.randrange(1 << 30)
        r, _, log = boot_and_create(seed=seed, tear=True, **point)
        what = (f"create cut {point} seed={seed}: create rc={r.returncode} {r.stderr.strip()!r}\n"
                + "\n".join(log))
        rc, got, err = state_of(env, vg)
        if r.returncode == 0:
            assert rc == 0 and got == want, f"{what}\ncreate answered ok but the VG does not load as made: {err}\n{got}"
        if rc == 0:
            assert got == want, f"{what}\na VG loads, but not the one created:\n{got}\nwant:\n{want}"
            seen["valid VG"] += 1
            continue
        # No VG: one clear error, and create (with --force where a PV
        # carries pieces of the interrupted one) makes it.
        assert_one_line_error(subprocess.CompletedProcess(["vgfs", "dump"], rc, "", err))
        seen["refused"] += 1
        again = env.vgfs("create", vg.config)
        if again.returncode != 0:
            assert_one_line_error(again, "--force")
            again = env.vgfs("create", "--force", vg.config)
        assert again.returncode == 0, f"{what}\ncreate after the cut: {again.stderr}"
        rc, got, err = state_of(env, vg)
        assert rc == 0 and got == want, f"{what}\nafter create again: {err}\n{got}"
    print(f"create: {flushes} flushes, {writes} writes; {seen}")
    assert seen["refused"] > 0 and seen["valid VG"] > 0, seen


# --------------------------------------------------------------------------
# Migrations under a writer
# --------------------------------------------------------------------------

LV_SIZE = 16 * MiB
ACTIVE = ("copying", "resyncing", "synchronized")


def read_lv(m, lv="lv0") -> bytes:
    fd = os.open(m.lv(lv), os.O_RDONLY)
    try:
        return pread_full(fd, LV_SIZE, 0)
    finally:
        os.close(fd)


# Where the power goes off, armed once the job has a durable checkpoint
# (P > 0). "writer": the writer keeps going through the cut ("on") or
# stopped right before the arm ("off": the copier's own flushes are the
# only ones, so a checkpoint's missing sync is not papered over by the
# writer's fsyncs). "finish": the job is unthrottled at the arm, so the cut
# can reach the switch commit. Triggers: the Nth flush of any PV, the Nth
# write to the migration area (job records) or to the metadata slots, or
# the request right after such a write (cut_after_write; with keep_last=1
# only that request lands: the write that should have waited for a flush).
MIGRATION_POINTS = [
    dict(writer="on", cut_at_flush=1, keep=0),
    dict(writer="on", cut_at_flush=4),
    dict(writer="on", cut_after_write=f"{AREA_RANGE}:1", keep_last=1),
    dict(writer="on", cut_after_write=f"{AREA_RANGE}:2", keep_last=1),
    dict(writer="on", cut_at_write=f"{AREA_RANGE}:1", keep=100, torn=100, tear_sectors="even"),
    dict(writer="off", cut_at_flush=1, keep=0),
    dict(writer="off", cut_at_flush=2, keep=0),
    dict(writer="off", cut_at_write=f"{AREA_RANGE}:1", keep=100, torn=100, tear_sectors="even"),
    dict(writer="off", cut_at_write=f"{AREA_RANGE}:2", keep=100, torn=100),
    dict(writer="off", cut_after_write=f"{AREA_RANGE}:1", keep_last=1),
    dict(writer="off", finish=True, cut_at_write=f"{SLOT_RANGE}:1", keep=100, torn=100),
    dict(writer="off", finish=True, cut_after_write=f"{SLOT_RANGE}:2", keep=0),
    dict(writer="on", finish=True, cut_at_write=f"{SLOT_RANGE}:2"),
]


def test_migration_cut_keeps_every_fsynced_write(power_rig, env):
    rig = power_rig(["pv0", "pv1"])
    rig.make_bases(48 * MiB)
    vg = env.make_vg(name="vgmv", pvs=[PvSpec(p, str(rig.link(p)), None) for p in ("pv0", "pv1")],
                     lvs=[LvSpec("lv0", extents=[("0-15", "pv0", "0-15")])], extent_size="1MiB")
    vg.create()
    data = random.Random(99).randbytes(LV_SIZE)
    m = env.mount(vg.config)
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    os.close(fd)
    m.unmount()
    rig.save("filled")
    mp = env.new_mountpoint()
    rng = random.Random(4242 + SEED)
    records = []
    only = os.environ.get("VGFS_POWERCUT_POINTS")   # e.g. "2,9": a subset, when exploring
    trace = os.environ.get("VGFS_POWERCUT_TRACE") == "1"
    for i, point in enumerate(MIGRATION_POINTS):
        if only and str(i) not in only.split(","):
            continue
        point = dict(point, trace=trace or None)
        finish, writer_mode = point.pop("finish", False), point.pop("writer")
        seed = rng.randrange(1 << 30)
        rig.restore("filled")
        rig.start()
        m = env.mount(vg.config, mp, foreground=True)
        writer = AckWriter(m.lv("lv0"), data, seed).start()
        err, reply = ctl(m, "move lv0 pv1")
        assert err == 0 and reply.startswith("ok job "), reply
        job = int(reply.split()[2])
        ctl_ok(m, f"limit {job} 4MiB")
        deadline = time.monotonic() + 20
        ckpt = 0
        while ckpt == 0:
            st = job_status(m, job)
            assert st["sync_status"] in ACTIVE, f"job {job} ended before its first checkpoint: {st}"
            ckpt = job_int(st, "checkpoint_pointer")
            assert time.monotonic() < deadline, f"no checkpoint in 20s: {st}"
            time.sleep(0.02)
        if writer_mode == "off":
            writer.stop()
            assert writer.error is None, writer.error
        rig.arm(seed=seed, tear=True, **point)
        if finish:
            ctl_ok(m, f"limit {job} 0")
        before = st
        deadline = time.monotonic() + 20
        while not rig.is_cut and time.monotonic() < deadline:
            st = job_status(m, job)
            if st["sync_status"] in ACTIVE:
                before = st
                ckpt = max(ckpt, job_int(st, "checkpoint_pointer"))
            time.sleep(0.01)
        reached = rig.is_cut
        rig.cut_now()
        writer.stop()
        kill_mount(env, m)
        log = rig.stop()
        if trace:
            for pv in rig.pvs:
                lines = (rig.ctl / f"trace-{pv}").read_text().splitlines()
                print(f"trace of {pv}, last 8 of {len(lines)}:", *lines[-8:], sep="\n  ")
            print(*log, sep="\n")
        what = (f"cut #{i} {point} writer {writer_mode}{', finishing' if finish else ''} seed={seed} "
                f"(job {before['sync_status']}, checkpoint {ckpt}, {writer.acks} fsyncs acknowledged)\n"
                + "\n".join(log))
        assert reached, f"{what}\nthe cut point was never reached"

        # Power back on. A read-only mount runs no job: it shows the record
        # the cut left and reads the LV as the cut left it.
        m = env.mount(vg.config, mp, opts="ro")
        after = job_status(m, job)
        assert after["sync_status"] in ACTIVE + ("completed",), f"{what}\njob after the cut: {after}"
        if after["sync_status"] in ACTIVE:
            assert job_int(after, "progress_pointer") >= ckpt, (
                f"{what}\nthe record after the cut says P={job_int(after, 'progress_pointer')}, below the "
                f"checkpoint {ckpt} the job had made durable before the cut")
        s1 = read_lv(m)
        m.unmount()
        writer.check(s1, what + "\nafter the cut")
        # Read-write: the job resumes and finishes; the LV must read the same.
        m = env.mount(vg.config, mp)
        ctl(m, f"limit {job} 0")
        st = wait_job(m, job, timeout=60)
        assert st["sync_status"] == "completed", f"{what}\n{st}"
        assert [r[2] for r in lv_map(m, "lv0")] == ["pv1"], lv_map(m, "lv0")
        s2 = read_lv(m)
        if s2 != s1:
            off = next(j for j in range(0, LV_SIZE, 512) if s1[j:j + 512] != s2[j:j + 512])
            raise AssertionError(f"{what}\nfinishing the job changed what the LV reads at byte {off} "
                                 f"(region {off // (256 * KiB)}): the destination missed a write the source had")
        m.unmount()
        r = env.vgfs("check", vg.config)
        assert r.returncode == 0, f"{what}\nvgfs check: {r.stdout}{r.stderr}"
        records.append((i, writer_mode, before["sync_status"], after["sync_status"], ckpt, writer.acks))
    print("\n".join(str(r) for r in records))
