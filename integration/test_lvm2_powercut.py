"""Power cuts during vgfs's commits on an LVM2 VG (docs/lvm2.md, "Commit
protocol as built"; docs/powercut.md): LVM2 makes the VG on two PVs, the
PVs are then served through the powercut nbdkit plugin (a disk with a
volatile write cache: at the cut, a seeded random subset of the unflushed
writes lands, torn at 512-byte sectors), vgfs mounts them from their paths
and commits an lvcreate or an lvextend, and the power goes off at each of
its flushes, at each of its writes to the metadata areas, and right after
its reply. Afterwards both LVM2 (`vgck`, `lvs` on loop devices over the
images) and vgfs (`vgfs lvs` offline) accept the VG and show the same LVs,
in the old state or the new one, and the new one whenever vgfs answered ok.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
import zlib

import pytest

from test_lvm2_mount import mount
from vgfstest import ctl
from vgfstest.lvm2 import lvm_try
from vgfstest.mounts import pid_alive

MiB = 1 << 20
PV_SIZE = 16 * MiB
# The metadata area pvcreate makes: header at 4 KiB, ring up to pe_start (1 MiB).
MDA_RANGE = f"{4096}-{1 * MiB}"
NEVER = 1 << 40
SEED = int(os.environ.get("VGFS_POWERCUT_SEED", "0"))

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("pvcreate") is None,
    reason="needs root, losetup and LVM2 (Debian's lvm2)")


def lvm2_vg(lvm, rig):
    """LVM2's VG vgpc on the rig's base images: lva (linear, pv0) and lvb
    (2 stripes of 64 KiB); saved as snapshot "lvm2"."""
    rig.make_bases(PV_SIZE)
    devs = [lvm.attach(rig.base(p)) for p in ("pv0", "pv1")]
    lvm.run("pvcreate", "-q", *devs)
    lvm.run("vgcreate", "-q", "-s", "1m", "vgpc", *devs)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lva", "-L", "4M", "vgpc", devs[0])
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-i2", "-I64k", "-n", "lvb", "-L", "4M", "vgpc")
    lvm.detach_all()
    rig.save("lvm2")


def vgfs_state(env, rig) -> tuple[int, list, str]:
    """vgfs's view of the base images: (rc, sorted (LV, size in bytes), stderr)."""
    r = env.vgfs("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size",
                 rig.base("pv0"), rig.base("pv1"))
    if r.returncode != 0:
        return r.returncode, [], r.stderr
    import json
    lvs = json.loads(r.stdout)["report"][0]["lv"]
    return 0, sorted((l["lv_name"], int(l["lv_size"])) for l in lvs), r.stderr


def lvm2_state(lvm, rig) -> tuple[str, list, str]:
    """LVM2's view of the base images, on loop devices: (problem or "",
    sorted (LV, size), vgck's output)."""
    try:
        for p in ("pv0", "pv1"):
            lvm.attach(rig.base(p))
        ck = lvm_try(lvm, "vgck", "vgpc")
        if ck.returncode != 0:
            return f"vgck failed ({ck.returncode}): {ck.stderr.strip()}", [], ck.stdout + ck.stderr
        lvs = lvm.report("lvs", "lv", "-o", "lv_name,lv_size", "vgpc")
        return "", sorted((l["lv_name"], int(l["lv_size"])) for l in lvs), ck.stdout + ck.stderr
    finally:
        lvm.detach_all()


class Cycle:
    """One boot: base images from the snapshot, the rig up, vgfs mounted
    from the PV paths, the command, the power off, the daemon killed."""

    def __init__(self, env, lvm, rig):
        self.env, self.lvm, self.rig = env, lvm, rig

    def run(self, command: str, **triggers):
        self.rig.restore("lvm2")
        self.rig.start()
        m = mount(self.env, self.lvm, self.rig.link("pv0"), self.rig.link("pv1"))
        try:
            self.rig.arm(**triggers)
            err, reply = ctl(m, command)
            counters = self.rig.counters()
            self.rig.cut_now()
        finally:
            for pid in m.pids:   # the machine is off
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while any(pid_alive(p) for p in m.pids) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.env.unmount(m)
        log = self.rig.stop()
        return err == 0 and reply.startswith("ok"), reply, counters, log


@pytest.mark.parametrize("command", ["lvcreate lvc 3MiB", "lvextend lva 7MiB"], ids=["lvcreate", "lvextend"])
def test_lvm2_commit_cut_leaves_old_or_new_vg_for_lvm2_and_vgfs(power_rig, env, lvm, command):
    rig = power_rig(["pv0", "pv1"])
    lvm2_vg(lvm, rig)
    c = Cycle(env, lvm, rig)
    rc, old, err = vgfs_state(env, rig)
    assert rc == 0, err
    # Dry run: the cut only after the reply, every unflushed write kept.
    ok, reply, counters, _ = c.run(command, cut_at_write=f"{MDA_RANGE}:{NEVER}", keep=100)
    assert ok, f"{command!r}: {reply!r}"
    rc, new, err = vgfs_state(env, rig)
    assert rc == 0 and new != old, (err, old, new)
    problem, lvm2_new, out = lvm2_state(lvm, rig)
    assert not problem and lvm2_new == new, (problem, lvm2_new, new, out)
    flushes, writes = counters["flushes"], counters["range-writes"]
    assert flushes >= 3 and writes >= 4, counters   # three synced phases; text and header on each PV

    # The same three-phase commit under both commands: lvextend is cut at its
    # metadata writes only, to keep the test short.
    points = ([dict(cut_at_flush=k) for k in range(1, flushes + 1) if command.startswith("lvcreate")]
              + [dict(cut_at_write=f"{MDA_RANGE}:{k}", keep=100, torn=100, tear_sectors="even")
                 for k in range(1, writes + 1)]
              + [dict(keep=0)])   # right after the reply, nothing unflushed lands
    rng = random.Random(zlib.crc32(command.encode()) + SEED)
    outcomes = []
    for point in points:
        seed = rng.randrange(1 << 30)
        ok, reply, _, log = c.run(command, seed=seed, tear=True, **point)
        what = f"{command!r} cut {point} seed={seed}: reply {reply.strip()!r}\n" + "\n".join(log)
        rc, got, err = vgfs_state(env, rig)
        assert rc == 0, f"{what}\nvgfs does not read the VG: {err}"
        assert got in (old, new), f"{what}\nvgfs: neither the old nor the new state: {got}"
        if ok:
            assert got == new, f"{what}\nthe command answered ok but its state is lost: {got}"
        problem, lvm2_got, out = lvm2_state(lvm, rig)
        assert not problem, f"{what}\nLVM2: {problem}\n{out}"
        assert lvm2_got == got, f"{what}\nLVM2 sees {lvm2_got}, vgfs {got}"
        outcomes.append("new" if got == new else "old")
    print(f"{command}: {flushes} flushes, {writes} metadata-area writes; outcomes {outcomes}")
