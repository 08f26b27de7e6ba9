"""The power-cut rig on the test side (docs/powercut.md).

Each PV of the VG under test is a symlink `<dir>/<pv>.img`. While the rig is
`start`ed, the symlink names a file on an nbdfuse mount served by nbdkit with
the powercut plugin over the base image `<dir>/<pv>.base`; all the PVs share
one control folder, so they lose power together. After `stop` (the cut, if
one was armed or requested, has landed its random subset of unflushed
writes by then) the symlink names the base image itself, so the next vgfs
mount reads what "survived the power cut" straight from the files.

fdatasync on an nbdfuse file reaches nbdkit as an NBD flush, and nbdfuse
writes are write-through (no FUSE writeback cache), so what vgfs wrote
reaches the plugin in order and what it synced is flushed; this was checked
by hand (docs/powercut.md) and `start` re-checks it with a probe write.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from vgfstest.mounts import is_mounted, pid_alive
from vgfstest.sizes import MiB

# Byte ranges of the on-PV format (docs/format.md), for cut-at-write.
SLOTS = (1 * MiB, 9 * MiB)            # metadata slots 0 and 1
MIGRATION_AREA = (9 * MiB, 13 * MiB)  # job records
LABELS = (0, 8 * 1024)


def find_plugin(vgfs_bin: Path, repo: Path) -> Path | None:
    """powercut.so next to the vgfs binary's build, else in <repo>/build."""
    for d in (Path(vgfs_bin).resolve().parent, repo / "build"):
        p = d / "integration" / "powercut" / "powercut.so"
        if p.exists():
            return p
    return None


class PowerRig:
    def __init__(self, root: Path, pvs: list[str], plugin: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.pvs = list(pvs)
        self.plugin = Path(plugin)
        self.ctl = self.root / "ctl"
        self.procs: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, int] = {}
        self.running = False
        self.started: list[str] = []
        self.logs: list[str] = []       # DIR/log lines of every stopped run
        for pv in self.pvs:
            self._point(pv, self.base(pv))

    # ---- paths -----------------------------------------------------------
    def link(self, pv: str) -> Path:
        """What the VG config names: a symlink to the NBD file or the base."""
        return self.root / f"{pv}.img"

    def base(self, pv: str) -> Path:
        return self.root / f"{pv}.base"

    def fuse_dir(self, pv: str) -> Path:
        return self.root / f"nbd-{pv}"

    def _point(self, pv: str, target: Path) -> None:
        tmp = self.root / f".{pv}.link"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target)
        os.replace(tmp, self.link(pv))

    # ---- base images -----------------------------------------------------
    def make_bases(self, size: int) -> None:
        for pv in self.pvs:
            with open(self.base(pv), "wb") as f:
                f.truncate(size)

    def save(self, name: str) -> None:
        """Copies the base images (sparse) aside as snapshot `name`."""
        assert not self.running
        for pv in self.pvs:
            subprocess.run(["cp", "--sparse=always", str(self.base(pv)), str(self.root / f"{pv}.{name}")], check=True)

    def restore(self, name: str) -> None:
        assert not self.running
        for pv in self.pvs:
            subprocess.run(["cp", "--sparse=always", str(self.root / f"{pv}.{name}"), str(self.base(pv))], check=True)

    # ---- power -----------------------------------------------------------
    def start(self, **triggers) -> None:
        """Serves every PV through nbdfuse + nbdkit + powercut. `triggers`:
        seed, keep, tear, reorder, cut_at_flush, cut_at_write ("A-B:N"),
        counted from this start."""
        assert not self.running
        if self.ctl.exists():
            shutil.rmtree(self.ctl)
        self.ctl.mkdir()
        args = [f"{k.replace('_', '-')}={_value(v)}" for k, v in triggers.items() if v is not None]
        self.running = True
        self.started: list[str] = []
        try:
            for pv in self.pvs:
                d = self.fuse_dir(pv)
                d.mkdir(exist_ok=True)
                pidfile = self.root / f"nbdfuse-{pv}.pid"
                if pidfile.exists():
                    pidfile.unlink()
                log = open(self.root / f"nbdfuse-{pv}.log", "w")
                argv = ["nbdfuse", "-P", str(pidfile), str(d / "pv.img"), "--command", "nbdkit", "-s",
                        str(self.plugin), f"file={self.base(pv)}", f"name={pv}", f"dir={self.ctl}"] + args
                self.procs[pv] = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
                self.started.append(pv)
                log.close()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if pidfile.exists() and pidfile.read_text().strip() and is_mounted(d):
                        break
                    if self.procs[pv].poll() not in (None, 0):
                        break
                    time.sleep(0.02)
                if pidfile.exists() and pidfile.read_text().strip():
                    self.pids[pv] = int(pidfile.read_text().strip())
                if not (is_mounted(d) and (d / "pv.img").exists()):
                    raise AssertionError(f"nbdfuse for {pv} did not come up: "
                                         f"{(self.root / f'nbdfuse-{pv}.log').read_text()}")
                self._point(pv, d / "pv.img")
        except BaseException:
            self.stop()
            raise

    def counters(self) -> dict[str, int]:
        try:
            text = (self.ctl / "counters").read_text()
        except FileNotFoundError:
            return {"flushes": 0, "range-writes": 0}
        out = {"flushes": 0, "range-writes": 0}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            out[k] = int(v)
        return out

    def arm(self, **triggers) -> None:
        """Replaces the triggers; counting starts again from zero now."""
        fd = os.open(self.ctl / "counters", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, b"flushes 0\nrange-writes 0\n", 0)
            tmp = self.ctl / ".arm"
            tmp.write_text("".join(f"{k.replace('_', '-')}={_value(v)}\n"
                                   for k, v in triggers.items() if v is not None))
            os.replace(tmp, self.ctl / "arm")
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def cut_now(self) -> None:
        (self.ctl / "cut").touch()

    @property
    def is_cut(self) -> bool:
        return (self.ctl / "cut").exists()

    def stop(self) -> list[str]:
        """Unmounts every nbdfuse (an instance whose power is off lands its
        random subset now, the others apply their unflushed writes), waits
        for the servers to exit and points the PV symlinks at the base
        images. Returns the plugin's log lines of this run."""
        for pv in self.pvs:
            self._point(pv, self.base(pv))
            d = self.fuse_dir(pv)
            if is_mounted(d):
                for _ in range(40):
                    r = subprocess.run(["fusermount3", "-u", str(d)], capture_output=True, text=True)
                    if r.returncode == 0 or not is_mounted(d):
                        break
                    time.sleep(0.25)
                else:
                    subprocess.run(["umount", "-l", str(d)], capture_output=True)
        for pv, p in self.procs.items():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in self.pids.values():
            deadline = time.monotonic() + 20
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.procs.clear()
        self.pids.clear()
        lines = []
        if self.running:
            # Each instance logs one line when it is done with its base image
            # (its cut, or its clean close): wait for all of them.
            deadline = time.monotonic() + 20
            while True:
                lines = (self.ctl / "log").read_text().splitlines() if (self.ctl / "log").exists() else []
                done = {l.split(":", 1)[0] for l in lines}
                if all(pv in done for pv in self.started) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            missing = [pv for pv in self.started if pv not in {l.split(":", 1)[0] for l in lines}]
            assert not missing, f"powercut instances for {missing} never finished: {lines}"
        self.running = False
        self.started = []
        self.logs += lines
        return lines


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
