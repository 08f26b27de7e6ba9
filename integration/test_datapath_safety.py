"""The data path against odd conditions (issue 8; docs/design.md "Input vgfs
cannot trust"): discard and zero-range during a migration follow the transfer
rules (fallocate, mkfs and fstrim through a loop device), new extents read as
zeros on a block-device PV, a PV that shrinks under the mount gives EIO
instead of short reads or a regrown image, and one write() to `.vgfs/ctl` is
at most one command."""

from __future__ import annotations

import ctypes
import errno
import os
import random
import shutil
import time

import pytest

from vgfstest import (MiB, KiB, LvSpec, PvSpec, ctl, ctl_ok, job_int, job_status, libc, lv_map, pread_full,
                      punch_hole, start_slow_job, wait_job, warm_up_lv)

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_ZERO_RANGE = 0x10


def zero_range(fd: int, offset: int, length: int) -> None:
    if libc.fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def nonzero_bytes(n: int, seed: int) -> bytes:
    """Random bytes without a zero byte, so zeros can only come from a discard."""
    return random.Random(seed).randbytes(n).replace(b"\0", b"\1")


def moving_vg(env, lv_mib: int, name: str):
    return env.make_vg(
        name=name,
        pvs=[PvSpec("pv0", "pv0.img", "200MiB"), PvSpec("pv1", "pv1.img", "200MiB")],
        lvs=[LvSpec("lv0", extents=[(f"0-{lv_mib - 1}", "pv0", f"0-{lv_mib - 1}")])],
        extent_size="1MiB",
    )


def wait_pointer(m, job: int, at_least: int, timeout: float = 60) -> dict:
    """Waits until the job's first pass is past `at_least` bytes, still running."""
    deadline = time.monotonic() + timeout
    while True:
        st = job_status(m, job)
        assert st["sync_status"] in ("copying", "resyncing", "synchronized"), st
        if job_int(st, "progress_pointer") >= at_least:
            return st
        assert time.monotonic() < deadline, f"job {job} did not pass byte {at_least}: {st}"
        time.sleep(0.02)


def lv_bytes_on_pvs(vg, m, lv: str) -> bytes:
    """The LV's bytes read from the PV images through the current map (no
    FUSE page cache in the way)."""
    out = bytearray()
    for le, count, pv, pe in lv_map(m, lv):
        start = m.pe_start(pv) + pe * MiB
        with open(vg.pv_path(pv), "rb") as f:
            f.seek(start)
            out += f.read(count * MiB)
    return bytes(out)


# --------------------------------------------------------------------------
# discard and zero-range during a move
# --------------------------------------------------------------------------

def test_punch_and_zero_range_during_a_move_read_zeros_after_the_switch(env):
    size = 128 * MiB  # large enough that the move cannot end before its limit applies
    vg = moving_vg(env, 128, "vgdz")
    vg.create()
    m = vg.mount()
    data = bytearray(nonzero_bytes(size, 1))
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        warm_up_lv(m, "lv0", "pv1")
        job = start_slow_job(m, "move lv0 pv1", limit="2MiB")
        wait_pointer(m, job, 12 * MiB)
        # Below P (copied already): a punch and an unaligned zero-range;
        # above P: a punch the first pass has not reached yet.
        ranges = [(2 * MiB, 3 * MiB, "punch"), (8 * MiB + 4097, 1 * MiB + 5, "zero"),
                  (100 * MiB, 2 * MiB, "punch")]
        for off, length, kind in ranges:
            (punch_hole if kind == "punch" else zero_range)(fd, off, length)
            data[off:off + length] = bytes(length)
        os.fsync(fd)
        assert job_int(job_status(m, job), "progress_pointer") < 100 * MiB, "the move passed the upper range too soon"
        ctl_ok(m, f"limit {job} 0")
        st = wait_job(m, job, timeout=120)
        assert st["sync_status"] == "completed", st
    finally:
        os.close(fd)
    assert [r[2] for r in lv_map(m, "lv0")] == ["pv1"]
    on_pvs = lv_bytes_on_pvs(vg, m, "lv0")
    for off, length, kind in ranges:
        assert on_pvs[off:off + length] == bytes(length), f"{kind} at {off} reads old data after the switch"
    assert on_pvs == bytes(data)
    # And through a fresh mount (no page cache).
    m.unmount()
    m = vg.mount()
    with open(m.lv("lv0"), "rb") as f:
        assert f.read() == bytes(data)
    m.unmount()


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None
                    or shutil.which("fstrim") is None, reason="needs e2fsprogs, losetup and fstrim")
