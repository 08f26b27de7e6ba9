"""What every part of the benchmark shares: paths, logging, its error type,
and the bookkeeping of the mounts and processes this run started (and only
those), so that bench/run can stop all of them at the end, also on Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "pylib"))

from vgfstest.mounts import is_mounted, pid_alive as _pid_running  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# VGFS_BENCH_BINARY: run another vgfs binary (e.g. a sanitizer build) to diagnose a failure
VGFS = os.path.abspath(os.environ.get("VGFS_BENCH_BINARY", os.path.join(ROOT, "build", "vgfs")))
# A folder of this run's own, so two runs (two worktrees) never share or remove
# each other's files; bench/run removes those of earlier runs that died.
WORK_PREFIX = "/dev/shm/vgfs-bench-"
WORK = f"{WORK_PREFIX}{os.getpid()}"
RESULTS = os.path.join(ROOT, "bench", "results")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Resources:
    """The mounts and processes this run started: only these are stopped."""

    def __init__(self):
        self.mounts = []      # mountpoints (dirs or export files), unmounted in reverse
        self.pids = {}        # pid -> identifying substring of its cmdline
        self.popens = []

    def add_mount(self, path):
        self.mounts.append(path)

    def add_pid(self, pid, tag):
        self.pids[pid] = tag

    def add_popen(self, p):
        self.popens.append(p)

    @staticmethod
    def is_mounted(path):
        # vgfstest's: abspath, never realpath, which would hang on a mount
        # whose daemon died.
        return is_mounted(path)

    def unmount(self, path, lazy_fallback=True):
        if path in self.mounts:
            self.mounts.remove(path)
        if not self.is_mounted(path):
            return
        r = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True)
        if r.returncode != 0 and self.is_mounted(path):
            if lazy_fallback:
                subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)
            else:
                raise BenchError(f"fusermount3 -u {path}: {r.stderr.strip()}")

    @staticmethod
    def pid_alive(pid, tag):
        """Alive (not a zombie) and still the process we started: `tag` in its
        command line guards against a reused pid."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return _pid_running(pid) and tag in cmd

    def stop_pid(self, pid, timeout=5.0):
        tag = self.pids.pop(pid, None)
        if tag is None or not self.pid_alive(pid, tag):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if not self.pid_alive(pid, tag):
                    return
                time.sleep(0.05)

    def wait_pid_exit(self, pid, timeout=10.0):
        tag = self.pids.get(pid)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if tag is None or not self.pid_alive(pid, tag):
                self.pids.pop(pid, None)
                return True
            time.sleep(0.02)
        return False

    def cleanup(self):
        for path in reversed(list(self.mounts)):
            try:
                self.unmount(path)
            except Exception as e:  # keep cleaning
                log(f"cleanup: unmount {path}: {e}")
        for p in self.popens:
            if p.poll() is None:
                try:
                    p.terminate()
                    p.wait(timeout=5)
                except Exception:
                    p.kill()
        for pid in list(self.pids):
            self.stop_pid(pid)


RES = Resources()


def run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        raise BenchError(f"{' '.join(map(str, cmd))} failed ({e.returncode}): "
                         f"{(e.stderr or '').strip()} {(e.stdout or '').strip()[:500]}")

