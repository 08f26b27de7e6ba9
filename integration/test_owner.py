"""LV file owner and mode (README.md "Command line", docs/config.md): the
config's uid/gid/mode, lvcreate's options, and chmod/chown on an LV file,
which commit to the metadata and so survive a remount. A non-root user
(uid 65534) opens an LV chowned to it and cannot open one it does not own;
chown by a non-root user is EPERM.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import subprocess
import sys

from vgfstest import LvSpec, PvSpec

NOBODY = 65534


def as_nobody(code: str, dirfd: int) -> subprocess.CompletedProcess:
    """Runs python `code` as uid/gid 65534 with the mount's root open as
    `dirfd`: /proc/self/fd/N reaches the mount without walking the test's
    0700 temp folders, so only the LV file's own permissions decide."""
    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return subprocess.run([sys.executable, "-c", code], preexec_fn=drop, pass_fds=[dirfd],
                          capture_output=True, text=True, timeout=60)


def open_code(dirfd: int, name: str) -> str:
    return (f"import os, sys\n"
            f"try:\n"
            f"    os.close(os.open('/proc/self/fd/{dirfd}/{name}', os.O_RDWR))\n"
            f"    print('opened')\n"
            f"except OSError as e:\n"
            f"    print('errno', e.errno)\n")


def test_config_owner_and_mode_show_in_stat(env):
    vg = env.make_vg("vgown", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("a", "4MiB", mode="0640", uid=NOBODY, gid=100), LvSpec("b", "4MiB"),
                          LvSpec("c", "4MiB", uid="nobody", gid="users")])
    vg.create()
    m = vg.mount()
    st = os.stat(m.lv("a"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, 100, 0o640)
    st = os.stat(m.lv("b"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (os.getuid(), os.getgid(), 0o600)
    st = os.stat(m.lv("c"))  # names in the config, looked up at create
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("users").gr_gid)


def test_config_with_an_unknown_owner_name_is_one_line_and_creates_nothing(env):
    vg = env.make_vg("vgown4", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("a", "4MiB", uid="no-such-user-vgfs")])
    r = vg.create(check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and 'no user named "no-such-user-vgfs" on this host' in r.stderr, r.stderr
    assert "uid" in r.stderr and "vg.yaml:" in r.stderr, r.stderr
    assert not (vg.dir / "pv0.img").exists()


def test_chmod_chown_persist_and_lvcreate_options(env):
    vg = env.make_vg("vgown2", pvs=[PvSpec("pv0", "pv0.img", "64MiB")], lvs=[LvSpec("a", "4MiB")])
    vg.create()
    m = vg.mount()
    seq = m.vg_json()["seqno"]
    os.chown(m.lv("a"), NOBODY, 200)
    os.chmod(m.lv("a"), 0o660)
    st = os.stat(m.lv("a"))  # at once, not after the attribute timeout
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, 200, 0o660)
    assert m.vg_json()["seqno"] == seq + 2
    r = env.vgfs("lvcreate", str(m.mp), "c", "2MiB", "--uid", "1000", "--gid", "1001", "--mode", "0604")
    assert r.returncode == 0, r.stderr
    r = env.vgfs("lvchange", str(m.mp), "c", "--mode", "0640", "--gid", "1002")
    assert r.returncode == 0, r.stderr
    r = env.vgfs("lvchange", str(m.mp), "c", "--mode", "0999")
    assert r.returncode != 0 and "--mode" in r.stderr
    # Names work as chown(1) takes them; an unknown one is one line, and nothing is made.
    seq = m.vg_json()["seqno"]
    r = env.vgfs("lvcreate", str(m.mp), "d", "2MiB", "--uid", "no-such-user-vgfs")
    assert r.returncode == 1
    assert r.stderr == 'vgfs: --uid: no user named "no-such-user-vgfs" on this host\n', r.stderr
    r = env.vgfs("lvchange", str(m.mp), "c", "--gid", "no-such-group-vgfs")
    assert r.returncode == 1
    assert r.stderr == 'vgfs: --gid: no group named "no-such-group-vgfs" on this host\n', r.stderr
    assert not m.lv("d").exists() and m.vg_json()["seqno"] == seq
    r = env.vgfs("lvcreate", str(m.mp), "d", "2MiB", "--uid", "nobody", "--gid", "users")
    assert r.returncode == 0, r.stderr
    st = os.stat(m.lv("d"))
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("users").gr_gid)
    r = env.vgfs("lvchange", str(m.mp), "d", "--uid", "root", "--gid", "0")
    assert r.returncode == 0, r.stderr
    assert (os.stat(m.lv("d")).st_uid, os.stat(m.lv("d")).st_gid) == (0, 0)
    m.unmount()
    m2 = vg.mount()
    st = os.stat(m2.lv("a"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, 200, 0o660)
    st = os.stat(m2.lv("c"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1002, 0o640)


def test_non_root_user_opens_only_its_own_lv(env):
    vg = env.make_vg("vgown3", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("mine", "4MiB"), LvSpec("theirs", "4MiB")])
    vg.create()
    m = vg.mount(opts="allow_other")  # other users reach a FUSE mount only with allow_other
    os.chown(m.lv("mine"), NOBODY, NOBODY)
    dirfd = os.open(m.mp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert as_nobody(open_code(dirfd, "mine"), dirfd).stdout.strip() == "opened"
        assert as_nobody(open_code(dirfd, "theirs"), dirfd).stdout.strip() == f"errno {errno.EACCES}"
        # The owner may chmod; only root may chown.
        chmod = (f"import os\nos.chmod('/proc/self/fd/{dirfd}/mine', 0o400)\nprint('ok')\n")
        assert as_nobody(chmod, dirfd).stdout.strip() == "ok"
        assert stat.S_IMODE(os.stat(m.lv("mine")).st_mode) == 0o400
        seq = m.vg_json()["seqno"]
        for target, args in (("mine", "0, 0"), ("mine", f"{NOBODY}, 0"), ("theirs", f"{NOBODY}, -1")):
            code = (f"import os\ntry:\n    os.chown('/proc/self/fd/{dirfd}/{target}', {args})\n    print('ok')\n"
                    f"except OSError as e:\n    print('errno', e.errno)\n")
            assert as_nobody(code, dirfd).stdout.strip() == f"errno {errno.EPERM}", (target, args)
        chmod_theirs = (f"import os\ntry:\n    os.chmod('/proc/self/fd/{dirfd}/theirs', 0o666)\n    print('ok')\n"
                        f"except OSError as e:\n    print('errno', e.errno)\n")
        assert as_nobody(chmod_theirs, dirfd).stdout.strip() == f"errno {errno.EPERM}"
        assert m.vg_json()["seqno"] == seq
        st = os.stat(m.lv("theirs"))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.getuid(), 0o600)
    finally:
        os.close(dirfd)
