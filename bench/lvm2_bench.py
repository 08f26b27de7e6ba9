"""The `lvm2` section of bench/run (docs/benchmarks.md, issue 11): LVM2 VGs
served by vgfs, against vgfs's own format and LVM2's own tools.

- fio rows (the I/O section's IO_ROWS) on a linear and on a striped
  (`-i2 -I64k`) LV of a VG that LVM2 made, mounted by vgfs from its PV
  images, against a vgfs-format LV of the same size in the same run, all
  PV images on tmpfs;
- the migration section's rows (issue 12) on an LV of a VG that LVM2 made
  and on one of a vgfs VG, mounted side by side: an idle move's rate (and
  cp's), 4k randwrite QD1 IOPS and p99 latency without and during
  back-and-forth moves, and a move's time idle and under 4k randwrite; the
  targets are the migration section's, for each VG;
- `vgfs lvs PV` against LVM2's `lvs VG` on a VG of 1,000 LVs on a loop
  device (LVM2 wrote the VG: `vgcfgrestore` of a text with the 1,000 LVs
  added to its own `vgcfgbackup`, since 1,000 `lvcreate` runs take minutes).

LVM2's tools run in a private world (vgfstest.lvm2.Lvm: LVM_SYSTEM_DIR with
activation = 0 and a filter for this run's loops only); its loops are
detached by name and its folder removed at the end, also on an error.
bench/run calls lvm2_section(); report.py takes RATIOS and TARGETS."""

import os
import random
import shutil
import signal
import subprocess
import threading
import time

from common import RES, VGFS, WORK, BenchError, log, run
from peers import dd_into, vgfs_move
from vgfstest.files import sha256_file
from vgfstest.lvm2 import Lvm
from vgfstest.mounts import is_mounted
from vgfstest.sizes import MiB
from workloads import IO_ROW_EXTRA, IO_ROWS, fio

# The systems of each fio row of this section.
SYSTEMS = [("vgfs", "vgfs-format LV"), ("lvm2_linear", "LVM2 linear LV"),
           ("lvm2_striped", "LVM2 striped LV (2 x 64 KiB)")]
N_LVS = 1000

RATIOS = {f"lvm2_{key}": {"linear/vgfs": ("lvm2_linear", "vgfs"), "striped/vgfs": ("lvm2_striped", "vgfs")}
          for key, *_ in IO_ROWS}
RATIOS["lvm2_lvs"] = {"lvm2/vgfs": ("LVM2 lvs", "vgfs lvs")}   # > 1: vgfs is faster
# The migration rows: each VG's own ratios, with the migration section's targets.
MOVE_VGS = [("vgfs", "vgfs VG"), ("lvm2", "LVM2 VG")]
RATIOS["lvm2_move_idle"] = {"lvm2/cp": ("LVM2 VG move", "cp"), "vgfs/cp": ("vgfs VG move", "cp"),
                            "lvm2/vgfs": ("LVM2 VG move", "vgfs VG move")}
for q in ("iops", "p99"):
    RATIOS[f"lvm2_move_fg_{q}"] = {f"{v} during/without": (f"{label}: during move", f"{label}: without move")
                                   for v, label in MOVE_VGS}
RATIOS["lvm2_move_load_time"] = {f"{v} loaded/idle": (f"{label}: under load", f"{label}: idle")
                                 for v, label in MOVE_VGS}
TARGETS = ([(f"lvm2_{key}", r, ">=", 0.95) for key, *_ in IO_ROWS for r in ("linear/vgfs", "striped/vgfs")] +
           [("lvm2_lvs", "lvm2/vgfs", ">=", 2.0)] +
           [t for v, _ in MOVE_VGS for t in (("lvm2_move_idle", f"{v}/cp", ">=", 0.8),
                                             ("lvm2_move_fg_iops", f"{v} during/without", ">=", 0.85),
                                             ("lvm2_move_fg_p99", f"{v} during/without", "<=", 2.0),
                                             ("lvm2_move_load_time", f"{v} loaded/idle", "<=", 1.5))])


