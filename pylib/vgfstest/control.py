"""The control-file client (MOUNTPOINT/.vgfs/ctl, docs/design.md) and the job
waiter: send a command, read its reply, start jobs, poll jobs/<id>/status
until a job ends. Every function takes a Mount (anything with a `.meta`
folder) or a mount point path.

Failures are AssertionErrors (what a test reports); callers that are not
tests (bench/) turn them into their own errors."""

from __future__ import annotations

import os
import re
import time

from .sizes import KiB, parse_int_bytes
from .status import lv_map, meta_dir, read_kv

JOB_END_STATES = ("completed", "aborted", "failed")


def ctl(m, command: str) -> tuple[int, str]:
    """Writes one command line to MOUNTPOINT/.vgfs/ctl and reads the reply
    back from the same open file. Returns (errno of the write or 0, reply)."""
    fd = os.open(meta_dir(m) / "ctl", os.O_RDWR)
    try:
        err = 0
        data = (command + "\n").encode()
        try:
            n = os.write(fd, data)
            assert n == len(data), f"short write to ctl: {n} of {len(data)}"
        except OSError as e:
            err = e.errno
        reply = os.pread(fd, 64 * KiB, 0).decode(errors="replace")
    finally:
        os.close(fd)
    return err, reply


def ctl_ok(m, command: str) -> str:
    err, reply = ctl(m, command)
    assert err == 0 and reply.startswith("ok"), (
        f"ctl {command!r}: errno={err} ({os.strerror(err) if err else 'none'}) reply={reply!r}")
    return reply


def reply_job_ids(reply: str) -> list[int]:
    """'ok job 3\\n' -> [3]; 'ok jobs 3,4\\n' -> [3, 4]."""
    m = re.fullmatch(r"ok jobs? (\d+(?:\s*,\s*\d+)*)\s*", reply)
    assert m, f"not an 'ok job N' / 'ok jobs N,M' reply: {reply!r}"
    return [int(x) for x in m.group(1).split(",")]


def start_job(m, command: str, limit: str | None = None) -> int:
    """Runs a command that starts exactly one job; optionally sets its rate
    limit right away. Returns the job id."""
    ids = reply_job_ids(ctl_ok(m, command))
    assert len(ids) == 1, f"{command!r} started jobs {ids}, expected one"
    if limit is not None:
        ctl_ok(m, f"limit {ids[0]} {limit}")
    return ids[0]


def job_status(m, job: int) -> dict[str, str]:
    return read_kv(meta_dir(m) / "jobs" / str(job) / "status")


def job_int(st: dict[str, str], key: str) -> int:
    assert key in st, f"job status lacks {key!r}: {st}"
    return parse_int_bytes(st[key])


def wait_job(m, job: int, states=JOB_END_STATES, timeout: float = 60,
             poll: float = 0.05) -> dict[str, str]:
    """Polls jobs/<job>/status until sync_status is one of `states`."""
    deadline = time.monotonic() + timeout
    st = job_status(m, job)
    while st.get("sync_status") not in states:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} not in {states} after {timeout}s: {st}")
        time.sleep(poll)
        st = job_status(m, job)
    return st


def wait_jobs(m, jobs, timeout: float = 60, poll: float = 0.05) -> dict[int, dict[str, str]]:
    """Polls each of `jobs` until all have completed; returns job -> last
    status. Returns early, with the statuses read so far, when a job ends
    'aborted' or 'failed', so the caller reports it without waiting for the
    others."""
    deadline = time.monotonic() + timeout
    done: dict[int, dict[str, str]] = {}
    pending = list(jobs)
    while pending:
        for job in list(pending):
            st = job_status(m, job)
            if st.get("sync_status") in JOB_END_STATES:
                done[job] = st
                pending.remove(job)
                if st["sync_status"] != "completed":
                    return done
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs {sorted(pending)} not completed after {timeout:.0f} s: "
                                 f"{[job_status(m, j) for j in pending]}")
        time.sleep(poll)
    return done


def warm_up_lv(m, lv: str, other_pv: str) -> None:
    """Moves LE 0 of `lv` to `other_pv` and back to its original PE, so
    the LV's first (slow) move is not the one a test times: the copier starts
    before `move` replies, and a job whose first move is slow copies a large
    burst before a `limit` sent right after the reply takes effect."""
    runs = lv_map(m, lv)
    pv, pe = runs[0][2], runs[0][3]
    for cmd in (f"move {lv}:0-0 {other_pv}", f"move {lv}:0-0 {pv}:{pe}"):
        st = wait_job(m, start_job(m, cmd), timeout=30)
        assert st["sync_status"] == "completed", st
    assert lv_map(m, lv) == runs, f"warm-up moves did not restore the map of {lv}"


def start_slow_job(m, command: str, limit: str, max_fraction: float = 0.4, tries: int = 6) -> int:
    """start_job with a rate limit, retried (after `abort`) while the job
    copied more than `max_fraction` of its range before the limit applied."""
    for _ in range(tries):
        job = start_job(m, command, limit=limit)
        st = job_status(m, job)
        if st["sync_status"] == "copying" and job_int(st, "progress_pointer") <= max_fraction * job_int(st, "size"):
            return job
        assert st["sync_status"] != "completed", (
            f"{command!r}: job {job} completed before its limit {limit} applied: {st}")
        ctl(m, f"abort {job}")
        st = wait_job(m, job, timeout=30)
        assert st["sync_status"] in ("aborted", "completed"), st
        assert st["sync_status"] == "aborted", f"{command!r}: job {job} completed before it could be aborted"
    raise AssertionError(f"{command!r}: every try copied over {max_fraction:.0%} before the limit applied")
