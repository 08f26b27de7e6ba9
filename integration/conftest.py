"""Fixtures and helpers for the vgfs integration suite (real FUSE mounts).

Everything a test sets up (vgfs mounts, loop devices, ext4 mounts, foreground
daemons) is registered with the per-test ``env`` fixture, which tears it down
in a safe order even when the test fails:

    ext4 mounts -> loop devices -> vgfs mounts (fusermount3 -u, then umount -l)
    -> wait for the vgfs daemons this test started to exit.

A watchdog kills the daemons of a test that runs far past its budget, so a
hung FUSE request turns into a failure (ENOTCONN) instead of a hung suite.

Run with:  /usr/bin/python3 -m pytest integration
Binary:    $VGFS_BIN, else <repo>/build/vgfs
"""

from __future__ import annotations

import ctypes
import faulthandler
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VGFS_BIN = Path(os.environ.get("VGFS_BIN") or (REPO / "build" / "vgfs")).resolve()

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Layout constants of the on-PV format (SPEC §4, include/vgfs/pv_format.h).
LABEL_OFFSETS = (0, 4 * KiB)
LABEL_SIZE = 4 * KiB
SLOT_OFFSETS = (1 * MiB, 5 * MiB)
SLOT_HEADER_SIZE = 4 * KiB

# Seconds a single test may run before the watchdog kills its daemons.
TEST_BUDGET = int(os.environ.get("VGFS_TEST_BUDGET", "240"))

_SUFFIX = {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": 1024 * GiB}


def parse_size(text: str) -> int:
    """'1048576' or '1MiB' -> bytes (test-side parser, lenient on spaces)."""
    text = str(text).strip()
    m = re.fullmatch(r"(\d+)\s*([KMGT]iB|B)?", text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(m.group(1)) * _SUFFIX[m.group(2) or "B"]


def parse_int_bytes(text: str) -> int:
    """A value documented as an integer number of bytes; tolerates a trailing
    human form like '13631488 (13MiB)' but the first token must be an int."""
    first = str(text).strip().split()[0]
    if not first.isdigit():
        raise AssertionError(f"expected an integer byte count, got {text!r}")
    return int(first)


def parse_range(text: str) -> tuple[int, int]:
    """'500-999' -> (500, 500); '7' -> (7, 1). Returns (first, count)."""
    if "-" in text:
        a, b = text.split("-", 1)
        a, b = int(a), int(b)
        assert b >= a, text
        return a, b - a + 1
    return int(text), 1


def format_range(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def read_kv(path) -> dict[str, str]:
    """Parses 'key: value' lines."""
    out: dict[str, str] = {}
    with open(path, "r") as f:
        text = f.read()
    for line in text.splitlines():
        if not line.strip():
            continue
        assert ": " in line or line.endswith(":"), f"{path}: not a 'key: value' line: {line!r}"
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def split_list(value: str) -> list[str]:
    """'pv0, pv1' / 'pv0 pv1' / '[pv0, pv1]' / '-' / '' -> list of names."""
    value = value.strip().strip("[]")
    if value in ("", "-", "none", "(none)"):
        return []
    return [x for x in re.split(r"[,\s]+", value) if x]



def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as every checksummed vgfs record uses."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def sha256_file(path, chunk=4 * MiB) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def snapshot(directory) -> dict[str, str]:
    """relpath -> sha256 for every regular file under `directory` (and 'DIR'
    for directories), so a test can prove that nothing changed on disk."""
    directory = Path(directory)
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith("mnt")]
        for d in dirs:
            out[str((Path(root) / d).relative_to(directory))] = "DIR"
        for name in files:
            p = Path(root) / name
            if p.is_symlink():
                out[str(p.relative_to(directory))] = "LINK:" + os.readlink(p)
            elif p.is_file():
                out[str(p.relative_to(directory))] = sha256_file(p)
    return out


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


libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]


def punch_hole(fd: int, offset: int, length: int) -> None:
    if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def pread_full(fd: int, length: int, offset: int) -> bytes:
    out = bytearray()
    while len(out) < length:
        b = os.pread(fd, length - len(out), offset + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def pwrite_full(fd: int, data, offset: int) -> int:
    done = 0
    mv = memoryview(data)
    while done < len(mv):
        n = os.pwrite(fd, mv[done:], offset + done)
        if n <= 0:
            break
        done += n
    return done


def errlines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.strip()]


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str, status: int = 1) -> str:
    """Exit status `status`, exactly one stderr line starting 'vgfs: ', and
    that line contains every needle (case-insensitive). Returns the line."""
    lines = errlines(r.stderr)
    detail = f"cmd={r.args!r}\nrc={r.returncode}\nstdout={r.stdout!r}\nstderr={r.stderr!r}"
    assert r.returncode == status, f"expected exit {status}\n{detail}"
    assert len(lines) == 1, f"expected exactly one stderr line\n{detail}"
    line = lines[0]
    assert line.startswith("vgfs: "), f"stderr must begin with 'vgfs: '\n{detail}"
    for n in needles:
        assert n.lower() in line.lower(), f"expected {n!r} in the error\n{detail}"
    return line


