"""The typical use: a loop device on an LV file, mkfs.ext4, a real file tree,
fsck, and the same files after a vgfs remount."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest

from vgfstest import MiB, LvSpec, PvSpec, tree_sums

pytestmark = pytest.mark.skipif(shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None,
                                reason="needs e2fsprogs and losetup")

TREE_BYTES = 30 * MiB


def pick_source_files(limit=TREE_BYTES) -> list[tuple[Path, Path]]:
    """(source, relative destination) pairs of real files, ~`limit` bytes."""
    out = []
    total = 0
    for base in (Path("/usr/include"), Path("/usr/share/doc"), Path("/usr/lib/python3")):
        if not base.is_dir():
            continue
        for root, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                if p.is_symlink() or not p.is_file():
                    continue
                try:
                    size = p.stat().st_size
                except OSError:
                    continue
                if size > 4 * MiB:
                    continue
                out.append((p, Path(base.name) / p.relative_to(base)))
                total += size
                if total >= limit:
                    return out
    return out


def copy_tree(files, dest: Path, rng: random.Random) -> dict[str, str]:
    """Copies the files plus a few large random ones; returns relpath -> sha256
    computed from the sources."""
    sums = {}
    for src, rel in files:
        d = dest / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        d.write_bytes(data)
        sums[str(rel)] = hashlib.sha256(data).hexdigest()
    big = dest / "random"
    big.mkdir()
    for i, size in enumerate((5 * MiB + 123, 3 * MiB, 777_777)):
        data = rng.randbytes(size)
        (big / f"blob{i}").write_bytes(data)
        sums[f"random/blob{i}"] = hashlib.sha256(data).hexdigest()
    return sums


@pytest.mark.parametrize("loop_dio", [False, True], ids=["loop-buffered", "loop-direct-io"])
def test_ext4_on_lv_survives_fsck_and_remount(env, loop_dio):
    vg = env.make_vg(
        name="vgext",
        pvs=[PvSpec("pv0", "pv0.img", "128MiB"), PvSpec("pv1", "pv1.img", "128MiB")],
        lvs=[LvSpec("lvfs", extents=[("0-9", "pv0", "12-21"), ("10-23", "pv1", "2-15")])],
        extent_size="4MiB",
    )
    vg.create()
    m = vg.mount()
    lvfile = m.lv("lvfs")
    assert os.stat(lvfile).st_size == 96 * MiB

    dev = env.losetup(lvfile)
    if loop_dio:
        r = env.run(["losetup", "--direct-io=on", dev])
        assert r.returncode == 0, f"losetup --direct-io=on on an LV file failed: {r.stderr}"
    env.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    ext = env.tmp / "ext"
    env.mount_ext4(dev, ext)
    files = pick_source_files()
    assert files, "no source files found to copy"
    sums = copy_tree(files, ext, random.Random(42))
    os.sync()
    assert tree_sums(ext) == sums, "files read back from ext4 differ right after the copy"
    env.umount_ext4(ext)
    env.loop_detach(dev)

    r = env.run(["e2fsck", "-fn", str(lvfile)])
    assert r.returncode == 0, f"e2fsck -fn on the LV file: rc={r.returncode}\n{r.stdout}\n{r.stderr}"

    m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"vgfs check after ext4 use: {r.stdout}{r.stderr}"

    m2 = vg.mount()
    dev2 = env.losetup(m2.lv("lvfs"), read_only=True)
    env.mount_ext4(dev2, ext, read_only=True)
    assert tree_sums(ext) == sums, "files differ after a vgfs remount"
    env.umount_ext4(ext)
    env.loop_detach(dev2)
    r = env.run(["e2fsck", "-fn", str(m2.lv("lvfs"))])
    assert r.returncode == 0, f"e2fsck -fn after remount: {r.stdout}\n{r.stderr}"
    m2.unmount()
