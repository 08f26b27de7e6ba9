"""`mount -t fuse.vgfs` and fstab lines (README.md "Command line",
src/cli/mount_helper.h), through the real mount(8), in a private mount
namespace so that nothing of the machine's own /usr changes:

- mount.fuse3's way: mount(8) runs /sbin/mount.fuse, which runs
  `vgfs SOURCE MNT -o OPTS` through /bin/sh with no PATH (mount(8) drops
  it), so from the shell's default PATH: /usr/local/bin is a tmpfs in the
  namespace holding a `vgfs` link to the binary under test.
- the installed helper: /sbin/mount.fuse.vgfs (meson installs it as a link
  to vgfs), which mount(8) runs itself with util-linux's helper arguments;
  /usr/sbin is a tmpfs holding only that link.

Each way mounts with `mount -t fuse.vgfs CONFIG MNT -o ...` and with
`mount -T FSTAB MNT` (an fstab of the test's own), and unmounts with
fusermount3 -u.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vgfstest import VGFS_BIN, LvSpec, assert_one_line_error, is_mounted

pytestmark = pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("mount.fuse3"),
                                reason="needs unshare(1) and mount.fuse3")

SCRIPT = r"""
set -eu
trap 'fusermount3 -u "$MNT" 2>/dev/null || true' EXIT
case "$HOW" in
  path)   mount -t tmpfs vgfs-test-bin /usr/local/bin; ln -s "$VGFS" /usr/local/bin/vgfs ;;
  helper) mount -t tmpfs vgfs-test-sbin /usr/sbin; ln -s "$VGFS" /usr/sbin/mount.fuse.vgfs ;;
esac
check() {  # the LV is served, with the options asked for
  test "$(stat -c %s "$MNT/lv0")" = 8388608
  grep " $MNT fuse.vgfs " /proc/self/mounts | grep -q "$1"
  echo "mounted $2: $(grep " $MNT " /proc/self/mounts | cut -d' ' -f1,3,4)"
  daemon=$(fuser "$PV" 2>/dev/null | tr -s ' ')
  fusermount3 -u "$MNT"
  ! grep -q " $MNT " /proc/self/mounts
  for p in $daemon; do  # the daemon ends after the unmount: wait for it to let go of the PV's lock
    for i in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  done
}
mount -t fuse.vgfs "$CONFIG" "$MNT" -o ro,allow_other
check 'ro,.*allow_other' "mount -t"
mount -T "$FSTAB" "$MNT"
check 'rw,.*allow_other' "fstab"
if [ "$HOW" = helper ]; then  # -f: a fake mount does nothing (mount.fuse3 does not pass -f on)
  mount -f -t fuse.vgfs "$CONFIG" "$MNT"
  ! grep -q " $MNT " /proc/self/mounts
fi
"""


@pytest.mark.parametrize("how", ["path", "helper"])
def test_mount_t_fuse_vgfs_and_fstab(env, tmp_path, how):
    vg = env.make_vg(name="vg0", lvs=[LvSpec("lv0", size="8MiB")])
    vg.create()
    mnt = env.new_mountpoint()
    fstab = tmp_path / "fstab"
    fstab.write_text(f"# a test fstab\n{vg.config} {mnt} fuse.vgfs defaults,allow_other,noauto,nofail,"
                     f"x-systemd.requires=local-fs.target 0 0\n")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", SCRIPT],
                       env={"VGFS": str(VGFS_BIN), "CONFIG": str(vg.config), "MNT": str(mnt), "FSTAB": str(fstab),
                            "PV": str(vg.pv_path("pv0")), "HOW": how, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "mounted mount -t" in r.stdout and "mounted fstab" in r.stdout, r.stdout


def test_the_helper_takes_mounts_arguments_and_refuses_others(env, tmp_path):
    helper = tmp_path / "mount.fuse.vgfs"
    helper.symlink_to(VGFS_BIN)
    vg = env.make_vg(name="vg0", lvs=[LvSpec("lv0", size="8MiB")])
    vg.create()
    mnt = env.new_mountpoint()

    def run(*args):
        return subprocess.run([str(helper), *args], capture_output=True, text=True, timeout=60)

    r = run(str(vg.config), str(mnt), "-f", "-n", "-o", "rw")  # fake: nothing is mounted
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert_one_line_error(run(str(vg.config)), "mount.fuse.vgfs: give CONFIG and MOUNTPOINT (1 operand given)")
    assert_one_line_error(run(str(vg.config), str(mnt), "-N", "/proc/1/ns/mnt"), "-N", "not supported")
    assert_one_line_error(run(str(vg.config), str(mnt), "--bogus"), 'unknown option "--bogus"')
    assert_one_line_error(run(str(vg.config), str(mnt), "-o", "frobnicate"), 'unknown mount option "frobnicate"')
    # What mount(8) passes for `mount -n -v ...`: mounted, by the helper alone.
    try:
        r = run(str(vg.config), str(mnt), "-nv", "-o", "rw,nosuid,nodev")
        assert r.returncode == 0, r.stderr
        assert (mnt / "lv0").stat().st_size == 8 * 1024 * 1024
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    assert not is_mounted(mnt)