def test_mkfs_and_fstrim_through_a_loop_device_during_a_move(env):
    """mkfs.ext4 discards the whole device first and fstrim discards free
    space: both reach vgfs as PUNCH_HOLE on the LV file. What the LV holds
    after the switch must be what it held before it."""
    size = 128 * MiB  # large enough that the move cannot end before its limit applies
    vg = moving_vg(env, 128, "vgtrim")
    vg.create()
    m = vg.mount()
    lvfile = m.lv("lv0")
    with open(lvfile, "r+b") as f:
        f.write(nonzero_bytes(size, 2))
        f.flush()
        os.fsync(f.fileno())
    warm_up_lv(m, "lv0", "pv1")
    job = start_slow_job(m, "move lv0 pv1", limit="2MiB")
    wait_pointer(m, job, 8 * MiB)

    dev = env.losetup(lvfile)
    # Default mkfs: discard first (the loop device punches the LV file).
    env.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    ext = env.tmp / "ext"
    env.mount_ext4(dev, ext)
    rng = random.Random(3)
    for i in range(12):
        (ext / f"f{i}").write_bytes(rng.randbytes(1 * MiB + i * 4096))
    os.sync()
    for i in range(0, 12, 2):
        (ext / f"f{i}").unlink()
    os.sync()
    env.run(["fstrim", str(ext)], check=True)
    env.umount_ext4(ext)
    env.loop_detach(dev)
    assert job_status(m, job)["sync_status"] in ("copying", "resyncing", "synchronized"), \
        "the move ended before mkfs and fstrim were done"
    with open(lvfile, "rb") as f:
        before = f.read()
    ctl_ok(m, f"limit {job} 0")
    st = wait_job(m, job, timeout=120)
    assert st["sync_status"] == "completed", st
    after_on_pvs = lv_bytes_on_pvs(vg, m, "lv0")
    assert after_on_pvs == before, "the LV changed across the switch (a discard was lost)"
    m.unmount()
    m = vg.mount()
    r = env.run(["e2fsck", "-fn", str(m.lv("lv0"))])
    assert r.returncode == 0, f"e2fsck -fn after the move: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    m.unmount()


# --------------------------------------------------------------------------
# new extents read as zeros on a block-device PV
# --------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("losetup") is None, reason="needs losetup")
def test_lvremove_lvcreate_on_a_loop_device_pv_reads_zeros(env):
    img = env.tmp / "blk.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    dev = env.losetup(img)
    vg = env.make_vg(name="vgblk", pvs=[PvSpec("pv0", dev, None)])
    vg.create()
    m = vg.mount()
    ctl_ok(m, "lvcreate secret 8MiB")
    secret = b"S" * (8 * MiB)
    with open(m.lv("secret"), "r+b") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    runs = lv_map(m, "secret")
    ctl_ok(m, "lvremove secret")
    ctl_ok(m, "lvcreate fresh 8MiB")
    assert lv_map(m, "fresh") == runs, "fresh did not reuse the PEs of secret"
    with open(m.lv("fresh"), "rb") as f:
        assert f.read() == bytes(8 * MiB), "the new LV shows the old LV's bytes"
    m.unmount()


# --------------------------------------------------------------------------
# a PV that shrinks under the mount
# --------------------------------------------------------------------------

def read_until_error(fd: int, off: int, n: int) -> tuple[bytes, int | None]:
    """Reads n bytes at off: (bytes, errno), errno 0 at an end of file,
    None when all n bytes came."""
    out = b""
    while len(out) < n:
        try:
            b = os.pread(fd, n - len(out), off + len(out))
        except OSError as e:
            return out, e.errno
        if not b:
            return out, 0
        out += b
    return out, None


