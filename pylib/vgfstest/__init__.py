"""vgfstest: the Python helpers of the integration suite (integration/) and the
benchmark (bench/), in one place so they cannot drift apart.

    sizes      KiB/MiB/GiB, parse_size, parse_range, ...
    pv_format  on-PV layout constants, crc32c (docs/format.md)
    files      sha256_file, snapshot, pread_full/pwrite_full, punch_hole
    mounts     is_mounted (never resolves a mount point), daemon_pids, pid_alive
    status     .vgfs/ view parsers: read_kv, lv_map, pv_map, json_pvs, ...
    control    the ctl client and job waiter: ctl, start_job, wait_job(s), ...
    config     PvSpec, LvSpec, render_config (VG config YAML)
    checks     assert_one_line_error
    lv_model   LvModel, RandomWriters, AckWriter
    env        Env, VG, Mount: what one test sets up and tears down

Not installed: integration/conftest.py and bench/run put <repo>/pylib on
sys.path. The names below are the flat API the tests import."""

from .checks import assert_one_line_error, errlines
from .config import LvSpec, PvSpec, render_config
from .control import (JOB_END_STATES, ctl, ctl_ok, job_int, job_status, reply_job_ids,
                      start_job, start_slow_job, wait_job, wait_jobs, warm_up_lv)
from .env import FIG3_LVX_RUNS, VG, Env, Mount, fig3_vg
from .files import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, damage, libc, pread_full,
                    punch_hole, pwrite_full, read_pv_bytes, sha256_file, snapshot, tree_sums)
from .lv_model import AckWriter, LvModel, RandomWriters
from .mounts import daemon_pids, is_mounted, loop_devices_for, mountinfo_points, pid_alive
from .paths import REPO, VGFS_BIN
from .pv_format import LABEL_OFFSETS, LABEL_SIZE, SLOT_HEADER_SIZE, SLOT_OFFSETS, crc32c
from .sizes import GiB, KiB, MiB, format_range, parse_int_bytes, parse_range, parse_size
from .status import (json_lvs, json_pvs, lv_map, lv_runs_from_json, map_lines, meta_dir,
                     pv_allocated, pv_map, read_kv, split_list)
