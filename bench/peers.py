"""The systems the benchmark measures side by side: vgfs (mounted daemonized or
in the foreground, on /dev/fuse or with `-o io_uring`, its `move`), and its
peers: libfuse's passthrough_ll example (the classic FUSE ceiling, built here
from Debian's libfuse3-dev examples), qemu-storage-daemon's FUSE export and
its blockdev-mirror (driven over QMP), and nbdfuse over nbdkit.
Every mount and process started here is registered with RES (common.py)."""

import json
import os
import shutil
import socket
import subprocess
import time

from common import RES, VGFS, WORK, BenchError, run
from vgfstest import control
from vgfstest.files import sha256_file
from vgfstest.mounts import daemon_pids, is_mounted


# --------------------------------------------------------------------------
# vgfs

def vgfs_daemon_pid(mnt):
    mnt = os.path.abspath(mnt)
    found = daemon_pids(mnt, binary=VGFS)
    if len(found) != 1:
        raise BenchError(f"expected one vgfs daemon for {mnt}, found {found}")
    return found[0]


def vgfs_mount(cfg, mnt):
    os.makedirs(mnt, exist_ok=True)
    t0 = time.perf_counter()
    run([VGFS, "mount", cfg, mnt], start_new_session=True)
    dt = time.perf_counter() - t0
    RES.add_mount(mnt)
    pid = vgfs_daemon_pid(mnt)
    RES.add_pid(pid, os.path.abspath(mnt))
    return dt, pid


def vgfs_mount_fg(cfg, mnt, logpath, opts=None):
    """`vgfs mount -f` with its stderr kept in logpath (the daemonized form sends it to
    /dev/null, which would hide a crash message). Returns the Popen once the mount is up."""
    os.makedirs(mnt, exist_ok=True)
    logf = open(logpath, "w")
    p = subprocess.Popen([VGFS, "mount", "-f", cfg, mnt] + (["-o", opts] if opts else []),
                         stdout=logf, stderr=logf, start_new_session=True)
    RES.add_popen(p)
    RES.add_mount(mnt)
    end = time.monotonic() + 60
    while not (is_mounted(mnt) and os.path.exists(os.path.join(mnt, ".vgfs", "ctl"))):
        if p.poll() is not None:
            raise BenchError(f"vgfs mount -f exited with {p.returncode}: {open(logpath).read()}")
        if time.monotonic() > end:
            raise BenchError("vgfs mount -f not ready after 60 s")
        time.sleep(0.01)
    return p


def dmesg_about(pid):
    r = subprocess.run(["dmesg"], capture_output=True, text=True)
    return [l for l in r.stdout.splitlines() if f"[{pid}]" in l]


def vgfs_unmount(mnt, pid):
    RES.unmount(mnt, lazy_fallback=False)
    if not RES.wait_pid_exit(pid, 30):
        raise BenchError(f"vgfs daemon {pid} still running 30 s after unmounting {mnt}")


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


