"""The `lvm2` section of bench/run (docs/benchmarks.md, issue 11): LVM2 VGs
served by vgfs, against vgfs's own format and LVM2's own tools.

- fio rows (the I/O section's IO_ROWS) on a linear and on a striped
  (`-i2 -I64k`) LV of a VG that LVM2 made, mounted by vgfs from its PV
  images, against a vgfs-format LV of the same size in the same run, all
  PV images on tmpfs;
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
import subprocess
import time

from common import RES, VGFS, WORK, BenchError, log, run
from peers import dd_into
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
TARGETS = ([(f"lvm2_{key}", r, ">=", 0.95) for key, *_ in IO_ROWS for r in ("linear/vgfs", "striped/vgfs")] +
           [("lvm2_lvs", "lvm2/vgfs", ">=", 2.0)])


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
    """bench/run's `lvm2` section: the I/O rows, then the lvs rows."""
    if shutil.which("lvm") is None:
        raise BenchError("LVM2's tools are missing (Debian package lvm2)")
    d = os.path.join(WORK, "lvm2")
    os.makedirs(d)
    lvm = Lvm()
    try:
        io_rows(bench, lvm, d)
        lvs_rows(bench, lvm, d)
    finally:
        for m in ("mnt-lvm2", "mnt-vgfs"):   # after an error: nothing of this section stays mounted
            RES.unmount(os.path.join(d, m))
        lvm.detach_all()
        shutil.rmtree(lvm.dir, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)
