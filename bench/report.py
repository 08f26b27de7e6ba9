"""The benchmark's results: rows of figures per system, their medians, the
ratios and targets of docs/benchmarks.md, and their forms: the terminal table,
bench/results/<stem>.json (with a Markdown table for the docs) and a plot."""

import datetime
import json
import os
import platform
import statistics
import subprocess

import lvm2_bench
from common import RESULTS, ROOT
from nbd_bench import NBD_RATIOS, NBD_TARGETS
from workloads import IO_ROWS, IO_SYSTEMS


def machine_info():
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return None
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = line.split(":", 1)[1].strip()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "uname": " ".join(platform.uname()),
        "kernel": platform.release(),
        "cpu": cpu,
        "memory": mem,
        "loadavg_start": open("/proc/loadavg").read().strip(),
        "fio": out(["fio", "--version"]),
        "qemu-storage-daemon": out(["qemu-storage-daemon", "--version"]).splitlines()[0],
        "nbdkit": out(["nbdkit", "--version"]),
        "nbdfuse": out(["nbdfuse", "--version"]).splitlines()[0],
        "vgfs_commit": out(["git", "-C", ROOT, "rev-parse", "HEAD"]),
        "vgfs_worktree_dirty": bool(out(["git", "-C", ROOT, "status", "--porcelain",
                                         "--untracked-files=no"])),
    }