# --------------------------------------------------------------------------
# Config writing
# --------------------------------------------------------------------------

@dataclass
class PvSpec:
    name: str
    path: str            # relative to the config folder, or absolute
    size: str | None = "128MiB"


@dataclass
class LvSpec:
    name: str
    size: str | None = None
    mode: str | None = None
    # explicit runs: (le_range, pv, pe_range) e.g. ("0-19", "pv0", "50-69")
    extents: list[tuple[str, str, str]] = field(default_factory=list)


def render_config(vg_name: str, pvs: list[PvSpec], lvs: list[LvSpec],
                  extent_size: str | None = "1MiB", region_size: str | None = None) -> str:
    out = ["vg:", f"  name: {vg_name}"]
    if extent_size:
        out.append(f"  extent_size: {extent_size}")
    if region_size:
        out.append(f"  region_size: {region_size}")
    out.append("pvs:")
    for pv in pvs:
        item = f"  - {{name: {pv.name}, path: {json.dumps(pv.path)}"
        if pv.size is not None:
            item += f", size: {pv.size}"
        out.append(item + "}")
    if lvs:
        out.append("lvs:")
    for lv in lvs:
        out.append(f"  - name: {lv.name}")
        if lv.size is not None:
            out.append(f"    size: {lv.size}")
        if lv.mode is not None:
            out.append(f"    mode: \"{lv.mode}\"")
        if lv.extents:
            out.append("    extents:")
            for le, pv, pe in lv.extents:
                out.append(f"      - {{le: {le}, pv: {pv}, pe: {pe}}}")
    return "\n".join(out) + "\n"


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


# --------------------------------------------------------------------------
# Mounts and teardown
# --------------------------------------------------------------------------

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


def daemon_pids(mp: Path, also=()) -> list[int]:
    """PIDs of vgfs processes (our binary) whose argv names `mp` (or one of
    the strings in `also`, e.g. the relative path a test passed)."""
    want = {str(mp), os.path.normpath(str(mp))} | {str(a) for a in also}
    want_exe = os.path.realpath(VGFS_BIN)
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


