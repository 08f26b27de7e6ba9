"""Issue 8, the manager's part, on real mounts: hostile bytes in views and
replies, arguments carried exactly through the CLI, pvadd of a file on the
VG's own mount, restore without a missing PV, a daemon at its thread limit,
commit problems in the reply, durable `limit`, and sizes too large.

Each test failed on the code before the fix (see the docstrings)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from vgfstest import (
    MiB,
    LvSpec,
    PvSpec,
    assert_one_line_error,
    ctl,
    ctl_ok,
    job_int,
    job_status,
    pid_alive,
    reply_job_ids,
    start_job,
    start_slow_job,
    warm_up_lv,
)


def raw_ctl(m, command: bytes) -> tuple[int, bytes]:
    """ctl() with a byte command (paths that are not UTF-8)."""
    fd = os.open(m.meta / "ctl", os.O_RDWR)
    try:
        err = 0
        try:
            os.write(fd, command + b"\n")
        except OSError as e:
            err = e.errno
        return err, os.pread(fd, 65536, 0)
    finally:
        os.close(fd)


def daemon_pid(m) -> int:
    return m.proc.pid


def test_vg_json_and_pvs_json_with_a_pv_path_that_is_not_utf8(env):
    """Before: reading vg.json threw nlohmann type_error 316 in a FUSE worker
    (std::terminate, mount gone); `vgfs pvs --json` aborted the same way."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    m = env.mount(vg.config, foreground=True, opts="allow_other")
    odd = os.fsencode(str(vg.dir)) + b"/pv\xff\x1b[31m.img"
    with open(odd, "wb") as f:
        f.truncate(64 * MiB)
    err, reply = raw_ctl(m, b'pvadd ' + odd + b' pvodd')  # no blank: no quoting needed
    assert err == 0 and reply.startswith(b"ok PV pvodd added"), reply
    text = (m.meta / "vg.json").read_bytes()        # the daemon survives this read
    vgj = json.loads(text)
    paths = {p["name"]: p["path"] for p in vgj["pvs"]}
    assert paths["pvodd"] == str(vg.dir) + "/pv\\xff\\x1b[31m.img"
    info = (m.meta / "pvs" / "pvodd" / "info").read_bytes()
    assert b"\x1b" not in info and b"\xff" not in info
    r = env.vgfs("pvs", "--json", m.mp)
    assert r.returncode == 0, r.stderr
    assert {p["name"] for p in json.loads(r.stdout)} == {"pv0", "pv1", "pvodd"}
    r = env.vgfs("pvs", m.mp)
    assert r.returncode == 0 and "\x1b" not in r.stdout and "pv\\xff\\x1b[31m.img" in r.stdout, r
    assert m.proc.poll() is None
    (m.lv("lv0")).read_bytes()  # every LV still served


