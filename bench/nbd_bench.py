"""Section `nbd` of the benchmark (issue 13, docs/nbd.md): vgfs with a PV on an
NBD export against the peers on that same export, in the same run.

One nbdkit (file plugin, image on /dev/shm, unix socket) serves one export.
The export is vgfs PV pv1 of a VG whose other PV, pv0, is a local image:

    pv1 PE [0, n)     LV lvn: the fio rows through vgfs
    pv1 PE [n, 2n)    free: where `vgfs move lvm pv1:n` copies lvm to
    pv1 PE [2n, 3n)   free in the VG: the peers' window (nbdfuse's fio rows
                      with --offset, qemu-storage-daemon's mirror target)
    pv0 PE [0, n)     LV lvm, the 1 GiB that moves local -> NBD

Rows: fio through the vgfs LV against fio through nbdfuse (its default 4
connections, the export allows multi-conn) on the peers' window; and a move
local -> NBD (`vgfs move`, timed until the job completed) against
qemu-storage-daemon's blockdev-mirror (sync=full, until ready) from a local
image of the same bytes to the same window over NBD. Between reps lvm moves
back to pv0 (untimed; that is a move off an NBD PV). One untimed round of
both goes first: the first copy after the fio rows ran 1.2-2.2 s against
0.5-0.7 s for the next ones, for vgfs and, less, for qsd, with the time in
the kernel's copies into fresh socket and page-cache memory (perf: 20 % of
both CPUs in the sender's copy into the unix socket) and 40 % idle, not in
either program, so the timed reps compare the programs, not which one met
cold memory first (docs/benchmarks.md, "Issue 13, quiet machine")."""

import hashlib
import os
import shutil
import subprocess
import time

from common import RES, VGFS, WORK, BenchError, log, run
from peers import dd_into, qsd_mirror_to, qsd_qmp_start, vgfs_mount_fg, vgfs_move
from vgfstest.files import sha256_file
from vgfstest.mounts import is_mounted
from vgfstest.sizes import MiB
from vgfstest.status import read_kv
from workloads import IO_ROW_EXTRA, IO_ROWS, fio

# The psync rows of the I/O section (workloads.IO_ROWS), on the NBD PV.
NBD_ROWS = [(f"nbd_{key}", f"NBD PV: {label}", rw, bs, nj, metric)
            for key, label, rw, bs, nj, metric in IO_ROWS if key not in IO_ROW_EXTRA]
# Many requests in flight from one fio job (issue 13: FUSE replies sent from
# the NBD completions, so a few FUSE threads keep dozens in flight).
NBD_ROWS += [("nbd_randread4k_qd32", "NBD PV: 4k random read, fio io_uring QD32", "randread", "4k", 1, "iops"),
             ("nbd_randwrite4k_qd32", "NBD PV: 4k random write, fio io_uring QD32", "randwrite", "4k", 1, "iops")]
NBD_ROW_EXTRA = {"nbd_randread4k_qd32": ("--ioengine=io_uring", "--iodepth=32"),
                 "nbd_randwrite4k_qd32": ("--ioengine=io_uring", "--iodepth=32")}
VGFS_SYS, FUSE_SYS = "vgfs NBD PV", "nbdfuse"
MOVE_VGFS, MOVE_QSD = "vgfs move", "qsd mirror"

# report.py takes these into its ratios and targets (issue 13's targets).
NBD_RATIOS = {key: {"vgfs/nbdfuse": (VGFS_SYS, FUSE_SYS)} for key, *_ in NBD_ROWS}
NBD_RATIOS["nbd_move"] = {"move/mirror": (MOVE_VGFS, MOVE_QSD)}
NBD_TARGETS = [
    ("nbd_randread4k", "vgfs/nbdfuse", ">=", 1.5), ("nbd_randwrite4k", "vgfs/nbdfuse", ">=", 1.5),
    ("nbd_randread4k_4j", "vgfs/nbdfuse", ">=", 3.0), ("nbd_move", "move/mirror", ">=", 1.5),
]


