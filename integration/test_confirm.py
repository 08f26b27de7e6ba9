"""lvremove and lvreduce ask for confirmation as LVM2 does (docs/cli.md):
the question on stderr, the answer read from stdin, a terminal or not; end
of input is no; -y/--yes answers yes. On a terminal, through a pty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from conftest import VGFS_BIN, LvSpec, MiB, assert_one_line_error


@pytest.fixture
def mounted(env):
    vg = env.make_vg(name="vg0", lvs=[LvSpec("lv0", size="8MiB"), LvSpec("lv1", size="8MiB")])
    vg.create()
    return vg.mount()


def lv_names(m) -> list:
    return [l["name"] for l in m.vg_json()["lvs"]]


def run_on_pty(args, answer: bytes | None, timeout=30):
    """Runs vgfs with stdin, stdout and stderr on a pty; once the question
    shows, types `answer` (None: Ctrl-D). Returns (exit status, what the
    terminal showed)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([str(VGFS_BIN), *map(str, args)], stdin=slave, stdout=slave, stderr=slave,
                         close_fds=True)
    os.close(slave)
    shown = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the pty
                    break
                if not chunk:
                    break
                shown += chunk
            if not answered and b"[y/n]: " in shown:
                os.write(master, answer if answer is not None else b"\x04")
                answered = True
            if p.poll() is not None and not ready:
                break
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    return rc, shown.decode(errors="replace")


def test_lvremove_on_a_terminal_asks_and_yes_removes(env, mounted):
    m = mounted
    rc, shown = run_on_pty(["lvremove", m.mp, "lv0"], b"y\n")
    assert "Do you really want to remove active logical volume vg0/lv0? [y/n]: " in shown, shown
    assert rc == 0, shown
    assert lv_names(m) == ["lv1"]


@pytest.mark.parametrize("answer", [b"n\n", None], ids=["no", "ctrl-d"])
def test_lvremove_on_a_terminal_no_or_end_of_input_keeps_the_lv(env, mounted, answer):
    m = mounted
    before = m.vg_json()
    rc, shown = run_on_pty(["lvremove", m.mp, "lv0"], answer)
    assert rc == 1, shown
    assert "vgfs: lvremove: LV lv0 not removed" in shown, shown
    assert m.vg_json() == before


def test_lvreduce_on_a_terminal_warns_and_asks(env, mounted):
    m = mounted
    rc, shown = run_on_pty(["lvreduce", m.mp, "lv0", "-L", "-4M"], b"maybe\ny\n")
    assert "WARNING: Reducing active logical volume to 4.00 MiB." in shown, shown
    assert "THIS MAY DESTROY YOUR DATA" in shown
    assert "WARNING: Invalid input 'maybe'." in shown, shown
    assert shown.count("Do you really want to reduce vg0/lv0? [y/n]: ") == 2, shown
    assert rc == 0, shown
    assert next(l["size"] for l in m.vg_json()["lvs"] if l["name"] == "lv0") == 4 * MiB


def test_without_a_terminal_stdin_answers_and_no_input_is_no(env, mounted):
    m = mounted
    before = m.vg_json()
    # stdin from /dev/null: LVM2 prints "[n]" and refuses; so does vgfs.
    r = subprocess.run([str(VGFS_BIN), "lvremove", str(m.mp), "lv0"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == "Do you really want to remove active logical volume vg0/lv0? [y/n]: [n]"
    assert r.stderr.splitlines()[-1] == "vgfs: lvremove: LV lv0 not removed (answer y, or give -y)"
    r = subprocess.run([str(VGFS_BIN), "lvreduce", str(m.mp), "lv0", "4M"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "NOT reduced" in r.stderr
    assert m.vg_json() == before
    # a pipe answers, as with LVM2: `echo y | vgfs lvremove ...`
    r = subprocess.run([str(VGFS_BIN), "lvremove", str(m.mp), "lv0"], input="y\n", capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert lv_names(m) == ["lv1"]


def test_yes_skips_the_question(env, mounted):
    m = mounted
    for flag in ("-y", "--yes"):
        r = subprocess.run([str(VGFS_BIN), "lvreduce", str(m.mp), "lv1", "-l", "-1", flag],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run([str(VGFS_BIN), "lvremove", str(m.mp), "lv1", "-y"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert lv_names(m) == ["lv0"]
    # an LV the VG does not have: the control file's error, no question
    assert_one_line_error(env.vgfs("lvremove", m.mp, "nosuch"), "nosuch")
