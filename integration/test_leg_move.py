"""Moves of striped LVs (issue 12; docs/records.md "Moving a leg of a
striped run"): `vgfs pvmove` of a PV holding one leg of a striped LV moves
that leg, under a concurrent writer checked against a model, on an LVM2 VG
(made by LVM2's `lvcreate -i2`, checked with LVM2's `vgck` and `lvs
--segments -o seg_pe_ranges`) and on a vgfs VG; a SIGKILL mid-move, then the
remount resumes the job and the data is exact; a destination that holds the
other leg is refused with one line, changing nothing.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time

import test_lvm2_move as lm
from vgfstest import (LvModel, PvSpec, assert_one_line_error, ctl_ok, job_int, job_status, pid_alive, wait_job)
from vgfstest.lvm2 import Lvm

MiB = 1 << 20

needs_lvm2 = lm.pytestmark  # root, losetup and LVM2


def make_striped(lvm: Lvm) -> list[str]:
    """VG vgleg: three PVs of 15 extents; LV st of 8 extents striped over the
    first two in 64 KiB chunks (legs devs[0]:0-3 and devs[1]:0-3)."""
    devs = lm.make_vg(lvm, "vgleg", pvs=3)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "st", "-i2", "-I64k", "-l", "8", "vgleg", devs[0], devs[1])
    assert lm.lvm_lvs(lvm, "vgleg") == {"st": [f"{devs[0]}:0-3 {devs[1]}:0-3"]}
    return devs


def seqno(lvm: Lvm) -> int:
    return int(lvm.report("vgs", "vg", "-o", "vg_seqno", "vgleg")[0]["vg_seqno"])


class Writer:
    """Random writes (fsynced) to an LV in a thread until stopped, into `model`."""

    def __init__(self, path, model: LvModel, seed: int):
        self.fd = os.open(path, os.O_RDWR)
        self.model, self.rng, self.stop = model, random.Random(seed), threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                self.model.random_write(self.fd, self.rng, max_len=256 * 1024)
                os.fsync(self.fd)
                time.sleep(0.01)
        except BaseException as e:  # reported by join()
            self.error = e

    def join(self):
        self.stop.set()
        self.thread.join()
        os.close(self.fd)
        assert self.error is None, self.error
        assert self.model.writes > 0


@needs_lvm2
def test_lvm2_pvmove_moves_the_leg_under_a_writer(env, lvm):
    devs = make_striped(lvm)
    m = lm.mount(env, *devs)
    model = LvModel(32 * MiB, data=lm.fill(m.lv("st"), 32 * MiB, 12))
    # The other leg's PV is no destination: one line, nothing written.
    before = seqno(lvm)
    assert_one_line_error(env.vgfs("pvmove", m.mp, devs[0], devs[1]), "holds another leg")
    assert seqno(lvm) == before
    writer = Writer(m.lv("st"), model, 13)
    try:
        r = env.vgfs("pvmove", m.mp, devs[0], devs[2], "--limit", "16MiB")
        assert r.returncode == 0 and r.stdout.startswith("ok job 1"), r.stdout + r.stderr
        st = job_status(m, 1)
        assert st["leg"] == "0" and st["le_range"] == "0-7" and st["size"] == str(16 * MiB), st
        # LVM2's view while it copies: the hidden LVs, the leg still on the source.
        lvm.run("vgck", "vgleg")
        lvs = lm.lvm_lvs(lvm, "vgleg")
        assert lvs["st"] == [f"{devs[0]}:0-3 {devs[1]}:0-3"]
        assert lvs["[vgfs_move1]"] == [f"{devs[2]}:0-3"], lvs
        ctl_ok(m, "limit 1 0")
        assert wait_job(m, 1, timeout=120)["sync_status"] == "completed"
    finally:
        writer.join()
    assert model.first_difference(m.lv("st")) is None
    m.unmount()
    lvm.run("vgck", "vgleg")
    assert lm.lvm_lvs(lvm, "vgleg") == {"st": [f"{devs[2]}:0-3 {devs[1]}:0-3"]}
    # LVM2 reads the moved leg where vgfs wrote it: its own view of the LV
    # (the bytes of the new leg's PEs) equals the model's chunks of leg 0.
    pe_start = int(lvm.report("pvs", "pv", "-o", "pe_start", devs[2])[0]["pe_start"])
    with open(devs[2], "rb") as f:
        f.seek(pe_start)
        leg = f.read(16 * MiB)
    chunk = 64 * 1024
    expect = b"".join(bytes(model.buf[c * chunk:(c + 1) * chunk]) for c in range(0, 32 * MiB // chunk, 2))
    assert leg == expect


@needs_lvm2
def test_lvm2_sigkill_mid_leg_move_resumes(env, lvm):
    devs = make_striped(lvm)
    m = lm.mount(env, *devs)
    model = LvModel(32 * MiB, data=lm.fill(m.lv("st"), 32 * MiB, 14))
    assert env.vgfs("pvmove", m.mp, devs[1], devs[2], "--limit", "4MiB").returncode == 0
    rng = random.Random(15)
    fd = os.open(m.lv("st"), os.O_RDWR)
    try:
        deadline = time.monotonic() + 60
        while job_int(job_status(m, 1), "checkpoint_pointer") < 4 * MiB:
            assert time.monotonic() < deadline, job_status(m, 1)
            model.random_write(fd, rng, max_len=256 * 1024)
            os.fsync(fd)
            time.sleep(0.05)
        for _ in range(20):  # below and above P, on both legs
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
    lvm.run("vgck", "vgleg")
    lvs = lm.lvm_lvs(lvm, "vgleg")
    assert lvs["st"] == [f"{devs[0]}:0-3 {devs[1]}:0-3"] and lvs["[vgfs_move1]"] == [f"{devs[2]}:0-3"], lvs
    m = lm.mount(env, *devs)
    st = job_status(m, 1)
    assert st["leg"] == "1" and st["sync_status"] in ("copying", "resyncing", "synchronized"), st
    assert job_int(st, "checkpoint_pointer") >= persisted, (st, persisted)
    ctl_ok(m, "limit 1 0")
    assert wait_job(m, 1, timeout=120)["sync_status"] == "completed"
    assert model.first_difference(m.lv("st")) is None
    m.unmount()
    lvm.run("vgck", "vgleg")
    assert lm.lvm_lvs(lvm, "vgleg") == {"st": [f"{devs[0]}:0-3 {devs[2]}:0-3"]}


STRIPED = "0-15 striped 65536 pv0 0-7 pv1 0-7"


def striped_vgfs_vg(env):
    """A vgfs VG of three PVs whose LV st (16 MiB) is striped over pv0 and pv1
    in 64 KiB chunks, written with `vgfs restore` from an edited dump (vgfs's
    own lvcreate makes linear LVs)."""
    vg = env.make_vg("vgl", pvs=[PvSpec(f"pv{i}", f"pv{i}.img", "48MiB") for i in range(3)], extent_size="1MiB")
    vg.create()
    m = vg.mount(foreground=True)
    r = env.vgfs("lvcreate", m.mp, "st", "16MiB", "pv0")
    assert r.returncode == 0, r.stderr
    m.unmount()
    text = env.vgfs("dump", vg.config).stdout
    text, n = re.subn(r"0-15 pv0 0-15", STRIPED, text)
    assert n == 1, text
    backup = vg.dir / "striped.yaml"
    backup.write_text(text)
    r = env.vgfs("restore", vg.config, backup)
    assert r.returncode == 0, r.stderr
    return vg


def test_vgfs_vg_pvmove_moves_the_leg_under_a_writer(env):
    """pvmove of pv1 moves leg 1 of the striped LV to pv2 under a writer; the
    status shows the leg while it runs, the map the new leg after."""
    vg = striped_vgfs_vg(env)
    striped = STRIPED
    m = vg.mount(foreground=True)
    assert (m.meta / "lvs" / "st" / "map").read_text().strip() == striped
    path = m.mp / "st"
    model = LvModel(16 * MiB, data=lm.fill(path, 16 * MiB, 16))
    assert_one_line_error(env.vgfs("pvmove", m.mp, "pv1", "pv0"), "holds another leg")
    writer = Writer(path, model, 17)
    try:
        r = env.vgfs("pvmove", m.mp, "pv1", "--limit", "8MiB")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "\nleg: 1\n" in (m.meta / "jobs" / "1" / "status").read_text()
        ctl_ok(m, "limit 1 0")
        assert wait_job(m, 1, timeout=120)["sync_status"] == "completed"
    finally:
        writer.join()
    assert model.first_difference(path) is None
    assert (m.meta / "lvs" / "st" / "map").read_text().strip() == "0-15 striped 65536 pv0 0-7 pv2 0-7"
    m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, r.stdout + r.stderr
    m = vg.mount(foreground=True)
    assert model.first_difference(m.mp / "st") is None
    m.unmount()


def test_vgfs_vg_sigkill_mid_leg_move_resumes(env):
    vg = striped_vgfs_vg(env)
    m = vg.mount(foreground=True)
    model = LvModel(16 * MiB, data=lm.fill(m.mp / "st", 16 * MiB, 18))
    assert env.vgfs("pvmove", m.mp, "pv0", "pv2", "--limit", "1MiB").returncode == 0
    rng = random.Random(19)
    fd = os.open(m.mp / "st", os.O_RDWR)
    try:
        deadline = time.monotonic() + 60
        while job_int(job_status(m, 1), "checkpoint_pointer") < MiB:
            assert time.monotonic() < deadline, job_status(m, 1)
            model.random_write(fd, rng, max_len=128 * 1024)
            os.fsync(fd)
            time.sleep(0.05)
        for _ in range(20):
            model.random_write(fd, rng, max_len=128 * 1024)
        os.fsync(fd)
        persisted = job_int(job_status(m, 1), "checkpoint_pointer")
        assert job_status(m, 1)["sync_status"] != "completed"
    finally:
        os.close(fd)
    os.kill(m.proc.pid, signal.SIGKILL)
    m.proc.wait(timeout=10)
    env.unmount(m)
    m = vg.mount(foreground=True)
    st = job_status(m, 1)
    assert st["leg"] == "0" and job_int(st, "checkpoint_pointer") >= persisted, (st, persisted)
    ctl_ok(m, "limit 1 0")
    assert wait_job(m, 1, timeout=120)["sync_status"] == "completed"
    assert model.first_difference(m.mp / "st") is None
    assert (m.meta / "lvs" / "st" / "map").read_text().strip() == "0-15 striped 65536 pv2 0-7 pv1 0-7"
    m.unmount()