def mem_breakdown(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads"):
                out[k] = line.split(":", 1)[1].strip()
    return out



def ctl(mnt, command):
    """One control-file command (vgfstest's client); its reply, stripped, or
    BenchError when the write failed."""
    try:
        err, reply = control.ctl(mnt, command)
    except OSError as e:
        raise BenchError(f"ctl '{command}': {e}")
    if err:
        raise BenchError(f"ctl '{command}': [Errno {err}] {os.strerror(err)} {reply.strip()}")
    return reply.strip()


def vgfs_move(mnt, lv, pv, timeout=600.0, poll=0.01):
    """Starts `move LV PV`; returns (seconds until every job is completed, bytes)."""
    t0 = time.perf_counter()
    reply = ctl(mnt, f"move {lv} {pv}")
    if not reply.startswith("ok job"):
        raise BenchError(f"move {lv} {pv}: {reply}")
    try:
        done = control.wait_jobs(mnt, control.reply_job_ids(reply), timeout=timeout, poll=poll)
    except AssertionError as e:
        raise BenchError(f"move {lv} {pv}: {e}")
    dt = time.perf_counter() - t0
    for j, st in done.items():
        if st["sync_status"] != "completed":
            raise BenchError(f"move {lv} {pv}: job {j} {st['sync_status']}: {st.get('reason')}")
    return dt, sum(int(st.get("size", 0)) for st in done.values())


def dd_into(src, dst):
    run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=notrunc,fsync", "status=none"])


ENABLE_URING = "/sys/module/fuse/parameters/enable_uring"


def possible_cpus():
    """The CPUs /sys/devices/system/cpu/possible lists: vgfs makes a ring queue for each."""
    count = 0
    for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
        a, _, b = part.partition("-")
        count += int(b or a) - int(a) + 1
    return count


def vgfs_mount_uring(cfg, mnt, logpath):
    """`vgfs mount -f -o io_uring`, with the kernel side switched on only while the
    mount starts (a connection that accepted io_uring at INIT keeps it) and put back
    to N, also on failure. Returns (Popen, None) when the rings serve the mount, or
    (Popen, reason) when vgfs fell back to /dev/fuse."""
    if not os.path.exists(ENABLE_URING):
        return None, f"this kernel has no FUSE over io_uring ({ENABLE_URING} is missing)"
    try:
        with open(ENABLE_URING, "w") as f:
            f.write("Y")
        p = vgfs_mount_fg(cfg, mnt, logpath, opts="io_uring")
        # The first request waits for INIT only: the ring threads register
        # their entries after it. A background `vgfs mount` returns once they
        # did (src/fuse/background.h); a foreground one has no such moment, so
        # the switch stays on a while longer. A queue whose entries the kernel
        # refused has no thread below, and then no request uses any ring.
        open(os.path.join(mnt, ".vgfs", "vg")).read()
        time.sleep(1.0)
    finally:
        with open(ENABLE_URING, "w") as f:
            f.write("N")
    pid = p.pid
    rings = [t for t in os.listdir(f"/proc/{pid}/task")
             if open(f"/proc/{pid}/task/{t}/comm").read().strip().startswith("vgfs-ring-")
             and open(f"/proc/{pid}/task/{t}/comm").read().strip() != "vgfs-ring-work"]
    said = [l for l in open(logpath).read().splitlines() if "io_uring" in l]
    queues = possible_cpus()
    if said or len(rings) != queues:
        return p, (said[0] if said else f"{len(rings)} ring threads running for {queues} possible CPUs")
    return p, None


# --------------------------------------------------------------------------
# peers

def passthrough_ll_build(d):
    """Builds libfuse's passthrough_ll example (Debian libfuse3-dev) into d; never
    committed, rebuilt each run."""
    src = "/usr/share/doc/libfuse3-dev/examples"
    os.makedirs(d, exist_ok=True)
    for name in ("passthrough_ll.c", "passthrough_helpers.h"):
        shutil.copyfile(os.path.join(src, name), os.path.join(d, name))
    cflags = run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                 text=True).stdout.split()
    exe = os.path.join(d, "passthrough_ll")
    run(["gcc", "-O2", "-o", exe, os.path.join(d, "passthrough_ll.c"), *cflags])
    return exe


def passthrough_ll_start(exe, source, mnt):
    """passthrough_ll -f (its defaults: multithreaded, 1 MiB requests) serving the
    folder `source` at mnt."""
    os.makedirs(mnt, exist_ok=True)
    logf = open(mnt + ".log", "w")
    p = subprocess.Popen([exe, "-f", "-o", f"source={source}", mnt], stdout=logf, stderr=logf,
                         start_new_session=True)
    RES.add_popen(p)
    RES.add_mount(mnt)
    end = time.monotonic() + 20
    while not is_mounted(mnt):
        if p.poll() is not None:
            raise BenchError(f"passthrough_ll exited with {p.returncode}: {open(mnt + '.log').read()}")
        if time.monotonic() > end:
            raise BenchError("passthrough_ll not mounted after 20 s")
        time.sleep(0.02)
    return p


def qsd_fuse_start(img, export_file, tag):
    open(export_file, "w").close()
    pidfile = export_file + ".pid"
    run(["qemu-storage-daemon",
         "--blockdev", f"driver=file,node-name=file0,filename={img}",
         "--blockdev", "driver=raw,node-name=raw0,file=file0",
         "--export", f"type=fuse,id=exp0,node-name=raw0,mountpoint={export_file},"
                     "writable=on,allow-other=off",
         "--pidfile", pidfile, "--daemonize"], start_new_session=True)
    RES.add_mount(export_file)
    pid = int(open(pidfile).read().strip())
    RES.add_pid(pid, tag)
    return pid