class Report:
    def __init__(self, args):
        self.smoke = args.smoke
        self.reps = args.reps
        self.runtime = args.runtime
        # a smoke run must not overwrite the results of the last full run
        self.stem = getattr(args, "out", None) or ("smoke" if self.smoke else "latest")
        self.rows = {}   # key -> {"label", "section", "unit", "systems": {sys: [reps]}, ...}
        self.notes = []
        self.errors = []
        self.info = {}
        self.scale_info = None   # the scale VG's shape, once the scale section made it

    def begin(self, extra):
        """Records the machine and the run's parameters (and `extra`)."""
        self.info = machine_info()
        self.info.update({"smoke": self.smoke, "reps": self.reps, "runtime_s": self.runtime})
        self.info.update(extra)

    def record(self, key, system, value):
        self.rows[key]["systems"].setdefault(system, []).append(value)

    def new_row(self, key, label, section, unit, better="higher"):
        self.rows[key] = {"label": label, "section": section, "unit": unit,
                          "better": better, "systems": {}}

    def medians(self):
        for row in self.rows.values():
            row["median"] = {s: statistics.median(v) for s, v in row["systems"].items()}

    RATIOS = {key: {"vgfs/qsd": ("vgfs", "qsd"), "vgfs/nbdfuse": ("vgfs", "nbdfuse"),
                    "frag/contig": ("vgfs_frag", "vgfs"), "vgfs/raw": ("vgfs", "raw"),
                    "vgfs/ptll": ("vgfs", "ptll"), "uring/classic": ("vgfs_uring", "vgfs")}
              for key, *_ in IO_ROWS}
    RATIOS.update({
        "move_idle": {"move/cp": ("vgfs move", "cp"), "move/mirror": ("vgfs move", "qsd mirror")},
        "move_fg_iops": {"during/without": ("during move", "without move")},
        "move_load_time": {"loaded/idle": ("under load", "idle")},
        **{f"move_fg_{q}": {"during/without": ("during move", "without move")}
           for q in ("p50", "p99", "p99.9")},
        "scale_iops": {"frag/contig": ("fragmented LV", "contiguous LV")},
    })
    RATIOS.update(lvm2_bench.RATIOS)
    RATIOS.update(NBD_RATIOS)

    def ratios(self):
        R = {}
        for key, defs in self.RATIOS.items():
            m = self.rows.get(key, {}).get("median", {})
            for name, (a, b) in defs.items():
                if a in m and b in m and m[b] > 0:
                    R.setdefault(key, {})[name] = m[a] / m[b]
        self.ratio = R

    TARGETS = [
        # row, what, op, threshold
        ("randread4k", "vgfs/qsd", ">=", 2.0), ("randread4k", "vgfs/nbdfuse", ">=", 2.5),
        ("randwrite4k", "vgfs/qsd", ">=", 2.0), ("randwrite4k", "vgfs/nbdfuse", ">=", 2.5),
        ("randread4k_4j", "vgfs/qsd", ">=", 2.0), ("randread4k_4j", "vgfs/nbdfuse", ">=", 2.5),
        # issue 14: splice-sized reads, the write path against passthrough_ll, io_uring
        ("seqread1m", "vgfs/qsd", ">=", 2.5), ("seqwrite1m", "vgfs/qsd", ">=", 1.5),
        ("randwrite4k", "vgfs/ptll", ">=", 1.0), ("seqwrite1m", "vgfs/ptll", ">=", 1.0),
        ("randread4k", "uring/classic", ">=", 1.4), ("randwrite4k", "uring/classic", ">=", 1.4),
        ("randread4k_4j", "uring/classic", ">=", 1.6),
        ("randread4k_qd16", "uring/classic", ">=", 1.6),
        ("randread4k", "frag/contig", ">=", 0.95), ("randwrite4k", "frag/contig", ">=", 0.95),
        ("randread4k_4j", "frag/contig", ">=", 0.95), ("seqread1m", "frag/contig", ">=", 0.95),
        ("seqwrite1m", "frag/contig", ">=", 0.95),
        ("move_idle", "move/cp", ">=", 0.8), ("move_idle", "move/mirror", ">=", 1.5),
        ("move_fg_iops", "during/without", ">=", 0.85),
        ("move_fg_p99", "during/without", "<=", 2.0),
        ("move_load_time", "loaded/idle", "<=", 1.5),
        ("scale_mount", "vgfs", "<=", 2.0), ("scale_rss", "vgfs", "<=", 256.0),
        ("scale_iops", "frag/contig", ">=", 0.95),
    ]
    TARGETS += lvm2_bench.TARGETS + NBD_TARGETS

    def targets(self):
        out = []
        for row, what, op, thr in self.TARGETS:
            if row not in self.rows:
                continue
            if row in ("scale_mount", "scale_rss"):
                v = self.rows[row]["median"].get(what)
            else:
                v = self.ratio.get(row, {}).get(what)
            if v is None:
                out.append({"row": row, "what": what, "op": op, "target": thr, "value": None,
                            "met": None})
                continue
            ok = v >= thr if op == ">=" else v <= thr
            out.append({"row": row, "what": what, "op": op, "target": thr, "value": v,
                        "met": ok})
        self.target_results = out

    def table(self):
        lines = []
        for key, row in self.rows.items():
            med = row["median"]
            cells = "  ".join(f"{s} {fmt(v)}" for s, v in med.items())
            rat = "  ".join(f"{k} {v:.2f}" for k, v in self.ratio.get(key, {}).items())
            lines.append(f"{row['label']} [{row['unit']}]")
            lines.append(f"    {cells}")
            if rat:
                lines.append(f"    ratios: {rat}")
        lines.append("")
        lines.append("targets:")
        for t in self.target_results:
            if t["met"] is None:
                lines.append(f"  NO DATA {t['row']:15} {t['what']:15} {'-':>8} {t['op']} "
                             f"{t['target']}")
                continue
            lines.append(f"  {'MET    ' if t['met'] else 'NOT MET'} {t['row']:15} {t['what']:15} "
                         f"{t['value']:8.3f} {t['op']} {t['target']}")
        return "\n".join(lines)

    def markdown_table(self):
        """The I/O table and the other rows as Markdown, for docs/benchmarks.md."""
        md = []
        cols = ("vgfs/qsd", "vgfs/nbdfuse", "frag/contig", "vgfs/ptll", "uring/classic")
        md.append("| row | " + " | ".join(lbl for _, lbl in IO_SYSTEMS) + " | " +
                  " | ".join(cols) + " |")
        md.append("|---" * (len(IO_SYSTEMS) + len(cols) + 1) + "|")
        for key, label, *_ in IO_ROWS:
            if key not in self.rows:
                continue
            row = self.rows[key]
            m = row["median"]
            r = self.ratio.get(key, {})
            md.append(f"| {label} ({row['unit']}) | " +
                      " | ".join(fmtx(m.get(s)) for s, _ in IO_SYSTEMS) +
                      " | " + " | ".join(fmtx(r.get(k), 2) for k in cols) + " |")
        md.append("")
        md.append("| row | medians | ratio |")
        md.append("|---|---|---|")
        for key, row in self.rows.items():
            if row["section"] == "io":
                continue
            cells = ", ".join(f"{s}: {fmt(v)} {row['unit']}" for s, v in row["median"].items())
            rat = ", ".join(f"{k} {v:.2f}" for k, v in self.ratio.get(key, {}).items())
            md.append(f"| {row['label']} | {cells} | {rat or '—'} |")
        md.append("")
        md.append("| target | measured | |")
        md.append("|---|---|---|")
        for t in self.target_results:
            verdict = {True: "met", False: "**not met**", None: "no data"}[t["met"]]
            md.append(f"| {t['row']} {t['what']} {t['op']} {t['target']} | "
                      f"{fmtx(t['value'], 3)} | {verdict} |")
        return "\n".join(md)

    PLOT_TARGETS = {"scale_mount": 2.0, "scale_rss": 256.0}

    def plot(self, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import textwrap
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        # every other section (lvm2, ...) gets a row of its own below
        extra = [s for s in dict.fromkeys(r["section"] for r in self.rows.values())
                 if s not in ("io", "migration", "scale")]
        fig = plt.figure(figsize=(15, 10 + 5 * len(extra)))
        gs = fig.add_gridspec(2 + len(extra), 2, height_ratios=[1.1, 1] + [1] * len(extra))
        ax_io = fig.add_subplot(gs[0, :])
        ax_mig = fig.add_subplot(gs[1, 0])
        ax_sc = fig.add_subplot(gs[1, 1])

        # I/O rows: one group per row, one bar per system, relative to vgfs contiguous
        keys = [k for k, r in self.rows.items() if r["section"] == "io"]
        systems = IO_SYSTEMS
        width = 0.8 / len(systems)
        for si, (s, name) in enumerate(systems):
            xs, ys, labels = [], [], []
            for ki, k in enumerate(keys):
                m = self.rows[k]["median"]
                if s not in m or not m.get("vgfs"):
                    continue
                xs.append(ki + (si - (len(systems) - 1) / 2) * width)
                ys.append(m[s] / m["vgfs"])
                labels.append(fmt(m[s]))
            bars = ax_io.bar(xs, ys, width, label=name, color=colors[si % len(colors)])
            for bar, lbl in zip(bars, labels):
                ax_io.text(bar.get_x() + bar.get_width() / 2, bar.get_height() * 1.05, lbl,
                           ha="center", va="bottom", fontsize=7, rotation=90)
        ax_io.set_yscale("log")
        ax_io.set_ylim(top=ax_io.get_ylim()[1] * 8)
        ax_io.axhline(1.0, color="grey", lw=0.6)
        ax_io.set_ylabel("relative to vgfs contiguous\n(log scale, higher is better)")
        ax_io.set_xticks(range(len(keys)))
        ax_io.set_xticklabels([f"{self.rows[k]['label']}\n[{self.rows[k]['unit']}]"
                               for k in keys], fontsize=8)
        ax_io.legend(fontsize=8, ncol=len(systems), loc="upper right")
        ax_io.set_title("fio --direct=1 through each system (bar labels: medians)", fontsize=10)

        def grouped(ax, sec, title):
            keys = [k for k, r in self.rows.items() if r["section"] == sec]
            for ki, k in enumerate(keys):
                row = self.rows[k]
                items = list(row["median"].items())
                if k in self.PLOT_TARGETS:
                    items.append((f"target", self.PLOT_TARGETS[k]))
                    ref = self.PLOT_TARGETS[k]
                else:
                    ref = items[0][1] if items else 1.0
                n = max(len(items), 1)
                width = 0.8 / n
                for si, (s, v) in enumerate(items):
                    x = ki + (si - (n - 1) / 2) * width
                    ax.bar(x, v / ref, width * 0.95,
                           color="lightgrey" if s == "target" else colors[si % len(colors)])
                    ax.text(x, v / ref, f"{s}\n{fmt(v)}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(keys)))
            ax.set_xticklabels(
                ["\n".join(textwrap.wrap(self.rows[k]["label"], 24)) +
                 f"\n[{self.rows[k]['unit']}, "
                 f"{'higher' if self.rows[k]['better'] == 'higher' else 'lower'} is better]"
                 for k in keys], fontsize=7)
            ax.axhline(1.0, color="grey", lw=0.6)
            ax.set_ylabel("relative to the first bar\n(or to the target, grey)")
            ax.set_title(title, fontsize=10)
            ax.margins(y=0.3)

        grouped(ax_mig, "migration", "migration (vgfs move vs peers)")
        grouped(ax_sc, "scale", "scale: VG of %s extents in %s LVs" % (
            f"{self.scale_info['vg_extents']:,}" if self.scale_info else "?",
            f"{self.scale_info['lvs']:,}" if self.scale_info else "?"))
        for i, sec in enumerate(extra):
            grouped(fig.add_subplot(gs[2 + i, :]), sec, f"{sec} rows")
        title = (f"vgfs bench {'(SMOKE, not representative) ' if self.smoke else ''}"
                 f"{self.info['date']}, {self.info['nproc']} CPUs, kernel {self.info['kernel']}, "
                 f"median of {self.reps} x {self.runtime} s")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def finish(self):
        """Medians, ratios, targets; writes <stem>.json and <stem>.png, prints the
        table and the errors. Returns the exit status of the run."""
        self.medians()
        self.ratios()
        self.targets()
        os.makedirs(RESULTS, exist_ok=True)
        out = {"machine": self.info, "rows": self.rows, "ratios": self.ratio,
               "targets": self.target_results, "notes": self.notes, "errors": self.errors,
               "markdown": self.markdown_table()}
        with open(os.path.join(RESULTS, self.stem + ".json"), "w") as f:
            json.dump(out, f, indent=1)
        self.plot(os.path.join(RESULTS, self.stem + ".png"))
        print(self.table())
        for e in self.errors:
            print(f"\nERROR: {e}")
        print(f"\n(run took {self.info['duration_s']:.0f} s; "
              f"results in {os.path.relpath(RESULTS, os.getcwd())}/{self.stem}.json and {self.stem}.png)")
        return 1 if self.errors else 0


def fmt(v):
    if v >= 10000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def fmtx(v, digits=None):
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if digits is not None else fmt(v)

