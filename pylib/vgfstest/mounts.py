"""Mount and process bookkeeping shared by the integration suite and the
benchmark: which paths are mounted, which vgfs daemon serves a mount point,
whether a process is still alive, which loop devices point into a folder.

None of these resolves a mount point (no realpath, no stat): on a mount whose
daemon died, that would block or fail with ENOTCONN."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .paths import VGFS_BIN


def mountinfo_points() -> set[str]:
    pts = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            pts.add(parts[4].replace("\\040", " "))
    return pts


def is_mounted(path) -> bool:
    # abspath, not realpath: resolving would stat the mountpoint and could
    # block on a hung FUSE daemon.
    return os.path.abspath(path) in mountinfo_points()


def loop_devices_for(prefix: str) -> list[str]:
    r = subprocess.run(["losetup", "-a", "-O", "NAME,BACK-FILE", "-n", "--raw"],
                       capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith(prefix):
            out.append(parts[0])
    return out


def daemon_pids(mp: Path, also=(), binary=None) -> list[int]:
    """PIDs of vgfs processes (our binary) whose argv names `mp` (or one of
    the strings in `also`, e.g. the relative path a test passed). `binary`
    defaults to the binary under test, $VGFS_BIN."""
    want = {str(mp), os.path.normpath(str(mp))} | {str(a) for a in also}
    want_exe = os.path.realpath(binary or VGFS_BIN)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{d}/exe")
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if exe.endswith(" (deleted)"):
            exe = exe[: -len(" (deleted)")]
        if exe != want_exe:
            continue
        if any(a in want or a.rstrip("/") in want for a in argv[1:]):
            pids.append(int(d))
    return pids


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False