def nbdkit_start(img, sock, logpath):
    """nbdkit -f serving `img` on the unix socket `sock`; returns once it listens.
    (nbdkit -f dies with the thread that started it: call from the main thread.)"""
    logf = open(logpath, "w")
    p = subprocess.Popen(["nbdkit", "-f", "-U", sock, "file", img], stdout=logf, stderr=logf,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    RES.add_popen(p)
    end = time.monotonic() + 20
    while True:
        if p.poll() is not None:
            raise BenchError(f"nbdkit exited with {p.returncode}: {open(logpath).read()}")
        if os.path.exists(sock):
            try:
                run(["nbdinfo", "--size", f"nbd+unix:///?socket={sock}"])
                return p
            except BenchError:
                pass
        if time.monotonic() > end:
            raise BenchError("nbdkit not listening after 20 s")
        time.sleep(0.05)


def nbdfuse_uri_start(uri, d):
    """nbdfuse on an existing server (its default: 4 connections with multi-conn)."""
    os.makedirs(d, exist_ok=True)
    pidfile = d + ".pid"
    logf = open(d + ".log", "w")
    p = subprocess.Popen(["nbdfuse", "-P", pidfile, d, uri], stdout=logf, stderr=logf,
                         start_new_session=True)
    RES.add_popen(p)
    RES.add_mount(d)
    end = time.monotonic() + 20
    while not (os.path.exists(pidfile) and os.path.getsize(pidfile) > 0 and is_mounted(d)):
        if p.poll() is not None:
            raise BenchError(f"nbdfuse exited with {p.returncode}: {open(d + '.log').read()}")
        if time.monotonic() > end:
            raise BenchError("nbdfuse not ready after 20 s")
        time.sleep(0.02)
    return p


def qsd_start(src, sock):
    """qemu-storage-daemon with `src` as node raw0 and a QMP socket. Returns (pid, QMP)."""
    d = os.path.dirname(sock)
    return qsd_qmp_start(src, os.path.join(d, "qmp-nbd.sock"), os.path.join(d, "qsd-nbd.pid"), "qsd-nbd")


def qsd_mirror_nbd(qmp, rep, sock, offset, size):
    """blockdev-mirror (sync=full) of raw0 to [offset, offset+size) of the NBD
    export; returns the seconds until the job was ready."""
    nnode, rnode = f"nbd{rep}", f"nraw{rep}"
    qmp.cmd("blockdev-add", driver="nbd", **{"node-name": nnode,
                                             "server": {"type": "unix", "path": sock}})
    qmp.cmd("blockdev-add", driver="raw", offset=offset, size=size,
            **{"node-name": rnode, "file": nnode})
    dt = qsd_mirror_to(qmp, rnode, f"nm{rep}")
    qmp.cmd("blockdev-del", **{"node-name": rnode})
    qmp.cmd("blockdev-del", **{"node-name": nnode})
    return dt


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """CPU seconds all CPUs spent not idle so far (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def sha256_range(path, offset, size):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left:
            b = f.read(min(left, 8 * MiB))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def nbd_section(bench):
    """Runs the section for workloads.Bench `bench` (its base image, sizes, args, report)."""
    a, rep_ = bench.a, bench.report
    size, ext = bench.img_size, bench.extent
    n = size // ext
    d = os.path.join(WORK, "nbd-sec")
    os.makedirs(d)
    img, sock = os.path.join(d, "export.img"), os.path.join(d, "nbd.sock")
    uri = f"nbd+unix:///?socket={sock}"
    # 16 MiB for the label area, 3n extents, one spare
    with open(img, "wb") as f:
        f.truncate(16 * MiB + (3 * n + 1) * ext)
    nproc = nbdkit_start(img, sock, os.path.join(d, "nbdkit.log"))
    cfg = os.path.join(d, "vg.yaml")
    with open(cfg, "w") as f:
        f.write(f"vg: {{name: vgnbd, extent_size: {ext // MiB}MiB}}\npvs:\n"
                f"  - {{name: pv0, path: pv0.img, size: {16 + (n + 1) * ext // MiB}MiB}}\n"
                f"  - {{name: pv1, path: \"{uri}\"}}\nlvs:\n"
                f"  - name: lvn\n    extents:\n      - {{le: 0-{n - 1}, pv: pv1, pe: 0-{n - 1}}}\n"
                f"  - name: lvm\n    extents:\n      - {{le: 0-{n - 1}, pv: pv0, pe: 0-{n - 1}}}\n")
    run([VGFS, "create", cfg])
    mnt = os.path.join(d, "mnt")
    vlog = os.path.join(d, "vgfs.log")
    vproc = vgfs_mount_fg(cfg, mnt, vlog)  # -f: its stderr (NBD warnings) kept in vlog
    pe_start = int(read_kv(os.path.join(mnt, ".vgfs", "pvs", "pv1", "info"))["pe_start"])
    peer_off = pe_start + 2 * n * ext
    lvn, lvm = os.path.join(mnt, "lvn"), os.path.join(mnt, "lvm")
    dd_into(bench.base, lvn)
    dd_into(bench.base, lvm)
    run(["dd", f"if={bench.base}", f"of={img}", "bs=1M", f"seek={peer_off}",
         "oflag=seek_bytes", "conv=notrunc,fsync", "status=none"])
    fdir = os.path.join(d, "nbdfuse")
    fproc = nbdfuse_uri_start(uri, fdir)
    ffile = os.path.join(fdir, "nbd")
    fpid = int(open(fdir + ".pid").read().strip())
    for p, off in ((lvn, 0), (ffile, peer_off)):
        got = sha256_range(p, off, size)
        if got != bench.base_sha:
            raise BenchError(f"{p} does not read back the base image (sha256 {got})")
    info = {"nbdkit": "file plugin, image on /dev/shm, unix socket", "pe_start": pe_start,
            "peer_window_offset": peer_off, "vgfs_opts": "default (nbd_conns=4)",
            "nbdfuse": "default (-C 4, multi-conn)", "cpu": {}}
    cpu = info["cpu"]
    try:
        for key, label, rw, bs, nj, metric in NBD_ROWS:
            rep_.new_row(key, label, "nbd", metric)
            for r in range(a.reps):
                for s, path, extra, fuse_pid in (
                        (VGFS_SYS, lvn, NBD_ROW_EXTRA.get(key, ()), vproc.pid),
                        (FUSE_SYS, ffile, (f"--offset={peer_off}", f"--size={size}") + NBD_ROW_EXTRA.get(key, ()),
                         fpid)):
                    # Where the CPU goes (what limits the row on a small
                    # machine): the FUSE server's and nbdkit's CPU per
                    # request, and how busy the machine was.
                    c0, k0, b0, t0 = cpu_seconds(fuse_pid), cpu_seconds(nproc.pid), machine_busy_seconds(), \
                        time.perf_counter()
                    res = fio(path, rw, bs, a.runtime, nj, extra)
                    c1, k1, b1, t1 = cpu_seconds(fuse_pid), cpu_seconds(nproc.pid), machine_busy_seconds(), \
                        time.perf_counter()
                    v = res[metric]
                    rep_.record(key, s, v)
                    ops = max(res["iops"] * a.runtime, 1)
                    cpu.setdefault(key, {}).setdefault(s, []).append({
                        "fuse_server_us_per_op": (c1 - c0) / ops * 1e6,
                        "nbdkit_us_per_op": (k1 - k0) / ops * 1e6,
                        "machine_busy_cpus": (b1 - b0) / (t1 - t0)})
                    log(f"  {key:18} rep {r + 1} {s:12} {v:12.1f} {metric}  "
                        f"(server {(c1 - c0) / ops * 1e6:.1f} us/op, nbdkit {(k1 - k0) / ops * 1e6:.1f} "
                        f"us/op, machine {(b1 - b0) / (t1 - t0):.2f} CPUs busy)")
        RES.unmount(fdir)
        try:
            fproc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fproc.terminate()

        # move local -> NBD against qsd's blockdev-mirror to the same export
        rep_.new_row("nbd_move", f"{size // MiB} MiB move local -> NBD: rate", "nbd", "MiB/s")
        rep_.new_row("nbd_move_back", f"{size // MiB} MiB move NBD -> local: rate", "nbd", "MiB/s")
        src = os.path.join(d, "mirror-src.img")
        shutil.copyfile(bench.base, src)
        qpid, qmp = qsd_start(src, sock)
        vgfs_move(mnt, "lvm", f"pv1:{n}")  # the untimed round (see the top)
        vgfs_move(mnt, "lvm", "pv0:0")
        qsd_mirror_nbd(qmp, a.reps, sock, peer_off, size)
        for r in range(a.reps):
            dt, moved = vgfs_move(mnt, "lvm", f"pv1:{n}")
            if moved != size:
                raise BenchError(f"move lvm pv1:{n} moved {moved} bytes, expected {size}")
            rep_.record("nbd_move", MOVE_VGFS, size / MiB / dt)
            if r == 0 and sha256_file(lvm) != bench.base_sha:
                raise BenchError("vgfs wrong data: lvm changed in its move to the NBD PV")
            dtb, _ = vgfs_move(mnt, "lvm", "pv0:0")
            rep_.record("nbd_move_back", MOVE_VGFS, size / MiB / dtb)
            dtm = qsd_mirror_nbd(qmp, r, sock, peer_off, size)
            rep_.record("nbd_move", MOVE_QSD, size / MiB / dtm)
            if r == 0:
                got = sha256_range(img, peer_off, size)
                if got != bench.base_sha:
                    raise BenchError(f"qsd mirror target differs from its source ({got})")
            log(f"  nbd_move rep {r + 1}: vgfs {dt:.3f} s (back {dtb:.3f} s), mirror {dtm:.3f} s")
        qmp.close()
        RES.stop_pid(qpid)
        if sha256_file(lvm) != bench.base_sha:
            raise BenchError("vgfs wrong data: lvm changed across the moves")
    finally:
        rep_.info["nbd"] = info
        RES.unmount(fdir)
        RES.unmount(mnt)
        try:
            vproc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        nproc.terminate()
        try:
            nproc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nproc.kill()
        shutil.rmtree(d, ignore_errors=True)