class Env:
    def __init__(self, tmp_path: Path, nodeid: str):
        self.tmp = tmp_path
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
        sys.stderr.write(f"\n*** watchdog: {self.nodeid} exceeded {TEST_BUDGET}s; "
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


@pytest.fixture(scope="session")
def vgfs_bin() -> Path:
    if not VGFS_BIN.exists():
        pytest.fail(f"vgfs binary not found at {VGFS_BIN} (build it or set VGFS_BIN)")
    return VGFS_BIN


@pytest.fixture(scope="session", autouse=True)
def _preconditions():
    if os.geteuid() != 0:
        pytest.skip("the integration suite needs root (FUSE mounts, loop devices, mount)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse missing")
    yield


@pytest.fixture
def env(request, tmp_path, vgfs_bin):
    e = Env(tmp_path, request.node.nodeid)
    timer = threading.Timer(TEST_BUDGET, e.watchdog_fire)
    timer.daemon = True
    timer.start()
    try:
        yield e
    finally:
        timer.cancel()
        e.cleanup()
    if e.killed_by_watchdog:
        pytest.fail(f"watchdog killed the daemons after {TEST_BUDGET}s (hung FUSE request?)")
    if e.problems:
        pytest.fail("teardown problems:\n" + "\n".join(e.problems))


def pytest_sessionfinish(session, exitstatus):
    # Last line of defence: report (and remove) anything left under this
    # session's own temporary base directory (not other sessions').
    try:
        base = str(session.config._tmp_path_factory.getbasetemp()) + "/"
    except Exception:
        return
    leaks = [pt for pt in mountinfo_points() if pt.startswith(base)]
    loops = loop_devices_for(base)
    for dev in loops:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    for pt in sorted(leaks, reverse=True):
        subprocess.run(["umount", "-l", pt], capture_output=True)
    if leaks or loops:
        sys.stderr.write(f"\nvgfs integration: cleaned leaked mounts {leaks} loops {loops}\n")


# --------------------------------------------------------------------------
# The FIG.3-like VG most tests share
# --------------------------------------------------------------------------

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


def lv_runs_from_json(lv: dict) -> list[tuple[int, int, str, int]]:
    """vg.json lvs[i].map -> [(le, count, pv, pe)]."""
    out = []
    for e in lv["map"]:
        le, n = parse_range(e["le"])
        pe, n2 = parse_range(e["pe"])
        assert n == n2, e
        out.append((le, n, e["pv"], pe))
    return out


def json_pvs(obj) -> list[dict]:
    """The PV list of `vgfs pvs --json` output: a list, or an object with a
    "pvs" list (the vg.json shape)."""
    if isinstance(obj, dict):
        assert "pvs" in obj, f"no 'pvs' in {list(obj)}"
        return obj["pvs"]
    assert isinstance(obj, list), type(obj)
    return obj


def json_lvs(obj) -> list[dict]:
    if isinstance(obj, dict):
        assert "lvs" in obj, f"no 'lvs' in {list(obj)}"
        return obj["lvs"]
    assert isinstance(obj, list), type(obj)
    return obj


def read_pv_bytes(path, offset, length) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def damage(path, offset, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------------
# Migration jobs (SPEC §6, §7): control file, job status, maps, an LV model
# --------------------------------------------------------------------------

JOB_END_STATES = ("completed", "aborted", "failed")


def ctl(m: Mount, command: str) -> tuple[int, str]:
    """Writes one command line to MOUNTPOINT/.vgfs/ctl and reads the reply
    back from the same open file. Returns (errno of the write or 0, reply)."""
    fd = os.open(m.meta / "ctl", os.O_RDWR)
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


def ctl_ok(m: Mount, command: str) -> str:
    err, reply = ctl(m, command)
    assert err == 0 and reply.startswith("ok"), (
        f"ctl {command!r}: errno={err} ({os.strerror(err) if err else 'none'}) reply={reply!r}")
    return reply


def reply_job_ids(reply: str) -> list[int]:
    """'ok job 3\\n' -> [3]; 'ok jobs 3,4\\n' -> [3, 4]."""
    m = re.fullmatch(r"ok jobs? (\d+(?:\s*,\s*\d+)*)\s*", reply)
    assert m, f"not an 'ok job N' / 'ok jobs N,M' reply: {reply!r}"
    return [int(x) for x in m.group(1).split(",")]


def start_job(m: Mount, command: str, limit: str | None = None) -> int:
    """Runs a command that starts exactly one job; optionally sets its rate
    limit right away. Returns the job id."""
    ids = reply_job_ids(ctl_ok(m, command))
    assert len(ids) == 1, f"{command!r} started jobs {ids}, expected one"
    if limit is not None:
        ctl_ok(m, f"limit {ids[0]} {limit}")
    return ids[0]


def job_status(m: Mount, job: int) -> dict[str, str]:
    return read_kv(m.meta / "jobs" / str(job) / "status")


def job_int(st: dict[str, str], key: str) -> int:
    assert key in st, f"job status lacks {key!r}: {st}"
    return parse_int_bytes(st[key])


def wait_job(m: Mount, job: int, states=JOB_END_STATES, timeout: float = 60,
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


def lv_map(m: Mount, lv: str) -> list[tuple[int, int, str, int]]:
    """lvs/<lv>/map -> [(le_first, count, pv, pe_first)]."""
    out = []
    for line in (m.meta / "lvs" / lv / "map").read_text().splitlines():
        if not line.strip():
            continue
        le, pv, pe = line.split()[:3]
        le_first, n = parse_range(le)
        pe_first, n2 = parse_range(pe)
        assert n == n2, f"LV map line with unequal ranges: {line!r}"
        out.append((le_first, n, pv, pe_first))
    return out


def pv_map(m: Mount, pv: str) -> list[tuple]:
    """pvs/<pv>/map -> [(pe_first, count, 'free')] or
    [(pe_first, count, lv, le_first[, 'job N'])]."""
    out = []
    for line in (m.meta / "pvs" / pv / "map").read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        pe_first, n = parse_range(parts[0])
        if parts[1:] == ["free"]:
            out.append((pe_first, n, "free"))
        else:
            le_first, n2 = parse_range(parts[2])
            assert n == n2, f"PV map line with unequal ranges: {line!r}"
            out.append((pe_first, n, parts[1], le_first) + ((" ".join(parts[3:]),) if parts[3:] else ()))
    return out


def pv_allocated(m: Mount, pv: str) -> list[tuple]:
    """The non-free runs of a PV map."""
    return [r for r in pv_map(m, pv) if r[2] != "free"]


class LvModel:
    """In-memory image of an LV file, kept in step with writes made through
    `write`. A write locks the 1 MiB stripes it touches (in ascending order),
    then writes the LV and the model, so overlapping writes from several
    threads are serialised and the model holds the last completed one."""

    def __init__(self, size: int, stripe: int = MiB, data: bytes | None = None):
        self.size = size
        self.stripe = stripe
        self.buf = bytearray(data) if data is not None else bytearray(size)
        assert len(self.buf) == size
        self.locks = [threading.Lock() for _ in range((size + stripe - 1) // stripe)]
        self.writes = 0
        self._count_lock = threading.Lock()

    def write(self, fd: int, offset: int, data: bytes) -> None:
        assert 0 <= offset and offset + len(data) <= self.size
        first, last = offset // self.stripe, (offset + len(data) - 1) // self.stripe
        held = self.locks[first:last + 1]
        for lk in held:
            lk.acquire()
        try:
            n = pwrite_full(fd, data, offset)
            assert n == len(data), f"short write at {offset}: {n} of {len(data)}"
            self.buf[offset:offset + len(data)] = data
        finally:
            for lk in reversed(held):
                lk.release()
        with self._count_lock:
            self.writes += 1

    def random_write(self, fd: int, rng, lo: int = 0, hi: int | None = None,
                     min_len: int = 512, max_len: int = MiB) -> tuple[int, int]:
        """One write of random length (min_len..max_len) at a random unaligned
        offset inside [lo, hi). Returns (offset, length)."""
        hi = self.size if hi is None else hi
        length = rng.randint(min_len, min(max_len, hi - lo))
        offset = rng.randint(lo, hi - length)
        self.write(fd, offset, rng.randbytes(length))
        return offset, length

    def first_difference(self, path) -> tuple[int, bytes, bytes] | None:
        """(offset, expected, actual) of the first differing 4 KiB block of
        the LV file at `path`, or None when it equals the model."""
        fd = os.open(path, os.O_RDONLY)
        try:
            chunk = 4 * MiB
            for off in range(0, self.size, chunk):
                want = bytes(self.buf[off:off + chunk])
                got = pread_full(fd, len(want), off)
                if got != want:
                    for i in range(0, len(want), 4096):
                        if got[i:i + 4096] != want[i:i + 4096]:
                            return off + i, want[i:i + 16], got[i:i + 16]
        finally:
            os.close(fd)
        return None

    def assert_equals(self, path, what: str) -> None:
        d = self.first_difference(path)
        assert d is None, (f"{what}: LV content differs from the model at byte {d[0]} "
                           f"(expected {d[1].hex()}..., read {d[2].hex()}...)")


class RandomWriters:
    """`n` threads writing random data at random offsets (512 B..1 MiB,
    unaligned) through os.pwrite on one LV file, recorded in an LvModel.
    `phase` (a callable) is sampled per write to count writes per phase."""

    def __init__(self, model: LvModel, path, n: int = 4, seed: int = 1, lo: int = 0,
                 hi: int | None = None, phase=None, pause: float = 0.0):
        self.model, self.path, self.n, self.seed = model, path, n, seed
        self.lo, self.hi, self.phase, self.pause = lo, hi, phase, pause
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.per_phase: dict[str, int] = {}
        self._lock = threading.Lock()

    def _run(self, i: int) -> None:
        import random
        rng = random.Random(self.seed * 1000 + i)
        fd = os.open(self.path, os.O_RDWR)
        try:
            while not self.stop_event.is_set():
                ph = self.phase() if self.phase else "-"
                self.model.random_write(fd, rng, self.lo, self.hi)
                with self._lock:
                    self.per_phase[ph] = self.per_phase.get(ph, 0) + 1
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # reported by stop()
            self.errors.append(f"writer {i}: {e!r}")
        finally:
            os.close(fd)

    def start(self) -> "RandomWriters":
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> dict[str, int]:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a writer thread is stuck"
        assert not self.errors, "writer errors: " + "; ".join(self.errors)
        return dict(self.per_phase)


def warm_up_lv(m: Mount, lv: str, other_pv: str) -> None:
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


def start_slow_job(m: Mount, command: str, limit: str, max_fraction: float = 0.4, tries: int = 6) -> int:
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


# --------------------------------------------------------------------------
# The power-cut rig (integration/powercut/, docs/powercut.md)
# --------------------------------------------------------------------------

@pytest.fixture
def power_rig(tmp_path_factory):
    """Factory: power_rig(["pv0", "pv1"]) -> powercut.rig.PowerRig, PVs that
    lose power together. Request it BEFORE `env`, so its teardown (nbdfuse
    unmounts) runs after the vgfs mounts on it are gone. Lives outside the
    test's tmp_path, like nbd_dest in test_migration_faults.py."""
    import shutil as _shutil
    from powercut.rig import PowerRig, find_plugin
    missing = [t for t in ("nbdkit", "nbdfuse") if _shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages nbdkit, libnbd-bin)")
    plugin = find_plugin(VGFS_BIN, REPO)
    if plugin is None:
        pytest.fail("powercut.so not built: install nbdkit-plugin-dev (scripts/bootstrap) and rebuild")
    rigs: list = []

    def make(pvs, name="rig"):
        rig = PowerRig(tmp_path_factory.mktemp(name), pvs, plugin)
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            rig.stop()
