"""What one integration test sets up, and its teardown: VGs (config, PV
images), vgfs mounts (daemonized or foreground), loop devices, ext4 mounts.

Env.cleanup tears everything down in a safe order even when the test failed:

    ext4 mounts -> loop devices -> vgfs mounts (fusermount3 -u, then umount -l)
    -> wait for the vgfs daemons this test started to exit.

The `env` fixture of integration/conftest.py makes one Env per test and runs
its watchdog."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import LvSpec, PvSpec, render_config
from .files import sha256_file
from .mounts import daemon_pids, is_mounted, loop_devices_for, mountinfo_points, pid_alive
from .paths import VGFS_BIN
from .sizes import parse_int_bytes, parse_size
from .status import read_kv


@dataclass
class VG:
    env: "Env"
    dir: Path
    name: str
    pvs: list[PvSpec]
    lvs: list[LvSpec]
    extent_size: str | None = "1MiB"
    region_size: str | None = None
    config_name: str = "vg.yaml"

    @property
    def config(self) -> Path:
        return self.dir / self.config_name

    @property
    def extent_bytes(self) -> int:
        return parse_size(self.extent_size or "4MiB")

    def pv_path(self, name: str) -> Path:
        for pv in self.pvs:
            if pv.name == name:
                p = Path(pv.path)
                return p if p.is_absolute() else self.dir / p
        raise KeyError(name)

    @property
    def pv_paths(self) -> list[Path]:
        return [self.pv_path(p.name) for p in self.pvs]

    def write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_config(self.name, self.pvs, self.lvs,
                                             self.extent_size, self.region_size))
        return self.config

    def create(self, force: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        self.write_config()
        args = ["create", str(self.config)] + (["--force"] if force else [])
        r = self.env.vgfs(*args)
        if check:
            assert r.returncode == 0, f"vgfs create failed: rc={r.returncode}\n{r.stderr}"
        return r

    def pv_hashes(self) -> dict[str, str]:
        return {p.name: sha256_file(self.pv_path(p.name)) for p in self.pvs
                if self.pv_path(p.name).exists()}

    def mount(self, mp=None, **kw) -> "Mount":
        return self.env.mount(self.config, mp, **kw)

    def pvs_json(self) -> dict:
        """`vgfs pvs --json CONFIG` (offline), parsed."""
        r = self.env.vgfs("pvs", "--json", str(self.config))
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@dataclass
class Mount:
    env: "Env"
    config: Path
    mp: Path
    proc: subprocess.Popen | None = None      # foreground (-f) daemon
    pids: list[int] = field(default_factory=list)
    result: subprocess.CompletedProcess | None = None
    stderr_path: Path | None = None

    def lv(self, name: str) -> Path:
        return self.mp / name

    @property
    def meta(self) -> Path:
        return self.mp / ".vgfs"

    def vg_json(self) -> dict:
        with open(self.meta / "vg.json") as f:
            return json.load(f)

    def pe_start(self, pv: str) -> int:
        return parse_int_bytes(read_kv(self.meta / "pvs" / pv / "info")["pe_start"])

    def stderr(self) -> str:
        if self.stderr_path and self.stderr_path.exists():
            return self.stderr_path.read_text(errors="replace")
        return ""

    def unmount(self) -> None:
        self.env.unmount(self)


class Env:
    def __init__(self, tmp_path: Path, nodeid: str, budget: float = 240):
        self.tmp = tmp_path
        self.budget = budget   # seconds before watchdog_fire is due (message only)
        self.nodeid = nodeid
        self.mounts: list[Mount] = []
        self.loops: list[str] = []
        self.ext_mounts: list[Path] = []
        self.problems: list[str] = []
        self._n = 0
        self._lock = threading.Lock()
        self.killed_by_watchdog = False

    # ---- processes -----------------------------------------------------
    def run(self, args, timeout=120, check=False, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        r = subprocess.run([str(a) for a in args], timeout=timeout, **kw)
        if check:
            assert r.returncode == 0, f"{args} failed rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def vgfs(self, *args, timeout=120, **kw) -> subprocess.CompletedProcess:
        """Runs the vgfs binary. stdout/stderr go through files, not pipes, so
        a daemon that keeps a copy of them open can never make this hang."""
        self._n += 1
        out_p = self.tmp / f".vgfs-cmd-{self._n}.out"
        err_p = self.tmp / f".vgfs-cmd-{self._n}.err"
        argv = [str(VGFS_BIN)] + [str(a) for a in args]
        with open(out_p, "w") as out, open(err_p, "w") as err:
            rc = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                timeout=timeout, **kw).returncode
        r = subprocess.CompletedProcess(argv, rc, out_p.read_text(errors="replace"),
                                        err_p.read_text(errors="replace"))
        out_p.unlink()
        err_p.unlink()
        return r

    def make_vg(self, name="vg0", pvs=None, lvs=None, extent_size="1MiB", region_size=None,
                subdir=None, config_name="vg.yaml") -> VG:
        d = self.tmp / (subdir or name)
        d.mkdir(parents=True, exist_ok=True)
        if pvs is None:
            pvs = [PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")]
        return VG(self, d, name, list(pvs), list(lvs or []), extent_size, region_size, config_name)

    # ---- vgfs mounts ---------------------------------------------------
    def new_mountpoint(self, name="mnt") -> Path:
        i = 0
        while True:
            mp = self.tmp / (name if i == 0 else f"{name}{i}")
            if not mp.exists():
                mp.mkdir()
                return mp
            i += 1

    def mount(self, config, mp=None, foreground=False, opts=None, expect_ok=True,
              via_mount_t=False, extra_args=(), cwd=None, timeout=60) -> Mount:
        """Mounts `config` at `mp`. expect_ok=False returns the Mount with
        .result set and does not assert success (it is still torn down if it
        did mount)."""
        mp = Path(mp) if mp is not None else self.new_mountpoint()
        abs_mp = (Path(cwd) / mp) if cwd and not mp.is_absolute() else mp
        abs_mp.mkdir(exist_ok=True)
        m = Mount(self, Path(config), abs_mp)
        self._n += 1
        m.stderr_path = self.tmp / f".mount-{self._n}.err"
        out_path = self.tmp / f".mount-{self._n}.out"
        with self._lock:
            self.mounts.append(m)
        if foreground:
            argv = [str(VGFS_BIN), "mount", str(config), str(mp), "-f"]
            if opts:
                argv += ["-o", opts]
            argv += list(extra_args)
            with open(m.stderr_path, "w") as err, open(out_path, "w") as out:
                m.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          cwd=cwd)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if m.proc.poll() is not None:
                    break
                if is_mounted(abs_mp) and (abs_mp / ".vgfs" / "vg").exists():
                    break
                time.sleep(0.05)
            if m.proc.poll() is not None:
                m.result = subprocess.CompletedProcess(argv, m.proc.returncode, "", m.stderr())
            else:
                m.result = subprocess.CompletedProcess(argv, 0, "", m.stderr())
                m.pids = [m.proc.pid]
            if expect_ok:
                assert m.proc.poll() is None and is_mounted(abs_mp), (
                    f"foreground mount did not come up: rc={m.proc.returncode}\n{m.stderr()}")
            return m

        if via_mount_t:
            # via_mount_t selects how the mount.fuse3 path is reached:
            #  "fuse.vgfs": mount -t fuse.vgfs CONFIG MP (needs vgfs on the
            #               helper's PATH; util-linux mount drops PATH, so
            #               this only works with vgfs installed system-wide)
            #  "helper":    mount.fuse3 CONFIG MP -t vgfs -o OPTS, exactly
            #               what mount -t fuse.vgfs runs, with a PATH that
            #               holds a `vgfs` symlink to the binary
            #  "hash":      mount -t fuse 'BIN#CONFIG' MP (mount.fuse3's
            #               prog#source form; same `vgfs CONFIG MP -o` call)
            bindir = self.tmp / ".bin"
            bindir.mkdir(exist_ok=True)
            link = bindir / "vgfs"
            if not link.exists():
                link.symlink_to(VGFS_BIN)
            env = dict(os.environ)
            env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
            how = "fuse.vgfs" if via_mount_t is True else via_mount_t
            if how == "helper":
                argv = ["mount.fuse3", str(config), str(mp), "-t", "vgfs",
                        "-o", opts or "rw"]
            elif how == "hash":
                argv = ["mount", "-t", "fuse"] + (["-o", opts] if opts else []) + [
                    f"{link}#{config}", str(mp)]
            else:
                argv = ["mount", "-t", "fuse.vgfs"] + (["-o", opts] if opts else []) + [
                    str(config), str(mp)]
            with open(m.stderr_path, "w") as err, open(out_path, "w") as out:
                rc = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=env, timeout=timeout, cwd=cwd).returncode
        else:
            argv = [str(VGFS_BIN), "mount", str(config), str(mp)]
            if opts:
                argv += ["-o", opts]
            argv += list(extra_args)
            with open(m.stderr_path, "w") as err, open(out_path, "w") as out:
                rc = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    timeout=timeout, cwd=cwd).returncode
        m.result = subprocess.CompletedProcess(argv, rc, out_path.read_text(errors="replace"),
                                               m.stderr())
        if is_mounted(abs_mp):
            m.pids = daemon_pids(abs_mp, also=(str(mp),))
        if expect_ok:
            assert rc == 0, f"mount failed rc={rc}\n{m.stderr()}"
            assert is_mounted(abs_mp), f"mount returned 0 but {abs_mp} is not mounted\n{m.stderr()}"
        return m

    def unmount(self, m: Mount, timeout=30) -> None:
        """fusermount3 -u (retrying while busy), fallback umount -l, then wait
        for the daemon(s) serving it to exit."""
        if not m.pids and is_mounted(m.mp):
            m.pids = daemon_pids(m.mp)
        if is_mounted(m.mp):
            ok = False
            for _ in range(20):
                r = subprocess.run(["fusermount3", "-u", str(m.mp)], capture_output=True, text=True)
                if r.returncode == 0 or not is_mounted(m.mp):
                    ok = True
                    break
                time.sleep(0.25)
            if not ok:
                self.problems.append(f"fusermount3 -u {m.mp} failed: {r.stderr.strip()}; using umount -l")
                subprocess.run(["umount", "-l", str(m.mp)], capture_output=True)
        deadline = time.monotonic() + timeout
        if m.proc is not None:
            try:
                m.proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.problems.append(f"foreground daemon {m.proc.pid} did not exit; killed")
                m.proc.kill()
                m.proc.wait()
        for pid in m.pids:
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                self.problems.append(f"daemon {pid} for {m.mp} did not exit after unmount; killed")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        with self._lock:
            if m in self.mounts:
                self.mounts.remove(m)

    # ---- loop devices and ext4 -------------------------------------------
    def losetup(self, file, read_only=False) -> str:
        args = ["losetup", "-f", "--show"] + (["-r"] if read_only else []) + [str(file)]
        r = self.run(args, check=True)
        dev = r.stdout.strip()
        self.loops.append(dev)
        return dev

    def loop_detach(self, dev: str) -> None:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        for _ in range(100):
            r = subprocess.run(["losetup", "-n", "-O", "BACK-FILE", dev], capture_output=True, text=True)
            if r.returncode != 0 or not r.stdout.strip():
                break
            time.sleep(0.05)
        if dev in self.loops:
            self.loops.remove(dev)

    def mount_ext4(self, dev: str, mp: Path, read_only=False) -> None:
        mp.mkdir(exist_ok=True)
        args = ["mount", "-t", "ext4"] + (["-o", "ro"] if read_only else []) + [dev, str(mp)]
        self.run(args, check=True)
        self.ext_mounts.append(mp)

    def umount_ext4(self, mp: Path) -> None:
        r = subprocess.run(["umount", str(mp)], capture_output=True, text=True)
        if r.returncode != 0 and is_mounted(mp):
            self.problems.append(f"umount {mp}: {r.stderr.strip()}; using umount -l")
            subprocess.run(["umount", "-l", str(mp)], capture_output=True)
        if mp in self.ext_mounts:
            self.ext_mounts.remove(mp)

    # ---- teardown ------------------------------------------------------
    def all_pids(self) -> list[int]:
        with self._lock:
            return [p for m in self.mounts for p in m.pids]

    def watchdog_fire(self) -> None:
        self.killed_by_watchdog = True
        sys.stderr.write(f"\n*** watchdog: {self.nodeid} exceeded {self.budget}s; "
                         f"killing its vgfs daemons\n")
        faulthandler.dump_traceback(all_threads=True)
        for pid in self.all_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        for mp in list(reversed(self.ext_mounts)):
            self.umount_ext4(mp)
        for dev in list(reversed(self.loops)):
            self.loop_detach(dev)
        for m in list(reversed(self.mounts)):
            try:
                self.unmount(m)
            except Exception as e:  # keep tearing down the rest
                self.problems.append(f"unmount {m.mp}: {e!r}")
        # Anything still pointing into our tmp dir is a leak.
        for dev in loop_devices_for(str(self.tmp)):
            self.problems.append(f"leaked loop device {dev}")
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        for pt in mountinfo_points():
            if pt.startswith(str(self.tmp)):
                self.problems.append(f"leaked mount {pt}")
                subprocess.run(["umount", "-l", pt], capture_output=True)


# The VG most tests share. "fig3" names the LE->PE map form it exercises,
# one LV in several runs over two PVs (docs/records.md, "LV management information").
def fig3_vg(env: Env, name="vgio", subdir=None) -> VG:
    """Two 128 MiB PVs, 1 MiB extents. lvx is 45 extents in three runs, two
    on pv0 and one on pv1, not contiguous; lvy (8 MiB, mode 0640) is placed
    by the allocator."""
    return env.make_vg(
        name=name,
        subdir=subdir,
        pvs=[PvSpec("pv0", "pv0.img", "128MiB"), PvSpec("pv1", "pv1.img", "128MiB")],
        lvs=[
            LvSpec("lvx", extents=[("0-19", "pv0", "50-69"),
                                   ("20-39", "pv1", "10-29"),
                                   ("40-44", "pv0", "5-9")]),
            LvSpec("lvy", size="8MiB", mode="0640"),
        ],
        extent_size="1MiB",
    )


FIG3_LVX_RUNS = [(0, 20, "pv0", 50), (20, 20, "pv1", 10), (40, 5, "pv0", 5)]