def test_a_pv_truncated_under_the_mount_gives_eio_and_does_not_grow(env):
    vg = env.make_vg(name="vgshrink", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv0", extents=[("0-15", "pv0", "0-15")])])
    vg.create()
    m = vg.mount()
    data = nonzero_bytes(16 * MiB, 4)
    with open(m.lv("lv0"), "r+b") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    pe_start = m.pe_start("pv0")
    m.unmount()
    m = vg.mount()  # a fresh page cache: every read below reaches vgfs
    pv = vg.pv_path("pv0")
    cut = pe_start + 8 * MiB + 12345  # inside LE 8
    os.truncate(pv, cut)
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        assert pread_full(fd, MiB, 0) == data[:MiB]  # before the cut: fine
        # Reading on from the cut ends in EIO, never in an early end of file
        # (the page-aligned bytes before the cut may come first).
        for off in (8 * MiB, 9 * MiB, 15 * MiB):
            got, err = read_until_error(fd, off, MiB)
            assert err == errno.EIO, f"read from {off}: {len(got)} bytes then {'EOF' if err == 0 else err}"
            assert got == data[off:off + len(got)]
            assert len(got) <= max(0, pe_start + 8 * MiB + 12345 - (pe_start + off))
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"w" * (64 * KiB), 12 * MiB)
        assert e.value.errno == errno.EIO
        assert os.stat(pv).st_size == cut, "a write grew the truncated PV"
    finally:
        os.close(fd)
    m.unmount()


# --------------------------------------------------------------------------
# .vgfs/ctl: one command per write(), at most 4096 bytes
# --------------------------------------------------------------------------

def lv_names(m) -> set[str]:
    return {p.name for p in m.mp.iterdir() if p.name != ".vgfs"}


def test_ctl_refuses_a_write_longer_than_4096_bytes_and_runs_nothing(env):
    vg = env.make_vg(name="vgctl")
    vg.create()
    m = vg.mount()
    # Larger than max_write (1 MiB): the kernel splits it into several WRITE
    # requests; each piece used to run as a command of its own.
    first = b"lvcreate a 4MiB"
    second = b"lvcreate b 4MiB\n"
    big = first + b" " * (MiB + 32 * KiB - len(first)) + second + b" " * (16 * KiB)
    small = b"lvcreate c 4MiB\n" + b" " * (200 * KiB) + b"\nlvcreate d 4MiB\n"
    for payload in (big, small):
        fd = os.open(m.meta / "ctl", os.O_RDWR)
        try:
            with pytest.raises(OSError) as e:
                os.write(fd, payload)
            assert e.value.errno == errno.EINVAL
            reply = os.pread(fd, 4096, 0).decode()
        finally:
            os.close(fd)
        assert reply == "error: command longer than 4096 bytes\n"
    assert lv_names(m) == set(), "a piece of a long write ran as a command"

    # A command written past byte 4096 of the file (a later piece of a split
    # write looks like that) is refused too.
    fd = os.open(m.meta / "ctl", os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"lvcreate e 4MiB\n", 5000)
        assert e.value.errno == errno.EINVAL
        assert "first 4096 bytes" in os.pread(fd, 4096, 0).decode()
        # At offset 0 the same command runs; 4096 bytes exactly are fine.
        try:
            assert os.pwrite(fd, b"lvcreate e 4MiB" + b" " * (4096 - 16) + b"\n", 0) == 4096
        except OSError as e:
            raise AssertionError(os.pread(fd, 4096, 0).decode()) from e
        assert os.pread(fd, 4096, 0).decode().startswith("ok")
    finally:
        os.close(fd)
    assert lv_names(m) == {"e"}
    ctl_ok(m, "lvcreate f 4MiB")
    err, reply = ctl(m, "lvcreate f 4MiB")
    assert err == errno.EEXIST, reply
    m.unmount()
