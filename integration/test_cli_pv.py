"""PV leftovers of issue 9 (README.md "Commands"): `pvadd --force` takes a PV
removed earlier (or any device holding data), and an aborted or failed move
gives the blocks it wrote back on a sparse destination image."""

from __future__ import annotations

import pytest

import os
import time

from vgfstest import (LvSpec, MiB, PvSpec, assert_one_line_error, ctl, job_int, job_status, lv_map, start_slow_job,
                      wait_job)


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def test_pvadd_force_takes_a_pv_removed_earlier(env, tmp_path):
    vg = env.make_vg("vgf", pvs=[PvSpec("pv0", "pv0.img", "64MiB")], lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    m = vg.mount()
    extra = tmp_path / "extra.img"
    with open(extra, "wb") as f:
        f.truncate(32 * MiB)
    r = env.vgfs("pvadd", str(m.mp), str(extra))
    assert r.returncode == 0 and "ok PV pv1 added" in r.stdout, r.stderr
    r = env.vgfs("pvremove", str(m.mp), "pv1")
    assert r.returncode == 0, r.stderr
    seq = m.vg_json()["seqno"]
    # Its old metadata area is still there: refused, with the way out named.
    r = env.vgfs("pvadd", str(m.mp), str(extra))
    assert_one_line_error(r, "holds data vgfs did not create", "vgfs pvadd --force")
    assert m.vg_json()["seqno"] == seq
    r = env.vgfs("pvadd", str(m.mp), str(extra), "--force")
    assert r.returncode == 0 and "ok PV pv1 added" in r.stdout, r.stderr
    assert [p["name"] for p in m.vg_json()["pvs"]] == ["pv0", "pv1"]
    r = env.vgfs("lvcreate", str(m.mp), "onit", "8MiB", "pv1")
    assert r.returncode == 0, r.stderr
    with open(m.lv("onit"), "rb") as f:  # new extents read as zeros, whatever the device held
        assert f.read() == bytes(8 * MiB)
    # And it survives a remount.
    m.unmount()
    (vg.dir / "vg.yaml").write_text((vg.dir / "vg.yaml").read_text().replace(
        "pvs:\n", f"pvs:\n  - {{name: pv1, path: {extra}}}\n"))
    m2 = vg.mount()
    assert [p["name"] for p in m2.vg_json()["pvs"]] == ["pv0", "pv1"]


def test_pvadd_force_over_foreign_data(env, tmp_path):
    vg = env.make_vg("vgf2", pvs=[PvSpec("pv0", "pv0.img", "64MiB")], lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    m = vg.mount()
    disk = tmp_path / "disk.img"
    disk.write_bytes(os.urandom(MiB) + bytes(31 * MiB))
    assert_one_line_error(env.vgfs("pvadd", str(m.mp), str(disk), "pvx"), "holds data vgfs did not create")
    r = env.vgfs("pvadd", str(m.mp), str(disk), "pvx", "--force")
    assert r.returncode == 0 and "ok PV pvx added" in r.stdout, r.stderr


def slow_move_vg(env, lv_mib):
    vg = env.make_vg("vgm", pvs=[PvSpec("pv0", "pv0.img", "128MiB"), PvSpec("pv1", "pv1.img", "128MiB")],
                     lvs=[LvSpec("data", extents=[(f"0-{lv_mib - 1}", "pv0", f"0-{lv_mib - 1}")])])
    vg.create()
    m = vg.mount()
    with open(m.lv("data"), "r+b") as f:  # data, so that the copy allocates the destination
        f.write(os.urandom(lv_mib * MiB))
        os.fsync(f.fileno())
    return vg, m


def wait_progress(m, job, at_least):
    deadline = time.monotonic() + 60
    while job_int(job_status(m, job), "progress_pointer") < at_least:
        assert time.monotonic() < deadline, job_status(m, job)
        time.sleep(0.05)


def test_an_aborted_move_gives_the_destination_blocks_back(env):
    vg, m = slow_move_vg(env, 32)
    pv1 = vg.pv_path("pv1")
    before = allocated(pv1)
    job = start_slow_job(m, "move data pv1", limit="8MiB")
    wait_progress(m, job, 8 * MiB)
    assert allocated(pv1) >= before + 6 * MiB
    ctl(m, f"abort {job}")
    assert wait_job(m, job)["sync_status"] == "aborted"
    assert allocated(pv1) <= before + MiB, (before, allocated(pv1))
    assert lv_map(m, "data") == [(0, 32, "pv0", 0)]


def test_a_failed_move_gives_the_destination_blocks_back(env):
    vg, m = slow_move_vg(env, 48)
    pv1 = vg.pv_path("pv1")
    pe_start = next(p["pe_start"] for p in m.vg_json()["pvs"] if p["name"] == "pv1")
    job = start_slow_job(m, "move data pv1:0", limit="8MiB")
    wait_progress(m, job, 8 * MiB)
    os.truncate(pv1, pe_start + 32 * MiB)  # the copy fails with EIO when it gets there
    st = wait_job(m, job)
    assert st["sync_status"] == "failed", st
    assert allocated(pv1) < 4 * MiB, allocated(pv1)  # metadata only: the 32 MiB copied are punched
    assert lv_map(m, "data") == [(0, 48, "pv0", 0)]


def test_pvremove_keeps_the_job_history_listed(env, tmp_path):
    vg = env.make_vg("vgh", pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lv0", extents=[("0-3", "pv0", "0-3")])])
    vg.create()
    m = vg.mount()
    jobs = []
    for dest in ("pv1", "pv0"):
        r = env.vgfs("move", str(m.mp), "lv0", dest, "--wait")
        assert r.returncode == 0, r.stderr
        jobs.append(int(r.stdout.split()[2]))
    before = {j["job"]: j for j in m.vg_json()["jobs"]}
    assert sorted(before) == jobs
    r = env.vgfs("pvremove", str(m.mp), "pv1")
    assert r.returncode == 0, r.stderr
    after = {j["job"]: j for j in m.vg_json()["jobs"]}
    assert after == before  # the same records: PV names, ranges, state
    assert [after[j]["sync_status"] for j in jobs] == ["completed", "completed"]
    assert (after[jobs[0]]["destination"].split()[0], after[jobs[1]]["source"].split()[0]) == ("pv1", "pv1")
    for j in jobs:
        status = (m.mp / ".vgfs" / "jobs" / str(j) / "status").read_text()
        assert "sync_status: completed" in status, status
    r = env.vgfs("jobs", str(m.mp))
    assert r.returncode == 0 and all(str(j) in r.stdout for j in jobs) and "pv1" in r.stdout, r.stdout
