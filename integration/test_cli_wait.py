"""`--wait` on a terminal (README.md "Command line", docs/cli.md "Following
jobs"): the bar is redrawn in place and cleared to the end of the line, so a
shorter line leaves nothing behind; a job's failure message gets a line of its
own (the bar is cleared first); the ETA reads 45s / 1m23s / 2h05m.
test_follow.py covers Ctrl-C and the plain lines without a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

from vgfstest import VGFS_BIN, LvSpec, PvSpec, ctl, job_status, start_slow_job, wait_job, warm_up_lv


def follow_on_a_terminal(argv, until, timeout=60):
    """Runs argv with stdout and stderr on a pty; calls until(output) after
    each read until it returns True, then reads to the end. Returns (rc, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    acted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not acted and until(out):
                acted = True
            if p.poll() is not None and not ready:
                break
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        os.close(master)
    return p.returncode, out.decode(errors="replace")


def test_the_bar_redraws_in_place_and_a_failure_gets_its_own_line(env):
    vg = env.make_vg(name="vg0", pvs=[PvSpec("pv0", "pv0.img", "300MiB"), PvSpec("pv1", "pv1.img", "300MiB")],
                     lvs=[LvSpec("lv0", size="256MiB")])
    vg.create()
    m = vg.mount()
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", "2MiB")

    def abort_after_two_bars(out):
        if out.count(b"\r[") >= 2:
            ctl(m, f"abort {job}")
            return True
        return False

    rc, out = follow_on_a_terminal([str(VGFS_BIN), "jobs", str(m.mp), "--wait"], abort_after_two_bars)
    assert rc == 1, out  # a job that ended aborted
    bars = re.findall(r"\r(\[[# ]{25}\][^\r\n]*?)\x1b\[K", out)
    assert len(bars) >= 2, repr(out)
    for bar in bars:
        assert re.search(r"\d+\.\d% +\S+/s ETA +(-|\d+s|\d+m\d\ds|\d+h\d\dm) ", bar), bar
    # The message: the bar cleared (\r ESC[K), then the line on its own, ended by a newline.
    assert re.search(rf"\r\x1b\[K(\r?\n)?vgfs: job {job} aborted: [^\r\n]+\r?\n", out), repr(out[-600:])
    assert wait_job(m, job)["sync_status"] == "aborted"
    assert job_status(m, job)["reason"]
