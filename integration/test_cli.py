"""The command line itself (README.md "Command line"): parsing never depends on what exists on
disk, usage and help, a mistyped verb, --version, and targets of the wrong
kind (a config where a mount point is needed and the reverse)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from vgfstest import VGFS_BIN, LvSpec, MiB, assert_one_line_error, is_mounted


def sh(cmd: str, cwd) -> subprocess.CompletedProcess:
    """Runs `cmd` through the shell in `cwd`, with $VGFS the binary."""
    return subprocess.run(["/bin/sh", "-c", cmd], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"VGFS": str(VGFS_BIN), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


@pytest.fixture
def small_vg(env):
    vg = env.make_vg(name="vg0", lvs=[LvSpec("lv0", size="8MiB")])
    vg.create()
    return vg


@pytest.mark.parametrize("verb", ["dump", "check", "lvs", "pvs"])
def test_file_named_like_the_verb_does_not_make_it_a_mount(env, small_vg, verb):
    # The shell creates ./<verb> before vgfs runs: `vgfs dump vg.yaml > dump`.
    # It used to be taken for `vgfs mount dump vg.yaml`.
    r = sh(f'"$VGFS" {verb} vg.yaml > {verb}', small_vg.dir)
    assert r.returncode == 0, f"rc={r.returncode} stderr={r.stderr!r}"
    out = (small_vg.dir / verb).read_text()
    assert ("pv1" if verb == "pvs" else "vg0") in out, out
    assert not is_mounted(small_vg.dir / "vg.yaml")


def test_mount_helper_form_with_a_relative_config(env, small_vg):
    # mount.fuse3 runs `vgfs SOURCE MOUNTPOINT -o OPTS`; a relative config
    # that names no verb is that form, whatever files are around.
    mp = env.new_mountpoint()
    (small_vg.dir / "mount").write_text("not a config\n")
    m = env.mount("vg.yaml", mp, via_mount_t="helper", cwd=small_vg.dir)
    assert (m.mp / ".vgfs" / "vg").exists()
    m.unmount()


def test_no_arguments_prints_usage_and_fails(env):
    r = env.vgfs()
    assert r.returncode == 1
    assert r.stdout == ""
    assert "usage: vgfs COMMAND" in r.stderr and "lvcreate" in r.stderr


@pytest.mark.parametrize("how", [["help"], ["--help"], ["-h"]])
def test_help_prints_usage(env, how):
    r = env.vgfs(*how)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for verb in ["create", "mount", "lvs", "move", "jobs", "lvcreate", "pvremove"]:
        assert f"\n  {verb} " in r.stdout, (verb, r.stdout)


def test_help_for_one_verb(env):
    r = env.vgfs("help", "move")
    assert r.returncode == 0, r.stderr
    assert "MOUNTPOINT" in r.stdout and "--wait" in r.stdout
    r2 = env.vgfs("move", "--help")
    assert r2.returncode == 0, r2.stderr
    assert "--wait" in r2.stdout


@pytest.mark.parametrize("typed,expected", [
    ("lvss", "unknown command 'lvss'; did you mean 'lvs'?"),
    ("lsv", "unknown command 'lsv'; did you mean 'lvs'?"),
    ("dupm", "unknown command 'dupm'; did you mean 'dump'?"),
    ("lvcraete", "unknown command 'lvcraete'; did you mean 'lvcreate'?"),
])
def test_mistyped_verb_gets_a_suggestion(env, typed, expected):
    r = env.vgfs(typed, "/mnt/x")
    line = assert_one_line_error(r, expected)
    assert line == f"vgfs: {expected}"


def test_unknown_word_names_the_mount_form(env, tmp_path):
    r = env.vgfs("frobnicate")
    assert_one_line_error(r, "unknown command 'frobnicate'", "vgfs help")
    # A bare word followed by a mount point is not taken as a config: the
    # error says how to give one.
    r = env.vgfs("vgconf", tmp_path, "-o", "rw")
    assert_one_line_error(r, "unknown command 'vgconf'", "./vgconf")
    assert not is_mounted(tmp_path)


def test_help_for_an_unknown_verb(env):
    assert_one_line_error(env.vgfs("help", "lvss"), "did you mean 'lvs'?")


def test_version(env):
    r = env.vgfs("--version")
    assert r.returncode == 0
    assert r.stdout == "vgfs 0.1.0\n"


# --------------------------------------------------------------------------
# Targets: the kind of path each verb needs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("words", [["move", "{}", "lv0", "pv1"], ["jobs", "{}"], ["lvcreate", "{}", "lvn", "4MiB"],
                                   ["abort", "{}", "1"]])
def test_config_given_where_a_mount_point_is_needed(env, small_vg, words):
    r = env.vgfs(*[w.format(small_vg.config) for w in words])
    assert_one_line_error(r, f"{small_vg.config} is a config file; {words[0]} needs the mount point of a mounted VG")


def test_plain_folder_given_where_a_mount_point_is_needed(env, tmp_path):
    d = tmp_path / "notmounted"
    d.mkdir()
    assert_one_line_error(env.vgfs("move", d, "lv0", "pv1"), f"{d} is not the mount point of a mounted VG")


def test_mount_point_given_where_a_config_is_needed(env, small_vg):
    m = small_vg.mount()
    for verb in ["create", "restore"]:
        args = [verb, m.mp] + (["backup.yaml"] if verb == "restore" else [])
        assert_one_line_error(env.vgfs(*args),
                              f"{m.mp} is the mount point of a mounted VG; {verb} needs the VG's config file")
    other = env.new_mountpoint("other")
    r = env.vgfs("mount", m.mp, other)
    assert_one_line_error(r, f"{m.mp} is the mount point of a mounted VG; mount needs the VG's config file")
    assert not is_mounted(other)
    # The order swapped: a config where the folder to mount on goes.
    empty = env.new_mountpoint("empty")
    assert_one_line_error(env.vgfs("mount", empty, small_vg.config), "is a folder; mount needs the VG's config file")
    assert_one_line_error(env.vgfs("mount", small_vg.config, small_vg.config),
                          f"{small_vg.config} is a config file; mount needs a folder to mount on")


def test_dump_and_check_accept_a_mount_point(env, small_vg):
    m = small_vg.mount()
    # A commit while mounted, so the mount's metadata is newer than create's.
    r = env.vgfs("lvcreate", m.mp, "lvnew", "4MiB")
    assert r.returncode == 0, r.stderr
    d = env.vgfs("dump", m.mp)
    assert d.returncode == 0, d.stderr
    assert "lvnew" in d.stdout and d.stderr == ""
    c = env.vgfs("check", m.mp)
    assert c.returncode == 0, c.stderr
    assert c.stdout.startswith(f"VG vg0 (mounted on {m.mp}): 2 PVs, 2 LVs, metadata seqno 2:"), c.stdout
    m.unmount()
    offline = env.vgfs("dump", small_vg.config)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == d.stdout


def test_stale_mount_says_how_to_clear_it(env, small_vg):
    m = small_vg.mount(foreground=True)
    os.kill(m.proc.pid, signal.SIGKILL)  # the daemon this test started
    m.proc.wait(timeout=30)
    want = f"{m.mp}: transport endpoint not connected: run fusermount3 -u {m.mp}"
    for args in (["jobs", m.mp], ["lvs", m.mp], ["dump", m.mp], ["check", m.mp], ["move", m.mp, "lv0", "pv1"],
                 ["mount", small_vg.config, m.mp]):
        line = assert_one_line_error(env.vgfs(*args))
        assert line == f"vgfs: {want}", (args, line)
    m.unmount()  # clears the dead FUSE connection


# --------------------------------------------------------------------------
# Sizes as LVM2 takes them
# --------------------------------------------------------------------------

def lv_size(m, name: str) -> int:
    return next(l["size"] for l in m.vg_json()["lvs"] if l["name"] == name)


def test_lvm2_sizes_on_the_command_line(env, small_vg):
    m = small_vg.mount()  # 1 MiB extents
    steps = [
        (["lvcreate", m.mp, "lva", "4"], "lva", 4 * MiB),         # a bare number is MiB
        (["lvcreate", m.mp, "lvb", "1.5m"], "lvb", 2 * MiB),      # rounded up to whole extents
        (["lvextend", m.mp, "lva", "+2M"], "lva", 6 * MiB),
        (["lvextend", m.mp, "lva", "8m"], "lva", 8 * MiB),
        (["lvextend", m.mp, "lvb", "4MiB"], "lvb", 4 * MiB),      # the IEC form keeps working
        (["lvreduce", m.mp, "lva", "6144k", "-y"], "lva", 6 * MiB),
        (["lvextend", m.mp, "lva", "+0.0625g"], "lva", 70 * MiB),
        (["lvreduce", m.mp, "lva", "-2M", "-y"], "lva", 68 * MiB),
    ]
    for args, lv, size in steps:
        r = env.vgfs(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert lv_size(m, lv) == size, (args, m.vg_json()["lvs"])
    before = m.vg_json()
    for args, needle in [(["lvcreate", m.mp, "lvc", "3MB"], 'bad size "3MB"'),
                         (["lvcreate", m.mp, "lvc", "+3M"], "is for lvextend"),
                         (["lvextend", m.mp, "nosuch", "+3M"], "no LV nosuch")]:
        assert_one_line_error(env.vgfs(*args), needle)
    assert m.vg_json() == before


# --------------------------------------------------------------------------
# Mounting over a non-empty folder; truncating an LV to its own size
# --------------------------------------------------------------------------

def test_mount_over_a_non_empty_folder_is_refused_unless_nonempty(env, small_vg):
    mp = env.new_mountpoint()
    (mp / "keep.txt").write_text("mine\n")
    m = env.mount(small_vg.config, mp, expect_ok=False)
    assert_one_line_error(m.result, "is not empty", "-o nonempty")
    assert not is_mounted(mp)
    assert (mp / "keep.txt").read_text() == "mine\n"
    m = env.mount(small_vg.config, mp, opts="nonempty")
    assert (mp / "lv0").exists() and not (mp / "keep.txt").exists()
    m.unmount()
    assert (mp / "keep.txt").read_text() == "mine\n"


def test_truncate_of_an_lv_to_its_own_size_is_a_no_op(env, small_vg):
    m = small_vg.mount()
    lv = m.lv("lv0")
    with open(lv, "r+b") as f:
        f.write(b"data")
        os.ftruncate(f.fileno(), 8 * MiB)    # the LV's size: accepted, nothing changes
        with pytest.raises(OSError):
            os.ftruncate(f.fileno(), 4 * MiB)
    assert os.stat(lv).st_size == 8 * MiB
    with open(lv, "rb") as f:
        assert f.read(4) == b"data"
