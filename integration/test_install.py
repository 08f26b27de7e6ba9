"""`meson install` puts the binary, the man page, the bash completion and
the systemd unit template in place; the completion parses and completes;
the man page renders."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import VGFS_BIN


def test_meson_install_puts_the_docs_in_place(tmp_path):
    build = Path(VGFS_BIN).resolve().parent
    if not (build / "build.ninja").exists() or not shutil.which("meson"):
        pytest.skip("needs the meson build folder of the vgfs under test")
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", str(build)], capture_output=True, text=True,
                            check=True).stdout
    import json
    opts = {o["name"]: o["value"] for o in json.loads(prefix)}
    root = dest / opts["prefix"].lstrip("/")
    man = root / opts["mandir"] / "man8" / "vgfs.8"
    completion = root / opts["datadir"] / "bash-completion" / "completions" / "vgfs"
    unit = root / opts["datadir"] / "doc" / "vgfs" / "vgfs@.service"
    binary = root / opts["bindir"] / "vgfs"
    for f in (man, completion, unit, binary):
        assert f.is_file(), f"{f} not installed: {sorted(str(p) for p in dest.rglob('*'))}"
    # mount(8)'s helper for `mount -t fuse.vgfs` and fstab: a link to the installed binary
    # (integration/test_cli_mount_helper.py mounts through it).
    helper = root / opts["sbindir"] / "mount.fuse.vgfs"
    assert helper.is_symlink(), sorted(str(p) for p in dest.rglob('*'))
    assert os.readlink(helper) == str(Path(opts["prefix"]) / opts["bindir"] / "vgfs")

    r = subprocess.run(["bash", "-n", str(completion)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if shutil.which("man"):
        r = subprocess.run(["man", "-l", str(man)], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        assert r.returncode == 0, r.stderr
        assert "lvcreate" in r.stdout and "--reportformat" in r.stdout.replace("‐", "-"), r.stdout[:500]
        assert "warning" not in r.stderr.lower(), r.stderr
    assert "ExecStart=" in unit.read_text()


def test_bash_completion_completes_commands_options_and_names(env, tmp_path):
    from conftest import LvSpec
    vg = env.make_vg(name="vg0", lvs=[LvSpec("data", size="4MiB")])
    vg.create()
    m = vg.mount()
    completion = Path(__file__).resolve().parent.parent / "completion" / "vgfs.bash"
    script = f"""
source {completion}
vgfs() {{ {VGFS_BIN} "$@"; }}
complete_words() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=(); _vgfs; echo "${{COMPREPLY[*]}}"; }}
complete_words vgfs lvc
complete_words vgfs lvremove {m.mp} d
complete_words vgfs lvs {m.mp} --rep
complete_words vgfs lvs {m.mp} -o lv_na
complete_words vgfs pvmove {m.mp} pv
"""
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sorted(lines[0].split()) == ["lvchange", "lvcreate"], lines  # "lvc": both, as LVM2 has both
    assert lines[1] == "data", lines
    assert lines[2] == "--reportformat", lines
    assert "lv_name" in lines[3].split(), lines
    assert sorted(lines[4].split()) == ["pv0", "pv1"], lines


def test_bash_completion_knows_every_command(env):
    """The completion's verb list is the program's: `vgfs help` lists the same commands."""
    completion = Path(__file__).resolve().parent.parent / "completion" / "vgfs.bash"
    r = subprocess.run(["bash", "-c", f"source {completion}; COMP_WORDS=(vgfs ''); COMP_CWORD=1; _vgfs; "
                                      "printf '%s\\n' \"${COMPREPLY[@]}\""], capture_output=True, text=True, timeout=60)
    completed = {w for w in r.stdout.split() if not w.startswith("-")}
    usage = env.vgfs("help").stdout
    listed = {line.split()[0] for line in usage.split("commands:\n")[1].splitlines() if line.startswith("  ")}
    assert listed - {"help"} <= completed and "lvchange" in completed, (sorted(listed - completed), sorted(completed))
