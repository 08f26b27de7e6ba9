"""Truncating an LV file (README.md "The mount"; src/fuse/pending_truncate.h):
`qemu-img convert -O raw SRC MNT/lv` works without -n, and leaves exactly
the image on the LV, holes included, over an LV that held other data.

qemu-img 7 (Debian 12) creates a raw target with ftruncate(0), then
ftruncate(virtual size), then writes only the image's data, trusting the
rest to read as zeros. So a truncate to 0 through an open LV file takes
effect (the LV reads as zeros) at that file's next truncate to the LV's
size or write; a truncate to another size is EPERM and cancels it, and so
does the close: nothing changes unless the program carries on as qemu-img
does.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest

from vgfstest import LvSpec, MiB, PvSpec, sha256_file

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img") or not shutil.which("qemu-io"),
                                reason="needs qemu-img and qemu-io (qemu-utils)")

LV_SIZE = 16 * MiB


@pytest.fixture
def mounted(env):
    vg = env.make_vg("vgq", pvs=[PvSpec("pv0", "pv0.img", "64MiB")], lvs=[LvSpec("disk", "16MiB"), LvSpec("other", "4MiB")])
    vg.create()
    m = vg.mount()
    with open(m.lv("disk"), "r+b") as f:  # what the LV held before: no byte of it may show through
        f.write(os.urandom(LV_SIZE))
        os.fsync(f.fileno())
    return vg, m


def qcow2_with_holes(path, size=LV_SIZE):
    """A qcow2 with data runs, a run written as zeros, and unallocated holes."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 1M 1M", "-c", "write -P 0x5c 5M 96k", "-c", "write -z 7M 1M",
                    "-c", f"write -P 0x11 {size - 64 * 1024} 64k", str(path)], check=True, capture_output=True)


def test_qemu_img_convert_without_n_leaves_exactly_the_image(env, mounted, tmp_path):
    vg, m = mounted
    src = tmp_path / "src.qcow2"
    qcow2_with_holes(src)
    ref = tmp_path / "ref.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(src), str(ref)], check=True)
    other = sha256_file(m.lv("other"))
    r = subprocess.run(["qemu-img", "convert", "-O", "raw", str(src), str(m.lv("disk"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.stat(m.lv("disk")).st_size == LV_SIZE
    r = subprocess.run(["cmp", str(ref), str(m.lv("disk"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sha256_file(m.lv("other")) == other
    # And on the PVs, not only in the kernel's cache.
    m.unmount()
    m2 = vg.mount()
    assert subprocess.run(["cmp", str(ref), str(m2.lv("disk"))]).returncode == 0


def test_qemu_img_convert_of_an_image_of_another_size_fails_and_changes_nothing(env, mounted, tmp_path):
    vg, m = mounted
    src = tmp_path / "small.qcow2"
    qcow2_with_holes(src, size=8 * MiB)
    before = sha256_file(m.lv("disk"))
    r = subprocess.run(["qemu-img", "convert", "-O", "raw", str(src), str(m.lv("disk"))], capture_output=True, text=True)
    assert r.returncode != 0
    assert "Could not resize file" in r.stderr and "Operation not permitted" in r.stderr, r.stderr
    assert os.stat(m.lv("disk")).st_size == LV_SIZE
    assert sha256_file(m.lv("disk")) == before
    # -n, as the README says for that case: the image's bytes, zeros included, and the rest as it was.
    r = subprocess.run(["qemu-img", "convert", "-n", "-O", "raw", str(src), str(m.lv("disk"))], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "small.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(src), str(ref)], check=True)
    with open(m.lv("disk"), "rb") as f:
        assert f.read(8 * MiB) == ref.read_bytes()


def test_truncate_to_zero_takes_effect_only_with_the_next_truncate_or_write(env, mounted):
    vg, m = mounted
    lv = m.lv("disk")
    before = sha256_file(lv)
    seq = m.vg_json()["seqno"]
    # By path (no open file to wait on): refused, as any other size.
    with pytest.raises(OSError) as ei:
        os.truncate(lv, 0)
    assert ei.value.errno == errno.EPERM
    # Closed before anything followed: nothing changed (`truncate -s 0` alone).
    fd = os.open(lv, os.O_RDWR)
    os.ftruncate(fd, 0)
    os.close(fd)
    assert subprocess.run(["truncate", "-s", "0", str(lv)]).returncode == 0
    assert os.stat(lv).st_size == LV_SIZE
    assert sha256_file(lv) == before
    # Followed by another size: EPERM, and the pending truncate is gone too.
    fd = os.open(lv, os.O_RDWR)
    os.ftruncate(fd, 0)
    with pytest.raises(OSError) as ei:
        os.ftruncate(fd, 8 * MiB)
    assert ei.value.errno == errno.EPERM
    os.ftruncate(fd, LV_SIZE)  # the LV's size, now with nothing pending: a no-op
    os.close(fd)
    assert sha256_file(lv) == before
    # Followed by a write: the LV reads as zeros but for what was written.
    fd = os.open(lv, os.O_RDWR)
    os.ftruncate(fd, 0)
    assert os.pwrite(fd, b"x" * 4096, 3 * MiB) == 4096
    os.close(fd)
    assert os.stat(lv).st_size == LV_SIZE
    with open(lv, "rb") as f:
        data = f.read()
    assert len(data) == LV_SIZE
    assert data[3 * MiB:3 * MiB + 4096] == b"x" * 4096
    assert data.count(0) == LV_SIZE - 4096
    assert m.vg_json()["seqno"] == seq  # data only: no metadata change