def mount_fg(sources, mnt, logpath, opts=None):
    """`vgfs mount -f SOURCE... MNT [-o OPTS]`, registered with RES; returns the
    Popen once the mount serves its control file."""
    os.makedirs(mnt, exist_ok=True)
    logf = open(logpath, "w")
    p = subprocess.Popen([VGFS, "mount", "-f", *sources, mnt] + (["-o", opts] if opts else []),
                         stdout=logf, stderr=logf,
                         start_new_session=True)
    RES.add_popen(p)
    RES.add_mount(mnt)
    end = time.monotonic() + 60
    while not (is_mounted(mnt) and os.path.exists(os.path.join(mnt, ".vgfs", "ctl"))):
        if p.poll() is not None:
            raise BenchError(f"vgfs mount -f {' '.join(sources)} exited with {p.returncode}: "
                             f"{open(logpath).read().strip()[:500]}")
        if time.monotonic() > end:
            raise BenchError(f"vgfs mount -f {' '.join(sources)} not ready after 60 s")
        time.sleep(0.01)
    return p


def unmount(mnt, proc):
    RES.unmount(mnt)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"vgfs mount -f of {mnt} still running 30 s after fusermount3 -u")


def lvm2_id():
    """A fresh LVM2 id as its text writes it (6-4-4-4-4-4-6 characters)."""
    chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#"
    s = "".join(random.choice(chars) for _ in range(32))
    parts, at = [], 0
    for n in (6, 4, 4, 4, 4, 4, 6):
        parts.append(s[at:at + n])
        at += n
    return "-".join(parts)


def with_lvs(backup, vg, n, extents):
    """LVM2's vgcfgbackup text of an empty VG with `n` linear LVs of `extents`
    extents each added, one after the other on pv0."""
    lines = ["logical_volumes {"]
    for i in range(n):
        lines += [f"lv{i:04d} {{", f'id = "{lvm2_id()}"', 'status = ["READ", "WRITE", "VISIBLE"]',
                  "flags = []", "creation_time = 1764900000", 'creation_host = "bench"', "segment_count = 1",
                  "segment1 {", "start_extent = 0", f"extent_count = {extents}", 'type = "striped"',
                  "stripe_count = 1", f'stripes = ["pv0", {i * extents}]', "}", "}"]
    lines.append("}")
    text = backup.splitlines()
    start = text.index(f"{vg} {{")
    end = next(i for i in range(start + 1, len(text)) if text[i] == "}")
    return "\n".join(text[:end] + lines + text[end:]) + "\n"