def nbdfuse_start(img, d):
    os.makedirs(d, exist_ok=True)
    pidfile = d + ".pid"
    logf = open(d + ".log", "w")
    p = subprocess.Popen(["nbdfuse", "-P", pidfile, d, "--command", "nbdkit", "-s", "file", img],
                         stdout=logf, stderr=logf, start_new_session=True)
    RES.add_popen(p)
    RES.add_mount(d)
    end = time.monotonic() + 20
    while not (os.path.exists(pidfile) and os.path.getsize(pidfile) > 0):
        if p.poll() is not None:
            raise BenchError(f"nbdfuse exited with {p.returncode}: {open(d + '.log').read()}")
        if time.monotonic() > end:
            raise BenchError("nbdfuse not ready after 20 s")
        time.sleep(0.02)
    return p


class QMP:
    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise BenchError(f"QMP socket {path} not reachable")
                time.sleep(0.05)
        self.buf = b""
        self.events = []
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise BenchError(f"QMP {name}: {r['error']}")
            return r.get("return")

    def close(self):
        self.sock.close()


def qsd_qmp_start(src, qmp_sock, pidfile, label):
    """qemu-storage-daemon with `src` as node raw0, a QMP socket and no export.
    Returns (pid, QMP)."""
    run(["qemu-storage-daemon",
         "--blockdev", f"driver=file,node-name=file0,filename={src}",
         "--blockdev", "driver=raw,node-name=raw0,file=file0",
         "--chardev", f"socket,path={qmp_sock},server=on,wait=off,id=qmp0",
         "--monitor", "chardev=qmp0",
         "--pidfile", pidfile, "--daemonize"], start_new_session=True)
    pid = int(open(pidfile).read().strip())
    RES.add_pid(pid, label)
    return pid, QMP(qmp_sock)


def qsd_mirror_start(base):
    """qemu-storage-daemon with a copy of `base` as node raw0 and a QMP socket:
    the peer of `vgfs move` (QEMU's blockdev-mirror). Returns (pid, QMP)."""
    src = os.path.join(WORK, "mirror-src.img")
    shutil.copyfile(base, src)
    return qsd_qmp_start(src, os.path.join(WORK, "qmp.sock"), os.path.join(WORK, "qsd-mirror.pid"),
                         "mirror-src.img")


def qsd_mirror_to(qmp, target, job):
    """blockdev-mirror (sync=full) of raw0 to the node `target`; returns the
    seconds until the job was ready, then completes it without pivoting (the
    source stays the node's image) and waits until it is gone."""
    t0 = time.perf_counter()
    qmp.cmd("blockdev-mirror", **{"job-id": job, "device": "raw0", "target": target,
                                  "sync": "full"})
    while True:
        jobs = [j for j in qmp.cmd("query-block-jobs") if j["device"] == job]
        if not jobs:
            raise BenchError(f"mirror job {job} vanished: {qmp.events[-5:]}")
        if jobs[0].get("ready"):
            break
        if time.perf_counter() - t0 > 600:
            raise BenchError(f"mirror not ready after 600 s: {jobs[0]}")
        time.sleep(0.01)
    dt = time.perf_counter() - t0
    qmp.cmd("block-job-cancel", device=job)
    end = time.monotonic() + 60
    while any(j["device"] == job for j in qmp.cmd("query-block-jobs")):
        if time.monotonic() > end:
            raise BenchError(f"mirror job {job} did not finish after cancel")
        time.sleep(0.01)
    return dt


def qsd_mirror_once(qmp, rep, img_size):
    """One full blockdev-mirror of raw0 to a new sparse target; returns the
    seconds until the job was ready."""
    tgt = os.path.join(WORK, f"mirror-dst-{rep}.img")
    with open(tgt, "wb") as f:
        f.truncate(img_size)
    fnode, rnode = f"tfile{rep}", f"traw{rep}"
    qmp.cmd("blockdev-add", driver="file", **{"node-name": fnode, "filename": tgt})
    qmp.cmd("blockdev-add", driver="raw", **{"node-name": rnode, "file": fnode})
    dt = qsd_mirror_to(qmp, rnode, f"m{rep}")
    qmp.cmd("blockdev-del", **{"node-name": rnode})
    qmp.cmd("blockdev-del", **{"node-name": fnode})
    if rep == 0 and sha256_file(tgt) != sha256_file(os.path.join(WORK, "mirror-src.img")):
        raise BenchError("qsd mirror target differs from its source")
    os.unlink(tgt)
    return dt
