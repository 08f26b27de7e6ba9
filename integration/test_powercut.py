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
import threading
import time
import zlib

import pytest

from conftest import (KiB, MiB, LvSpec, PvSpec, assert_one_line_error, ctl, ctl_ok, job_int, job_status, lv_map,
                      pread_full, wait_job)
from powercut.rig import MIGRATION_AREA, SLOTS

PV_SIZE = 32 * MiB
SLOT_RANGE = f"{SLOTS[0]}-{SLOTS[1]}"
AREA_RANGE = f"{MIGRATION_AREA[0]}-{MIGRATION_AREA[1]}"
NEVER = 1 << 40


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
    """pv0, pv1 (in the config) with lva, lvb; snapshot "plain" at seqno 2
    and "withpv2" (pv2 pvadd'ed, not in the config) at seqno 4. Even
    seqnos: the commands under test commit to slot 1, so a commit that
    wrongly overwrites slot 0 destroys the only copy of the old state."""
    rig.make_bases(PV_SIZE)
    vg = env.make_vg(name="vgpc", pvs=[PvSpec(p, str(rig.link(p)), None) for p in ("pv0", "pv1")],
                     lvs=[LvSpec("lva", size="4MiB"), LvSpec("lvb", size="4MiB")], extent_size="1MiB")
    vg.create()
    m = env.mount(vg.config)
    ctl_ok(m, "lvcreate lvk 1MiB")
    m.unmount()
    rig.save("plain")
    m = env.mount(vg.config)
    ctl_ok(m, f"pvadd {rig.link('pv2')} pv2")
    ctl_ok(m, "lvrename lvk lvk2")
    m.unmount()
    rig.save("withpv2")
    rig.restore("plain")
    return vg


COMMANDS = [
    ("plain", "lvcreate lvc 3MiB"),
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
              + [dict(cut_at_write=f"{SLOT_RANGE}:{k}", keep=100, torn=100) for k in range(1, slot_writes + 1)]
              + [dict(), dict(keep=0)])          # cut right after the reply
    rng = random.Random(zlib.crc32(command.encode()))
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
        outcomes.append(("new" if got == new else "old", ok))
    # The read-write mount of what the last cut left repairs and serves it.
    m = env.mount(vg.config)
    assert sorted(os.listdir(m.mp)) == sorted(
        [l["name"] for l in m.vg_json()["lvs"]] + [".vgfs"]), os.listdir(m.mp)
    m.unmount()
    print(f"{command}: {flushes} flushes, {slot_writes} slot writes; outcomes {outcomes}")