def io_rows(bench, lvm, d):
    """fio on a vgfs-format LV and on LVM2's linear and striped LVs."""
    size, ext = bench.img_size, 4 * MiB
    # vgfs's own VG: one contiguous LV of the same size
    cfg = os.path.join(d, "vg.yaml")
    with open(cfg, "w") as f:
        f.write("vg: {name: vgbenchl, extent_size: 4MiB}\npvs:\n"
                "  - {name: pv0, path: pv0.img, size: %dMiB}\nlvs:\n  - {name: lv, size: %dMiB}\n"
                % (13 + size // MiB + 8, size // MiB))
    run([VGFS, "create", cfg])
    # LVM2's VG: lin (linear, on its first PV) and st (2 stripes of 64 KiB)
    imgs = [os.path.join(d, f"lvm2-pv{i}.img") for i in (0, 1)]
    for p in imgs:
        with open(p, "wb") as f:
            f.truncate(size + size // 2 + 16 * MiB)
    devs = [lvm.attach(p) for p in imgs]
    lvm.run("pvcreate", "-q", *devs)
    lvm.run("vgcreate", "-q", "-s", f"{ext // MiB}m", "vgbio", *devs)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lin", "-L", f"{size // MiB}m", "vgbio", devs[0])
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-i2", "-I64k", "-n", "st", "-L", f"{size // MiB}m", "vgbio")
    ranges = lvm.run("lvs", "--noheadings", "-o", "lv_name,seg_pe_ranges", "vgbio").split("\n")
    lvm.detach_all()   # vgfs serves the image files themselves, on tmpfs as vgfs's own PVs are
    lock = os.path.join(d, "lock")
    os.makedirs(lock)
    mv, ml = os.path.join(d, "mnt-vgfs"), os.path.join(d, "mnt-lvm2")
    pv = mount_fg([cfg], mv, os.path.join(d, "vgfs.log"))
    pl = mount_fg(imgs, ml, os.path.join(d, "lvm2.log"), f"lvm_lock_dir={lock}")
    files = {"vgfs": os.path.join(mv, "lv"), "lvm2_linear": os.path.join(ml, "lin"),
             "lvm2_striped": os.path.join(ml, "st")}
    for s, path in files.items():
        if os.path.getsize(path) != size:
            raise BenchError(f"{s}: {path} has size {os.path.getsize(path)}, expected {size}")
        dd_into(bench.base, path)
        got = sha256_file(path)
        if got != bench.base_sha:
            raise BenchError(f"vgfs wrong data: {path} reads back sha256 {got}, wrote {bench.base_sha}")
    bench.report.info["lvm2_io_lvs"] = [" ".join(l.split()) for l in ranges if l.strip()]
    log(f"LVM2 VG ready: {bench.report.info['lvm2_io_lvs']}")
    for key, label, rw, bs, nj, metric in IO_ROWS:
        k = f"lvm2_{key}"
        bench.report.new_row(k, f"LVM2 VG: {label}", "lvm2", metric)
        for rep in range(bench.a.reps):
            for s, _ in SYSTEMS:
                v = fio(files[s], rw, bs, bench.a.runtime, nj, IO_ROW_EXTRA.get(key, ()))[metric]
                bench.report.record(k, s, v)
                log(f"  {k:20} rep {rep + 1} {s:12} {v:12.1f} {metric}")
    unmount(ml, pl)
    unmount(mv, pv)
    for p in imgs + [os.path.join(d, "pv0.img")]:
        os.unlink(p)


class Mover:
    """Moves one LV of a mounted VG back and forth between pv0 and pv1."""

    def __init__(self, mnt, lv, size):
        self.mnt, self.lv, self.size, self.where = mnt, lv, size, "pv0"

    def once(self):
        to = "pv1" if self.where == "pv0" else "pv0"
        dt, moved = vgfs_move(self.mnt, self.lv, to)
        if moved != self.size:
            raise BenchError(f"{self.mnt}: move {self.lv} {to} moved {moved} bytes, expected {self.size}")
        self.where = to
        return dt


def fio_during_moves(bench, mover, path):
    """fio's 4k randwrite QD1 while `mover` moves the LV back and forth;
    returns (fio's figures, the moves completed meanwhile)."""
    stop, err, done = threading.Event(), [], []

    def loop():
        try:
            while not stop.is_set():
                done.append(mover.once())
        except Exception as e:   # reported below
            err.append(e)
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    time.sleep(0.05)
    try:
        during = fio(path, "randwrite", "4k", bench.a.runtime)
    finally:
        stop.set()
        t.join(timeout=600)
    if t.is_alive():
        raise BenchError("move thread did not finish 600 s after fio ended")
    if err:
        raise err[0]
    return during, len(done)


def move_under_load(bench, mover, path):
    """The time of one move while fio writes 4k at random, QD1, on the LV."""
    cmd = ["fio", "--name=load", f"--filename={path}", "--direct=1", "--ioengine=psync", "--rw=randwrite",
           "--bs=4k", "--time_based", "--runtime=3600", "--output-format=json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    RES.add_popen(p)
    try:
        time.sleep(0.3 if bench.smoke else 1.0)
        if p.poll() is not None:
            raise BenchError(f"load fio exited early: {p.stderr.read().decode()[:500]}")
        return mover.once()
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


def move_rows(bench, lvm, d):
    """The migration section's rows on an LV of an LVM2-made VG and on one of
    a vgfs VG, both of two PVs (images on tmpfs), mounted side by side."""
    size, ext = bench.img_size, 4 * MiB
    cfg = os.path.join(d, "mvg.yaml")
    pv_mib = 13 + size // MiB + 16
    with open(cfg, "w") as f:
        f.write("vg: {name: vgbmvf, extent_size: 4MiB}\npvs:\n"
                f"  - {{name: pv0, path: mpv0.img, size: {pv_mib}MiB}}\n"
                f"  - {{name: pv1, path: mpv1.img, size: {pv_mib}MiB}}\n"
                f"lvs:\n  - {{name: lv, extents: [{{le: 0-{size // ext - 1}, pv: pv0, pe: 0-{size // ext - 1}}}]}}\n")
    run([VGFS, "create", cfg])
    imgs = [os.path.join(d, f"lvm2-mpv{i}.img") for i in (0, 1)]
    for p in imgs:
        with open(p, "wb") as f:
            f.truncate(size + 16 * MiB)
    devs = [lvm.attach(p) for p in imgs]
    lvm.run("pvcreate", "-q", *devs)
    lvm.run("vgcreate", "-q", "-s", f"{ext // MiB}m", "vgbmv", *devs)
    lvm.run("lvcreate", "-q", "-an", "-Zn", "-n", "lv", "-L", f"{size // MiB}m", "vgbmv", devs[0])
    lvm.detach_all()
    lock = os.path.join(d, "mlock")
    os.makedirs(lock)
    mounts = {"vgfs": (os.path.join(d, "mnt-mvgfs"), [cfg], None),
              "lvm2": (os.path.join(d, "mnt-mlvm2"), imgs, f"lvm_lock_dir={lock}")}
    procs = {v: mount_fg(src, mnt, os.path.join(d, f"m{v}.log"), opts) for v, (mnt, src, opts) in mounts.items()}
    movers, paths = {}, {}
    for v, (mnt, _, _) in mounts.items():
        paths[v] = os.path.join(mnt, "lv")
        dd_into(bench.base, paths[v])
        movers[v] = Mover(mnt, "lv", size)
    rows = {"lvm2_move_idle": (f"LVM2 VG: {size // MiB} MiB move, idle: rate", "MiB/s", "higher"),
            "lvm2_move_fg_iops": ("LVM2 VG: 4k randwrite QD1 on the LV: IOPS", "iops", "higher"),
            "lvm2_move_fg_p99": ("LVM2 VG: 4k randwrite QD1 on the LV: p99 latency", "µs", "lower"),
            "lvm2_move_load_time": ("LVM2 VG: move time, idle vs under 4k randwrite", "s", "lower")}
    for k, (label, unit, better) in rows.items():
        bench.report.new_row(k, label, "lvm2", unit, better=better)
    during_moves = {v: [] for v in mounts}
    for rep in range(bench.a.reps):
        for v, label in MOVE_VGS:
            dt = movers[v].once()
            bench.report.record("lvm2_move_idle", f"{label} move", size / MiB / dt)
            log(f"  lvm2_move_idle rep {rep + 1} {label}: {size / MiB / dt:.1f} MiB/s")
        dst = os.path.join(d, "cp-dst.img")
        t0 = time.perf_counter()
        run(["cp", bench.base, dst])
        bench.report.record("lvm2_move_idle", "cp", size / MiB / (time.perf_counter() - t0))
        os.unlink(dst)
        for v, label in MOVE_VGS:
            alone = fio(paths[v], "randwrite", "4k", bench.a.runtime)
            during, n = fio_during_moves(bench, movers[v], paths[v])
            during_moves[v].append(n)
            for what, r in (("without move", alone), ("during move", during)):
                bench.report.record("lvm2_move_fg_iops", f"{label}: {what}", r["iops"])
                bench.report.record("lvm2_move_fg_p99", f"{label}: {what}", r["p99"])
            log(f"  lvm2_move_fg_iops rep {rep + 1} {label}: without {alone['iops']:.0f}, during "
                f"{during['iops']:.0f} IOPS ({n} moves completed during the run)")
        for v, label in MOVE_VGS:
            idle = movers[v].once()
            loaded = move_under_load(bench, movers[v], paths[v])
            bench.report.record("lvm2_move_load_time", f"{label}: idle", idle)
            bench.report.record("lvm2_move_load_time", f"{label}: under load", loaded)
            log(f"  lvm2_move_load_time rep {rep + 1} {label}: idle {idle:.3f} s, under load {loaded:.3f} s")
    bench.report.info["lvm2_moves_completed_during_fg_fio"] = during_moves
    for v, (mnt, _, _) in mounts.items():
        unmount(mnt, procs[v])
    # LVM2's view of where the last move left the LV: vgck must pass.
    devs = [lvm.attach(p) for p in imgs]
    lvm.run("vgck", "vgbmv")
    ranges = lvm.run("lvs", "-a", "--noheadings", "-o", "lv_name,seg_pe_ranges", "vgbmv")
    bench.report.info["lvm2_move_lvs_after"] = [" ".join(l.split()) for l in ranges.splitlines() if l.strip()]
    if len(bench.report.info["lvm2_move_lvs_after"]) != 1:
        raise BenchError(f"LVM2 after the moves: {bench.report.info['lvm2_move_lvs_after']}")
    lvm.detach_all()
    for p in imgs + [os.path.join(d, "mpv0.img"), os.path.join(d, "mpv1.img")]:
        os.unlink(p)


def lvs_rows(bench, lvm, d):
    """`vgfs lvs` against LVM2's `lvs` on a VG of N_LVS LVs that LVM2 wrote."""
    n = 10 if bench.smoke else N_LVS
    ext, per_lv = 1 * MiB, 4
    img = os.path.join(d, "lvs-pv0.img")
    with open(img, "wb") as f:
        f.truncate((n * per_lv + 16) * ext)   # sparse
    dev = lvm.attach(img)
    # A 4 MiB metadata area: LVM2 keeps at most half of it per copy, and
    # 1,000 LVs take about 350 KB of text.
    lvm.run("pvcreate", "-q", "--metadatasize", "4m", dev)
    lvm.run("vgcreate", "-q", "-s", "1m", "vgblvs", dev)
    backup = os.path.join(d, "vgblvs.vg")
    with open(backup, "w") as f:
        f.write(with_lvs(lvm.backup("vgblvs"), "vgblvs", n, per_lv))
    lvm.run("vgcfgrestore", "-q", "-f", backup, "vgblvs")
    lvm.run("vgck", "vgblvs")
    bench.report.new_row("lvm2_lvs", f"lvs of a VG of {n:,} LVs (LVM2's format, loop device)", "lvm2", "s",
                         better="lower")
    cmds = {"vgfs lvs": ([VGFS, "lvs", dev], None), "LVM2 lvs": (["lvs", "vgblvs"], lvm.env)}
    for name, (cmd, env) in cmds.items():   # both once, untimed, and checked
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        rows = [l for l in r.stdout.splitlines()[1:] if l.strip()]
        if r.returncode != 0 or len(rows) != n:
            raise BenchError(f"{name}: exit {r.returncode}, {len(rows)} LVs listed, expected {n}: "
                             f"{r.stderr.strip()[:300]}")
    for rep in range(bench.a.reps):
        for _ in range(3):
            for name, (cmd, env) in cmds.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                bench.report.record("lvm2_lvs", name, time.perf_counter() - t0)
        m = bench.report.rows["lvm2_lvs"]["systems"]
        log(f"  lvm2_lvs rep {rep + 1}: vgfs {min(m['vgfs lvs'][-3:]):.4f} s, "
            f"LVM2 {min(m['LVM2 lvs'][-3:]):.4f} s")
    lvm.detach_all()
    os.unlink(img)


def lvm2_section(bench):
    """bench/run's `lvm2` section: the I/O rows, the move rows, then the lvs rows."""
    if shutil.which("lvm") is None:
        raise BenchError("LVM2's tools are missing (Debian package lvm2)")
    d = os.path.join(WORK, "lvm2")
    os.makedirs(d)
    lvm = Lvm()
    try:
        io_rows(bench, lvm, d)
        move_rows(bench, lvm, d)
        lvs_rows(bench, lvm, d)
    finally:
        # after an error: nothing of this section stays mounted
        for m in ("mnt-lvm2", "mnt-vgfs", "mnt-mlvm2", "mnt-mvgfs"):
            RES.unmount(os.path.join(d, m))
        lvm.detach_all()
        shutil.rmtree(lvm.dir, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)
