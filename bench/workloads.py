"""What the benchmark runs (docs/benchmarks.md): fio jobs through each system,
`vgfs move` against cp and qsd's blockdev-mirror, and a VG of many extents.
The systems themselves (mounts, daemons) are in peers.py; the figures go to a
report.Report."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

from common import RES, RESULTS, ROOT, VGFS, WORK, BenchError, log, run
from peers import (dd_into, dmesg_about, mem_breakdown, nbdfuse_start, passthrough_ll_build,
                   passthrough_ll_start, qsd_fuse_start, qsd_mirror_once, qsd_mirror_start,
                   vgfs_mount, vgfs_mount_fg, vgfs_mount_uring, vgfs_move, vgfs_unmount,
                   vm_rss_kib)
from vgfstest.files import sha256_file
from vgfstest.sizes import GiB, KiB, MiB
from vgfstest.status import map_lines


def lv_map(mnt, lv):
    """The words of each line of the LV's map view (`LE-range PV PE-range`)."""
    return map_lines(mnt, "lvs", lv)


# --------------------------------------------------------------------------
# fio

def fio(filename, rw, bs, runtime, numjobs=1, extra=()):
    cmd = ["fio", "--name=bench", f"--filename={filename}", "--direct=1",
           "--ioengine=psync", "--output-format=json", "--time_based",
           f"--runtime={runtime}", f"--rw={rw}", f"--bs={bs}", "--iodepth=1",
           f"--numjobs={numjobs}", "--group_reporting", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)
    out = r.stdout
    if r.returncode != 0 or "{" not in out:
        raise BenchError(f"fio on {filename} failed ({r.returncode}): {r.stderr.strip()[:800]}")
    data = json.loads(out[out.index("{"):])
    job = data["jobs"][0]
    if job.get("error"):
        raise BenchError(f"fio on {filename}: error {job['error']}")
    side = job["read" if "read" in rw else "write"]
    pct = side.get("clat_ns", {}).get("percentile", {})
    return {"iops": side["iops"], "MiB/s": side["bw_bytes"] / MiB,
            "p50": pct.get("50.000000", 0) / 1e3, "p99": pct.get("99.000000", 0) / 1e3,
            "p99.9": pct.get("99.900000", 0) / 1e3}


IO_ROWS = [
    # key, label, rw, bs, numjobs, metric
    ("randread4k", "4k random read QD1", "randread", "4k", 1, "iops"),
    ("randwrite4k", "4k random write QD1", "randwrite", "4k", 1, "iops"),
    ("randread4k_4j", "4k random read, 4 jobs", "randread", "4k", 4, "iops"),
    ("seqread1m", "1 MiB sequential read", "read", "1M", 1, "MiB/s"),
    ("seqwrite1m", "1 MiB sequential write", "write", "1M", 1, "MiB/s"),
    ("randread4k_qd16", "4k random read, fio io_uring QD16", "randread", "4k", 1, "iops"),
]
# fio options of a row beyond the psync QD1 defaults (later options win)
IO_ROW_EXTRA = {"randread4k_qd16": ["--ioengine=io_uring", "--iodepth=16"]}
IO_SYSTEMS = [("raw", "raw image"), ("vgfs", "vgfs contiguous"),
              ("vgfs_frag", "vgfs fragmented"), ("vgfs_uring", "vgfs -o io_uring"),
              ("ptll", "passthrough_ll"), ("qsd", "qsd FUSE"),
              ("nbdfuse", "nbdfuse+nbdkit")]


# --------------------------------------------------------------------------
# the benchmark

