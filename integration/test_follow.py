"""Following jobs (`--wait`, `vgfs jobs MNT --wait`): the ETA as 1m23s, and
Ctrl-C stops following, says the jobs keep running and how to follow them
again, and leaves them running (README.md, "Command line")."""

from __future__ import annotations

import re
import signal
import subprocess
import time

from conftest import (VGFS_BIN, LvSpec, PvSpec, ctl, job_status, start_slow_job, wait_job, warm_up_lv)

ETA = re.compile(r"ETA (-|\d+s|\d+m\d\ds|\d+h\d\dm) ")


def test_ctrl_c_stops_following_and_the_job_goes_on(env):
    vg = env.make_vg(name="vg0", pvs=[PvSpec("pv0", "pv0.img", "600MiB"), PvSpec("pv1", "pv1.img", "600MiB")],
                     lvs=[LvSpec("lv0", size="512MiB")])
    vg.create()
    m = vg.mount()
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", "1MiB")
    follower = subprocess.Popen([str(VGFS_BIN), "jobs", str(m.mp), "--wait"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = follower.stdout.readline()  # a line a second without a terminal
        assert ETA.search(first), first
        time.sleep(1.2)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 130, (follower.returncode, out, err)
    assert err.strip() == (f"vgfs: stopped following; job {job} keeps running: follow it with "
                           f"`vgfs jobs {m.mp} --wait`, stop it with `vgfs abort {m.mp} JOB`"), err
    for line in (first + out).splitlines():
        assert ETA.search(line), line
    st = job_status(m, job)
    assert st["sync_status"] not in ("completed", "aborted", "failed"), st
    ctl(m, f"abort {job}")
    wait_job(m, job, timeout=30)
    r = env.vgfs("jobs", m.mp, "--wait")
    assert r.returncode == 0 and r.stdout.strip() == f"no job is running on {m.mp}", r.stdout
