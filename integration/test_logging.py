"""The daemon's log (README "Logs", docs/design.md "The daemon's log"):
stderr with -f, syslog when daemonized; and `-o ro` reaching the kernel."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

import pytest

from vgfstest import ctl_ok, fig3_vg, start_job, wait_job


@pytest.fixture
def fig3(env):
    vg = fig3_vg(env)
    vg.create()
    return vg


def test_foreground_stderr_has_job_lines(env, fig3):
    m = fig3.mount(foreground=True)
    job = start_job(m, "move lvx:0-4 pv1")
    st = wait_job(m, job)
    assert st["sync_status"] == "completed", st
    m.unmount()
    err = m.stderr()
    assert f"vgfs: mounted VG vgio on {m.mp}" in err, err
    assert any(l.startswith(f"vgfs: job {job} started: LV lvx LE 0-4 from pv0 PE 50 to pv1 PE ")
               for l in err.splitlines()), err
    assert any(l.startswith(f"vgfs: job {job} completed: LV lvx LE 0-4 from pv0 PE 50 to pv1")
               for l in err.splitlines()), err
    assert f"vgfs: unmounted VG vgio from {m.mp}" in err, err
    assert "debug:" not in err, err


def test_foreground_abort_is_logged_with_reason(env, fig3):
    m = fig3.mount(foreground=True)
    job = start_job(m, "move lvx:0-19 pv1", limit="64KiB")
    ctl_ok(m, f"abort {job}")
    st = wait_job(m, job)
    assert st["sync_status"] == "aborted", st
    m.unmount()
    assert f"vgfs: job {job} aborted: aborted by the user" in m.stderr(), m.stderr()


def test_daemonized_mount_logs_to_syslog(env, fig3, tmp_path, monkeypatch):
    # No syslog daemon need run here: the log module sends to the socket
    # named by VGFS_SYSLOG_SOCKET, and this test is the listener.
    path = Path(f"/tmp/daemon-syslog-{os.getpid()}.sock")  # sun_path is short
    if path.exists():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    monkeypatch.setenv("VGFS_SYSLOG_SOCKET", str(path))
    try:
        m = fig3.mount()
        job = start_job(m, "move lvx:40-44 pv1")
        assert wait_job(m, job)["sync_status"] == "completed"
        m.unmount()
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("unmounted" in g for g in got):
            try:
                got.append(sock.recv(65536).decode())
            except socket.timeout:
                pass
    finally:
        sock.close()
        path.unlink()
    pid = m.pids[0] if m.pids else None
    lines = "\n".join(got)
    # <30> = LOG_DAEMON (3<<3) | LOG_INFO (6)
    assert any(g.startswith("<30>vgfs[") and f"]: mounted VG vgio on {m.mp}" in g for g in got), lines
    assert any(f"]: job {job} started: LV lvx LE 40-44 from pv0 PE 5 to pv1" in g for g in got), lines
    assert any(f"]: job {job} completed: LV lvx LE 40-44" in g for g in got), lines
    if pid:
        assert all(g.split("]")[0].endswith(f"vgfs[{pid}") for g in got), (pid, lines)
    assert m.stderr() == "", m.stderr()


def test_debug_raises_the_log_level(env, fig3):
    m = fig3.mount(foreground=True, opts="debug")
    job = start_job(m, "move lvx:40-44 pv1")
    wait_job(m, job)
    m.unmount()
    err = m.stderr()
    assert "vgfs: mounted VG vgio" in err, err
    assert "vgfs: debug: control command: move lvx:40-44 pv1\n" in err, err
    assert "unique:" in err or "INIT" in err, f"libfuse's own -d output is gone:\n{err}"


def mount_options(mp: Path) -> list[str]:
    """The per-mount options (field 6) of `mp` in /proc/self/mountinfo."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        if f[4] == str(mp):
            return f[5].split(",")
    raise AssertionError(f"{mp} not in /proc/self/mountinfo")


def test_ro_mount_is_read_only_in_the_kernel(env, fig3):
    m = fig3.mount(opts="ro")
    assert "ro" in mount_options(m.mp), mount_options(m.mp)
    with pytest.raises(OSError) as ei:
        os.open(m.lv("lvx"), os.O_WRONLY)
    assert ei.value.errno == errno.EROFS
    # The CLI says why, in one line, and nothing changes.
    r = env.vgfs("lvremove", m.mp, "lvx", "-y")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "mounted read-only (-o ro)" in lines[0], r.stderr
    m.unmount()
    m = fig3.mount()
    assert "rw" in mount_options(m.mp), mount_options(m.mp)
    m.unmount()