class Bench:
    """The workloads: one shared random base image, the main VG (a contiguous and
    a fragmented LV), then the I/O, migration and scale sections. Figures go to
    `report` (report.py); a failing section is recorded there and the run goes on."""

    def __init__(self, args, report):
        self.a = args
        self.report = report
        self.smoke = args.smoke
        self.img_size = 64 * MiB if self.smoke else 1 * GiB
        self.extent = 4 * MiB

    def section(self, name, fn):
        """Runs one section; a failure is recorded (with what vgfs said) and the run goes on."""
        try:
            fn()
            return True
        except (BenchError, OSError, subprocess.SubprocessError) as e:
            msg = f"{name}: {type(e).__name__ + ': ' if not isinstance(e, BenchError) else ''}{e}"
            p = getattr(self, "vgfs_proc", None)
            if p is not None and name in ("io", "migration"):
                try:
                    p.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            if p is not None and p.poll() is not None and name in ("io", "migration"):
                os.makedirs(RESULTS, exist_ok=True)
                saved = os.path.join(RESULTS, "vgfs-daemon.log")
                shutil.copyfile(self.vgfs_log, saved)
                msg += (f" -- the vgfs daemon (pid {p.pid}) died with status {p.returncode}; "
                        f"stderr (saved in {os.path.relpath(saved, ROOT)}): "
                        f"{open(self.vgfs_log).read().strip()[:300]!r}; "
                        f"dmesg: {dmesg_about(p.pid)}")
            log(f"ERROR {msg}")
            self.report.errors.append(msg)
            return False

    def record(self, key, system, value):
        self.report.rows[key]["systems"].setdefault(system, []).append(value)

    def new_row(self, key, label, section, unit, better="higher"):
        self.report.rows[key] = {"label": label, "section": section, "unit": unit,
                          "better": better, "systems": {}}

    # ---- shared data -----------------------------------------------------
    def prepare_base(self):
        os.makedirs(WORK)
        self.base = os.path.join(WORK, "base.img")
        log(f"filling {self.img_size // MiB} MiB random base image")
        run(["dd", "if=/dev/urandom", f"of={self.base}", "bs=1M",
             f"count={self.img_size // MiB}", "iflag=fullblock", "status=none"])
        self.base_sha = sha256_file(self.base)

    # ---- the main VG (contiguous + fragmented LV) ------------------------
    def create_main_vg(self):
        n = self.img_size // self.extent          # extents per LV
        half = n // 2
        pe_count = n + half + 8
        pv_size = 13 * MiB + pe_count * self.extent
        d = os.path.join(WORK, "vg")
        os.makedirs(d)
        cfg = os.path.join(d, "vg.yaml")
        lines = ["vg: {name: vgbench, extent_size: %dMiB}" % (self.extent // MiB),
                 "pvs:",
                 "  - {name: pv0, path: pv0.img, size: %dMiB}" % (pv_size // MiB),
                 "  - {name: pv1, path: pv1.img, size: %dMiB}" % (pv_size // MiB),
                 "lvs:",
                 "  - {name: lvc, size: %dMiB}" % (self.img_size // MiB),
                 "  - name: lvf",
                 "    extents:"]
        for le in range(n):
            pv, pe = le % 2, n + le // 2
            lines.append(f"      - {{le: {le}-{le}, pv: pv{pv}, pe: {pe}-{pe}}}")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        run([VGFS, "create", cfg])
        self.cfg, self.mnt = cfg, os.path.join(WORK, "mnt")
        self.vgfs_log = os.path.join(WORK, "vgfs-main.log")
        self.vgfs_proc = vgfs_mount_fg(cfg, self.mnt, self.vgfs_log)
        mc, mf = lv_map(self.mnt, "lvc"), lv_map(self.mnt, "lvf")
        if len(mc) != 1:
            raise BenchError(f"contiguous LV lvc has {len(mc)} runs: {mc}")
        if len(mf) != n:
            raise BenchError(f"fragmented LV lvf has {len(mf)} runs, expected {n}")
        self.lvc_map, self.lvf_runs = " ".join(mc[0]), len(mf)
        for lv in ("lvc", "lvf"):
            dd_into(self.base, os.path.join(self.mnt, lv))
            got = sha256_file(os.path.join(self.mnt, lv))
            if got != self.base_sha:
                raise BenchError(f"vgfs wrong data: {lv} reads back sha256 {got}, "
                                 f"wrote {self.base_sha}")
        log(f"vgfs VG ready: lvc = {self.lvc_map}; lvf = {self.lvf_runs} runs")

    # ---- 1. I/O rows -----------------------------------------------------
    def io_section(self):
        files = {}
        raw = os.path.join(WORK, "raw.img")
        shutil.copyfile(self.base, raw)
        files["raw"] = raw
        files["vgfs"] = os.path.join(self.mnt, "lvc")
        files["vgfs_frag"] = os.path.join(self.mnt, "lvf")
        # vgfs -o io_uring: a VG of its own (the main VG's PVs are locked by its mount)
        ud = os.path.join(WORK, "vgu")
        os.makedirs(ud)
        ucfg = os.path.join(ud, "vg.yaml")
        with open(ucfg, "w") as f:
            f.write("vg: {name: vgbenchu, extent_size: %dMiB}\npvs:\n"
                    "  - {name: pv0, path: pv0.img, size: %dMiB}\nlvs:\n"
                    "  - {name: lvc, size: %dMiB}\n"
                    % (self.extent // MiB, 13 + self.img_size // MiB + 8, self.img_size // MiB))
        run([VGFS, "create", ucfg])
        umnt = os.path.join(WORK, "mnt-uring")
        uproc, why = vgfs_mount_uring(ucfg, umnt, os.path.join(WORK, "vgfs-uring.log"))
        if uproc is not None:
            files["vgfs_uring"] = os.path.join(umnt, "lvc")
            dd_into(self.base, files["vgfs_uring"])
        if why:
            self.report.notes.append(f"vgfs -o io_uring: not on rings ({why}); its column "
                                     "is /dev/fuse or empty")
            log(f"vgfs -o io_uring: {why}")
        # passthrough_ll, the classic FUSE ceiling, serving a copy of the image
        exe = passthrough_ll_build(os.path.join(WORK, "ptll-build"))
        psrc, pmnt = os.path.join(WORK, "ptll-src"), os.path.join(WORK, "ptll-mnt")
        os.makedirs(psrc)
        shutil.copyfile(self.base, os.path.join(psrc, "img"))
        pproc = passthrough_ll_start(exe, psrc, pmnt)
        files["ptll"] = os.path.join(pmnt, "img")
        qimg, qexp = os.path.join(WORK, "qsd.img"), os.path.join(WORK, "qsd-export")
        shutil.copyfile(self.base, qimg)
        qpid = qsd_fuse_start(qimg, qexp, "qsd.img")
        files["qsd"] = qexp
        nimg, ndir = os.path.join(WORK, "nbd.img"), os.path.join(WORK, "nbd")
        shutil.copyfile(self.base, nimg)
        nproc = nbdfuse_start(nimg, ndir)
        files["nbdfuse"] = os.path.join(ndir, "nbd")
        for s, path in files.items():
            if os.path.getsize(path) != self.img_size:
                raise BenchError(f"{s}: {path} has size {os.path.getsize(path)}")
        for key, label, rw, bs, nj, metric in IO_ROWS:
            self.report.new_row(key, label, "io", metric)
            for rep in range(self.a.reps):
                for s, _ in IO_SYSTEMS:
                    if s not in files:
                        continue
                    v = fio(files[s], rw, bs, self.a.runtime, nj, IO_ROW_EXTRA.get(key, ()))[metric]
                    self.report.record(key, s, v)
                    log(f"  {key:14} rep {rep + 1} {s:10} {v:12.1f} {metric}")
        # peers done: free their memory
        if uproc is not None:
            RES.unmount(umnt)
            uproc.wait(timeout=30)
        RES.unmount(pmnt)
        pproc.wait(timeout=30)
        shutil.rmtree(ud)
        shutil.rmtree(psrc)
        RES.unmount(qexp)
        RES.stop_pid(qpid)
        RES.unmount(ndir)
        try:
            nproc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nproc.terminate()
        for p in (raw, qimg, nimg):
            os.unlink(p)

    # ---- 2. migration rows ---------------------------------------------
    def migration_section(self):
        mnt = self.mnt
        self.report.new_row("move_idle", "1 GiB copy, idle: rate" if not self.smoke else
                     f"{self.img_size // MiB} MiB copy, idle: rate", "migration", "MiB/s")
        self.report.new_row("move_fg_iops", "4k randwrite QD1 on the LV: IOPS", "migration", "iops")
        self.report.new_row("move_load_time", "move time: idle vs under 4k randwrite", "migration",
                     "s", better="lower")
        for q in ("p50", "p99", "p99.9"):
            self.report.new_row(f"move_fg_{q}", f"4k randwrite QD1 on the LV: {q} latency",
                                "migration", "µs", better="lower")
        mpid, qmp = qsd_mirror_start(self.base)
        dest = {"pv0": "pv1", "pv1": "pv0"}
        self.where = "pv0"
        size_mib = self.img_size / MiB
        sha_before = sha256_file(os.path.join(mnt, "lvc"))

        def move_once():
            to = dest[self.where]
            dt, size = vgfs_move(mnt, "lvc", to)
            if size != self.img_size:
                raise BenchError(f"move lvc {to} moved {size} bytes, expected {self.img_size}")
            self.where = to
            return dt

        # (a) idle move vs cp vs qsd mirror
        for rep in range(self.a.reps):
            dt = move_once()
            self.report.record("move_idle", "vgfs move", size_mib / dt)
            dst = os.path.join(WORK, "cp-dst.img")
            t0 = time.perf_counter()
            run(["cp", self.base, dst])
            dtc = time.perf_counter() - t0
            os.unlink(dst)
            self.report.record("move_idle", "cp", size_mib / dtc)
            dtm = qsd_mirror_once(qmp, rep, self.img_size)
            self.report.record("move_idle", "qsd mirror", size_mib / dtm)
            log(f"  move_idle rep {rep + 1}: vgfs {dt:.3f} s, cp {dtc:.3f} s, mirror {dtm:.3f} s")
        qmp.close()
        RES.stop_pid(mpid)
        os.unlink(os.path.join(WORK, "mirror-src.img"))
        if sha256_file(os.path.join(mnt, "lvc")) != sha_before:
            raise BenchError("vgfs wrong data: lvc content changed across idle moves")
        if len(lv_map(mnt, "lvc")) != 1:
            self.report.notes.append(f"lvc map after idle moves: {lv_map(mnt, 'lvc')}")

        # (b) foreground 4k randwrite IOPS without / during back-and-forth moves
        self.moves_during = []
        for rep in range(self.a.reps):
            alone = fio(os.path.join(mnt, "lvc"), "randwrite", "4k", self.a.runtime)
            v = alone["iops"]
            self.report.record("move_fg_iops", "without move", v)
            for q in ("p50", "p99", "p99.9"):
                self.report.record(f"move_fg_{q}", "without move", alone[q])
            stop = threading.Event()
            err = []
            done = []

            def mover():
                try:
                    while not stop.is_set():
                        done.append(move_once())
                except Exception as e:  # reported by the main thread
                    err.append(e)
            t = threading.Thread(target=mover, daemon=True)
            t.start()
            time.sleep(0.05)
            during = fio(os.path.join(mnt, "lvc"), "randwrite", "4k", self.a.runtime)
            w = during["iops"]
            stop.set()
            t.join(timeout=600)
            if t.is_alive():
                raise BenchError("move thread did not finish 600 s after fio ended")
            if err:
                raise err[0]
            self.report.record("move_fg_iops", "during move", w)
            for q in ("p50", "p99", "p99.9"):
                self.report.record(f"move_fg_{q}", "during move", during[q])
            self.moves_during.append(len(done))
            log(f"  move_fg_iops rep {rep + 1}: without {v:.0f}, during {w:.0f} IOPS "
                f"({len(done)} moves completed during the run)")

        # (c) move time idle vs under sustained 4k randwrite
        for rep in range(self.a.reps):
            dt = move_once()
            self.report.record("move_load_time", "idle", dt)
            cmd = ["fio", "--name=load", f"--filename={os.path.join(mnt, 'lvc')}", "--direct=1",
                   "--ioengine=psync", "--rw=randwrite", "--bs=4k", "--time_based",
                   "--runtime=3600", "--output-format=json"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
            RES.add_popen(p)
            try:
                time.sleep(1.0 if not self.smoke else 0.3)
                if p.poll() is not None:
                    raise BenchError(f"load fio exited early: {p.stderr.read().decode()[:500]}")
                dtl = move_once()
            finally:
                p.send_signal(signal.SIGINT)
                try:
                    out, _ = p.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    out, _ = p.communicate()
            self.report.record("move_load_time", "under load", dtl)
            log(f"  move_load_time rep {rep + 1}: idle {dt:.3f} s, under load {dtl:.3f} s")

    # ---- 3. scale rows ---------------------------------------------------
    def scale_section(self):
        ext = 64 * KiB
        n_lvs = 10 if self.smoke else 1000
        per_lv, run_len = 1000, 10
        runs_per_lv = per_lv // run_len
        contig = per_lv
        per_pv = n_lvs * per_lv // 2
        pe_count = per_pv + contig + 100
        pv_size = 13 * MiB + pe_count * ext
        d = os.path.join(WORK, "scale")
        os.makedirs(d)
        cfg = os.path.join(d, "vg.yaml")
        next_pe = [0, 0]
        lv_runs = [[] for _ in range(n_lvs)]
        # runs ordered (run index, LV): consecutive PEs of a PV belong to different LVs
        for j in range(runs_per_lv):
            for i in range(n_lvs):
                pv = (i + j) % 2
                pe = next_pe[pv]
                next_pe[pv] += run_len
                lv_runs[i].append((j * run_len, pv, pe))
        with open(cfg, "w") as f:
            f.write("vg: {name: vgscale, extent_size: 64KiB}\npvs:\n")
            for p in (0, 1):
                f.write(f"  - {{name: pv{p}, path: pv{p}.img, size: {pv_size // KiB}KiB}}\n")
            f.write("lvs:\n")
            for i in range(n_lvs):
                f.write(f"  - name: lv{i:04d}\n    extents:\n")
                for le, pv, pe in lv_runs[i]:
                    f.write(f"      - {{le: {le}-{le + run_len - 1}, pv: pv{pv}, "
                            f"pe: {pe}-{pe + run_len - 1}}}\n")
            f.write(f"  - {{name: lvcontig, size: {contig * ext // KiB}KiB}}\n")
        total_ext = 2 * pe_count
        self.report.scale_info = {"extent_size": ext, "vg_extents": total_ext,
                           "allocated_extents": n_lvs * per_lv + contig,
                           "lvs": n_lvs + 1, "runs": n_lvs * runs_per_lv + 1,
                           "pv_size_bytes": pv_size}
        t0 = time.perf_counter()
        run([VGFS, "create", cfg])
        self.report.scale_info["create_s"] = time.perf_counter() - t0
        log(f"scale VG created: {self.report.scale_info}")
        mnt = os.path.join(WORK, "scale-mnt")
        frag, cont = "lv0000", "lvcontig"
        self.report.new_row("scale_mount", f"mount of {total_ext:,}-extent VG", "scale", "s",
                     better="lower")
        self.report.new_row("scale_rss", "daemon RSS after mount", "scale", "MiB", better="lower")
        self.report.new_row("scale_iops", "4k randread QD1 in that VG", "scale", "iops")
        first = True
        for rep in range(self.a.reps):
            dt, pid = vgfs_mount(cfg, mnt)
            rss = vm_rss_kib(pid) / KiB
            self.report.record("scale_mount", "vgfs", dt)
            self.report.record("scale_rss", "vgfs", rss)
            self.report.scale_info.setdefault("memory_after_mount", []).append(mem_breakdown(pid))
            if first:
                mf, mc = lv_map(mnt, frag), lv_map(mnt, cont)
                if len(mf) != runs_per_lv or len(mc) != 1:
                    raise BenchError(f"scale VG maps: {frag} {len(mf)} runs, {cont} {len(mc)}")
                for lv in (frag, cont):
                    run(["dd", f"if={self.base}", f"of={os.path.join(mnt, lv)}", "bs=64K",
                         f"count={per_lv}", "conv=notrunc,fsync", "status=none"])
                first = False
            for s, lv in (("fragmented LV", frag), ("contiguous LV", cont)):
                v = fio(os.path.join(mnt, lv), "randread", "4k", self.a.runtime)["iops"]
                self.report.record("scale_iops", s, v)
            log(f"  scale rep {rep + 1}: mount {dt:.3f} s, RSS {rss:.1f} MiB, "
                f"IOPS frag {self.report.rows['scale_iops']['systems']['fragmented LV'][-1]:.0f} "
                f"contig {self.report.rows['scale_iops']['systems']['contiguous LV'][-1]:.0f}")
            vgfs_unmount(mnt, pid)

    def run(self):
        """Runs the sections asked for; returns the exit status of the run."""
        self.report.begin({"image_bytes": self.img_size, "extent_bytes": self.extent})
        t_start = time.perf_counter()
        self.prepare_base()
        sections = self.a.sections.split(",")
        main_ok = False
        if "io" in sections or "migration" in sections:
            self.section("main VG", self.create_main_vg)
            main_ok = not self.report.errors
            if main_ok:
                self.report.info["lvc_map"] = self.lvc_map
                self.report.info["lvf_runs"] = self.lvf_runs
        if "io" in sections and main_ok:
            log("== I/O rows")
            main_ok = self.section("io", self.io_section)
        if "migration" in sections and main_ok:
            log("== migration rows")
            self.section("migration", self.migration_section)
            self.report.info["moves_completed_during_fg_fio"] = getattr(self, "moves_during", None)
        if hasattr(self, "vgfs_proc"):
            RES.unmount(self.mnt)
            try:
                self.vgfs_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.report.errors.append("vgfs mount -f of the main VG still running 30 s "
                                          "after fusermount3 -u")
        if "nbd" in sections:
            log("== NBD rows (bench/nbd_bench.py)")
            from nbd_bench import nbd_section
            self.section("nbd", lambda: nbd_section(self))
        if "scale" in sections:
            log("== scale rows")
            self.section("scale", self.scale_section)
            self.report.info["scale"] = self.report.scale_info
        if "lvm2" in sections:
            from lvm2_bench import lvm2_section   # bench/lvm2_bench.py: LVM2 VGs (issue 11)
            log("== lvm2 rows")
            self.section("lvm2", lambda: lvm2_section(self))
        self.report.info["loadavg_end"] = open("/proc/loadavg").read().strip()
        self.report.info["duration_s"] = time.perf_counter() - t_start
        return self.report.finish()