def test_cli_carries_a_path_with_blanks_exactly(env):
    """Before: `vgfs pvadd MNT "/d/a b.img"` labelled /d/a as PV "b.img"."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    m = env.mount(vg.config)
    d = vg.dir / "sub dir"
    d.mkdir()
    img = d / "a b.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    (d / "a").write_bytes(b"")  # what the old split would have opened
    r = env.vgfs("pvadd", m.mp, img)
    assert r.returncode == 0 and r.stdout.startswith("ok PV pv2 added"), r
    vgj = json.loads((m.meta / "vg.json").read_text())
    assert [p["path"] for p in vgj["pvs"] if p["name"] == "pv2"] == [str(img)]
    r = env.vgfs("pvadd", m.mp, str(vg.dir / "new\nline.img"))
    assert_one_line_error(r, "newline")


def test_pvadd_of_a_file_on_the_vgs_own_mount_is_refused(env):
    """Before: accepted; the first fsync deadlocked the daemon."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "16MiB"), LvSpec("lv1", "16MiB")])
    vg.create()
    m = env.mount(vg.config)
    seqno = json.loads((m.meta / "vg.json").read_text())["seqno"]
    err, reply = ctl(m, f"pvadd {m.lv('lv1')}")
    assert err == errno.EINVAL and "own mount" in reply, reply
    dev = env.losetup(m.lv("lv1"))
    err, reply = ctl(m, f"pvadd {dev}")
    assert err == errno.EINVAL and "own mount" in reply, reply
    assert json.loads((m.meta / "vg.json").read_text())["seqno"] == seqno
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        os.pwrite(fd, b"x" * 4096, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def test_restore_works_without_a_missing_pv_the_backup_does_not_need(env):
    """Before: restore failed like mount ("PV pv2 ... is missing")."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    m = env.mount(vg.config)
    extra = vg.dir / "extra.img"
    with open(extra, "wb") as f:
        f.truncate(64 * MiB)
    before = json.loads((m.meta / "vg.json").read_text())["seqno"]
    ctl_ok(m, f"pvadd {extra}")
    env.unmount(m)
    extra.unlink()
    r = env.vgfs("mount", vg.config, env.new_mountpoint("refused"))
    assert r.returncode != 0 and "missing" in r.stderr
    backup = vg.dir / "archive" / f"{vg.name}_{before:08d}.yaml"
    r = env.vgfs("restore", vg.config, backup)
    assert r.returncode == 0, r.stderr
    m2 = env.mount(vg.config)
    vgj = json.loads((m2.meta / "vg.json").read_text())
    assert [p["name"] for p in vgj["pvs"]] == ["pv0", "pv1"]
    assert vgj["seqno"] > before + 1


PIDS = Path("/sys/fs/cgroup/pids")


def _pids_cgroup_usable() -> bool:
    return (PIDS / "cgroup.procs").exists() and os.access(PIDS, os.W_OK)


@pytest.mark.skipif(not _pids_cgroup_usable(), reason="no writable cgroup v1 pids hierarchy at /sys/fs/cgroup/pids")
def test_a_daemon_at_its_thread_limit_refuses_the_move_and_lives(env):
    """Before: std::system_error out of start_jobs: the daemon died (ENOTCONN)."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "8MiB")])
    vg.create()
    m = env.mount(vg.config, foreground=True)
    pid = daemon_pid(m)
    group = PIDS / f"vgfs-test-{os.getpid()}-{pid}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(pid))
        (group / "pids.max").write_text((group / "pids.current").read_text().strip())
        seqno = json.loads((m.meta / "vg.json").read_text())["seqno"]
        err, reply = ctl(m, "move lv0 pv1")
        assert err == errno.EAGAIN and "cannot start a copier thread" in reply, reply
        assert m.proc.poll() is None
        assert json.loads((m.meta / "vg.json").read_text())["seqno"] == seqno
        (group / "pids.max").write_text("max")
        job = start_job(m, "move lv0 pv1")
        deadline = time.monotonic() + 60
        while job_status(m, job)["sync_status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        (PIDS / "cgroup.procs").write_text(str(pid)) if pid_alive(pid) else None
        group.rmdir()


def test_commit_problems_are_in_the_reply_and_the_log(env):
    """Before: `ok` alone, nothing logged."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    (vg.dir / "elsewhere").mkdir()
    (vg.dir / "archive").symlink_to(vg.dir / "elsewhere")
    m = env.mount(vg.config, foreground=True)
    reply = ctl_ok(m, "lvcreate lv1 1MiB")
    assert reply.startswith("ok LV lv1 created") and "(warning: the metadata archive folder" in reply, reply
    assert reply.count("\n") == 1
    assert list((vg.dir / "elsewhere").iterdir()) == []
    assert "metadata archive folder" in m.stderr()


def mount_with_lv0_written(env):
    """A foreground mount of two 256 MiB PVs whose 128 MiB LV lv0 (on pv0)
    holds random data, fsynced: a move of it has real work to do."""
    vg = env.make_vg(pvs=[PvSpec("pv0", "pv0.img", "256MiB"), PvSpec("pv1", "pv1.img", "256MiB")],
                     lvs=[LvSpec("lv0", "128MiB")])
    vg.create()
    mp = env.new_mountpoint()
    m = env.mount(vg.config, mp, foreground=True)
    fd = os.open(m.lv("lv0"), os.O_WRONLY)
    try:
        chunk = os.urandom(MiB)
        for i in range(128):
            os.pwrite(fd, chunk, i * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    return vg, mp, m


def test_limit_is_durable_when_it_answers_ok(env):
    """Before: limit wrote nothing; after SIGKILL the job came back with the old rate."""
    vg, mp, m = mount_with_lv0_written(env)
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="1MiB")
    ctl_ok(m, f"pause {job}")
    ctl_ok(m, f"limit {job} 3MiB")
    os.kill(m.proc.pid, signal.SIGKILL)
    m.proc.wait(timeout=10)
    env.unmount(m)
    m = env.mount(vg.config, mp, foreground=True)
    st = job_status(m, job)
    assert st["rate_limit"] == str(3 * MiB) and st["paused"] == "yes", st


def test_a_limit_given_with_move_holds_from_the_start_and_is_durable(env):
    """A `limit` sent after `move` replied comes after the copier started;
    `move ... limit=RATE` (and `vgfs move --limit`) is in force from the first
    region and in the job record when the command answers ok."""
    vg, mp, m = mount_with_lv0_written(env)
    r = env.vgfs("move", m.mp, "lv0", "pv1", "--limit", "1MiB")
    assert r.returncode == 0, r.stderr
    job = reply_job_ids(r.stdout.strip() if r.stdout.startswith("ok") else "ok " + r.stdout.strip())[0]
    st = job_status(m, job)
    assert st["rate_limit"] == str(MiB), st
    # Before the option, the first slice of the copier ran unlimited.
    assert job_int(st, "copied_bytes") <= 8 * MiB, st
    os.kill(m.proc.pid, signal.SIGKILL)
    m.proc.wait(timeout=10)
    env.unmount(m)
    m = env.mount(vg.config, mp, foreground=True)
    st = job_status(m, job)
    assert st["rate_limit"] == str(MiB) and st["sync_status"] == "copying", st
    ctl_ok(m, f"abort {job}")


@pytest.mark.parametrize("size", ["18446744073709551615", "16777215TiB", "17592186044415MiB"])
def test_sizes_too_large_are_named_so(env, size):
    """Before: size + extent - 1 wrapped: a wrong message or a tiny LV."""
    vg = env.make_vg(lvs=[LvSpec("lv0", "4MiB")])
    vg.create()
    m = env.mount(vg.config)
    for verb, name in (("lvcreate", "big"), ("lvextend", "lv0"), ("lvreduce", "lv0")):
        r = env.vgfs(verb, m.mp, name, size)
        assert_one_line_error(r, "too large")
    vgj = json.loads((m.meta / "vg.json").read_text())
    assert [lv["name"] for lv in vgj["lvs"]] == ["lv0"] and vgj["seqno"] == 1

