"""Data path of LV files: reads and writes through a non-contiguous LE->PE map
(LE→PE form, docs/records.md) checked against an in-memory model, against the PV images
themselves, and across a remount; block-device semantics at the edges."""

from __future__ import annotations

import errno
import mmap
import os
import random
import signal
import threading
import time

import pytest

from vgfstest import (FIG3_LVX_RUNS, LvSpec, MiB, PvSpec, fig3_vg, json_pvs, lv_runs_from_json, pid_alive, pread_full,
                      punch_hole,
                      pwrite_full, read_pv_bytes)

LVX_SIZE = 45 * MiB
ES = 1 * MiB


def first_diff(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(i + 4096, n)):
                if a[j] != b[j]:
                    return j
    return n if len(a) != len(b) else -1


def assert_lv_equals(path, model: bytearray, what: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunk = 4 * MiB
        for off in range(0, len(model), chunk):
            want = bytes(model[off:off + chunk])
            got = pread_full(fd, len(want), off)
            if got != want:
                d = first_diff(got, want)
                pytest.fail(f"{what}: LV content differs from the model at byte {off + d} "
                            f"(got {len(got)} bytes of {len(want)} at chunk {off})")
        assert os.pread(fd, 1, len(model)) == b"", f"{what}: read past the end returned data"
    finally:
        os.close(fd)


def assert_pvs_equal_model(vg, runs, pe_start: dict[str, int], model: bytearray, what: str) -> None:
    """Each LE run must sit at pe_start + PE * extent_size of its PV image."""
    for le, count, pv, pe in runs:
        got = read_pv_bytes(vg.pv_path(pv), pe_start[pv] + pe * ES, count * ES)
        want = bytes(model[le * ES:(le + count) * ES])
        if got != want:
            d = first_diff(got, want)
            pytest.fail(f"{what}: LE {le}-{le + count - 1} on {pv} PE {pe}.. differs from the "
                        f"model at LV byte {le * ES + d} (PV byte {pe_start[pv] + pe * ES + d})")


SIZES = [1, 2, 3, 7, 100, 511, 512, 513, 4095, 4096, 4097, 8191, 65535, 65536, 65537,
         131072 + 17, 1 * MiB - 1, 1 * MiB, 1 * MiB + 1, 2 * MiB + 13, 3 * MiB - 5, 3 * MiB]
# LV byte offsets where the map changes PV or jumps: run boundaries of lvx.
RUN_EDGES = [20 * MiB, 40 * MiB]


def pick_offset(rng: random.Random, size: int) -> int:
    r = rng.random()
    if r < 0.35:
        # Cross a run boundary (PV change or PE jump).
        edge = rng.choice(RUN_EDGES)
        lo = max(0, edge - size + 1)
        hi = min(LVX_SIZE - size, edge - 1)
        if lo <= hi:
            return rng.randint(lo, hi)
    if r < 0.6:
        # Cross (or touch) an extent boundary inside a run.
        edge = rng.randint(1, LVX_SIZE // ES - 1) * ES
        return max(0, min(LVX_SIZE - size, edge - rng.randint(0, size)))
    return rng.randint(0, LVX_SIZE - size)


def random_ops(fd: int, model: bytearray, rng: random.Random, count: int, lo=0, hi=LVX_SIZE,
               errors: list | None = None) -> None:
    """`count` random writes and verified reads inside [lo, hi)."""
    for i in range(count):
        size = rng.choice(SIZES)
        size = min(size, hi - lo)
        if lo == 0 and hi == LVX_SIZE:
            off = pick_offset(rng, size)
        else:
            off = rng.randint(lo, hi - size)
        if rng.random() < 0.6:
            data = rng.randbytes(size)
            n = pwrite_full(fd, data, off)
            assert n == size, f"short write {n}/{size} at {off}"
            model[off:off + size] = data
        else:
            got = pread_full(fd, size, off)
            want = bytes(model[off:off + size])
            if got != want:
                msg = (f"read {size} bytes at {off}: differs at +{first_diff(got, want)} "
                       f"(op {i})")
                if errors is not None:
                    errors.append(msg)
                    return
                pytest.fail(msg)


@pytest.fixture
def fig3(env):
    vg = fig3_vg(env)
    vg.create()
    m = vg.mount()
    return vg, m


def test_fresh_lv_files_have_block_device_size_and_read_zeros(fig3):
    vg, m = fig3
    assert os.stat(m.lv("lvx")).st_size == LVX_SIZE
    assert os.stat(m.lv("lvy")).st_size == 8 * MiB
    with open(m.lv("lvx"), "rb") as f:
        data = f.read()
    assert len(data) == LVX_SIZE
    assert data == bytes(LVX_SIZE), "a freshly created LV on new sparse PVs must read as zeros"


def test_random_io_matches_model_pv_images_and_remount(env, fig3):
    vg, m = fig3
    rng = random.Random(0x5EED)
    pe_start = {pv: m.pe_start(pv) for pv in ("pv0", "pv1")}
    lvs = {lv["name"]: lv for lv in m.vg_json()["lvs"]}
    assert lv_runs_from_json(lvs["lvx"]) == FIG3_LVX_RUNS
    lvy_runs = lv_runs_from_json(lvs["lvy"])

    model = bytearray(LVX_SIZE)
    lvy_model = bytearray(rng.randbytes(8 * MiB))

    fd = os.open(m.lv("lvx"), os.O_RDWR)
    try:
        # Fill the whole LV with odd-sized writes so every extent holds data.
        off = 0
        while off < LVX_SIZE:
            n = min(777_777, LVX_SIZE - off)
            data = rng.randbytes(n)
            assert pwrite_full(fd, data, off) == n
            model[off:off + n] = data
            off += n
        with open(m.lv("lvy"), "r+b") as f:
            f.write(lvy_model)

        random_ops(fd, model, rng, 600)

        # Reads that run into the end of the LV come back short, exactly up
        # to the end.
        for size in (1, 4096, 3 * MiB):
            start = LVX_SIZE - size // 2 - 1
            got = os.pread(fd, size, start)
            assert got == bytes(model[start:]), f"read of {size} at {start} across the end"

        # Several threads on disjoint, unaligned slices of the LV.
        bounds = [0, 7 * MiB + 12345, 19 * MiB + 999_999, 20 * MiB + 3, 33 * MiB + 77, LVX_SIZE]
        errors: list[str] = []

        def worker(k: int) -> None:
            try:
                wfd = os.open(m.lv("lvx"), os.O_RDWR)
                try:
                    random_ops(wfd, model, random.Random(k), 150, bounds[k], bounds[k + 1], errors)
                finally:
                    os.close(wfd)
            except Exception as e:  # reported below
                errors.append(f"thread {k}: {e!r}")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(bounds) - 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

        os.fsync(fd)
    finally:
        os.close(fd)

    assert_lv_equals(m.lv("lvx"), model, "before unmount")
    with open(m.lv("lvy"), "rb") as f:
        assert f.read() == lvy_model, "writes to lvx changed lvy"

    m.unmount()
    assert_pvs_equal_model(vg, FIG3_LVX_RUNS, pe_start, model, "PV images after unmount")
    assert_pvs_equal_model(vg, lvy_runs, pe_start, lvy_model, "lvy on PV images")

    m2 = vg.mount()
    assert_lv_equals(m2.lv("lvx"), model, "after remount")
    with open(m2.lv("lvy"), "rb") as f:
        assert f.read() == lvy_model
    m2.unmount()


def test_pe_start_from_offline_pvs_json_matches_mounted_info(env, fig3):
    vg, m = fig3
    online = {pv: m.pe_start(pv) for pv in ("pv0", "pv1")}
    m.unmount()
    offline = {p["name"]: p["pe_start"] for p in json_pvs(vg.pvs_json())}
    assert offline == online
    for v in online.values():
        assert v % MiB == 0, "pe_start must be 1 MiB aligned"


def test_read_past_end_returns_nothing(fig3):
    vg, m = fig3
    fd = os.open(m.lv("lvx"), os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, LVX_SIZE) == b""
        assert os.pread(fd, 1, LVX_SIZE + 12345) == b""
        assert os.pread(fd, 10, LVX_SIZE - 4) == bytes(4)
    finally:
        os.close(fd)


def test_write_at_or_past_end_is_enospc_and_crossing_write_is_cut(fig3):
    vg, m = fig3
    fd = os.open(m.lv("lvx"), os.O_RDWR)
    try:
        for off in (LVX_SIZE, LVX_SIZE + 1, LVX_SIZE + 10 * MiB):
            with pytest.raises(OSError) as ei:
                os.pwrite(fd, b"x" * 4096, off)
            assert ei.value.errno == errno.ENOSPC, f"write at {off}: {ei.value}"
        n = os.pwrite(fd, b"\xAB" * 8192, LVX_SIZE - 4096)
        assert n == 4096, "a write crossing the end must be cut at the end"
        assert os.pread(fd, 8192, LVX_SIZE - 4096) == b"\xAB" * 4096
        n = os.pwrite(fd, b"\xCD" * 10, LVX_SIZE - 3)
        assert n == 3
        assert os.fstat(fd).st_size == LVX_SIZE, "the LV file must never grow"
    finally:
        os.close(fd)
    assert os.stat(m.lv("lvx")).st_size == LVX_SIZE


def test_truncate_to_other_size_is_eperm(fig3):
    vg, m = fig3
    for size in (0, LVX_SIZE - 1, LVX_SIZE + MiB):
        with pytest.raises(OSError) as ei:
            os.truncate(m.lv("lvx"), size)
        assert ei.value.errno == errno.EPERM, f"truncate to {size}: {ei.value}"
    os.truncate(m.lv("lvx"), LVX_SIZE)  # same size: allowed, nothing changes
    assert os.stat(m.lv("lvx")).st_size == LVX_SIZE


def test_open_with_o_trunc_does_not_truncate(fig3):
    vg, m = fig3
    with open(m.lv("lvx"), "r+b") as f:
        f.seek(5 * MiB)
        f.write(b"keep me")
    fd = os.open(m.lv("lvx"), os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert os.stat(m.lv("lvx")).st_size == LVX_SIZE
    with open(m.lv("lvx"), "rb") as f:
        f.seek(5 * MiB)
        assert f.read(7) == b"keep me"
    # `cat x > LV` style: shell redirection opens with O_TRUNC.
    with open(m.lv("lvx"), "wb") as f:
        f.write(b"head")
    assert os.stat(m.lv("lvx")).st_size == LVX_SIZE
    with open(m.lv("lvx"), "rb") as f:
        assert f.read(4) == b"head"
        f.seek(5 * MiB)
        assert f.read(7) == b"keep me"


def _eperm(fn, *args):
    with pytest.raises(OSError) as ei:
        fn(*args)
    assert ei.value.errno == errno.EPERM, f"{fn.__name__}{args}: {ei.value!r}"


def test_namespace_changes_are_eperm(fig3):
    vg, m = fig3
    mp = m.mp
    _eperm(os.open, str(mp / "newfile"), os.O_CREAT | os.O_WRONLY, 0o600)
    _eperm(os.open, str(mp / "lvz"), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    _eperm(os.mkdir, str(mp / "dir"))
    _eperm(os.unlink, str(mp / "lvx"))
    _eperm(os.rename, str(mp / "lvx"), str(mp / "lvx2"))
    _eperm(os.rename, str(mp / "lvx"), str(mp / "lvy"))
    _eperm(os.symlink, "lvx", str(mp / "link"))
    _eperm(os.link, str(mp / "lvx"), str(mp / "hard"))
    _eperm(os.open, str(mp / ".vgfs" / "new"), os.O_CREAT | os.O_WRONLY, 0o600)
    _eperm(os.rmdir, str(mp / ".vgfs"))
    assert sorted(os.listdir(mp)) == [".vgfs", "lvx", "lvy"]


def test_fsync_and_fdatasync(fig3):
    vg, m = fig3
    fd = os.open(m.lv("lvx"), os.O_RDWR)
    try:
        os.pwrite(fd, b"durable" * 1000, 19 * MiB + 1000)
        os.fsync(fd)
        os.pwrite(fd, b"more", 39 * MiB + 1048574)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    pe0 = m.pe_start("pv0")
    pe1 = m.pe_start("pv1")
    # Durable means on the PV images now, while still mounted.
    assert read_pv_bytes(vg.pv_path("pv0"), pe0 + 69 * ES + 1000, 7000) == b"durable" * 1000
    # LV byte 39MiB+1048574 = LE 39 (pv1 PE 29) offset 1048574, crosses into LE 40 (pv0 PE 5).
    assert read_pv_bytes(vg.pv_path("pv1"), pe1 + 29 * ES + 1048574, 2) == b"mo"
    assert read_pv_bytes(vg.pv_path("pv0"), pe0 + 5 * ES, 2) == b"re"


def test_punch_hole_reads_back_zeros(env, fig3):
    vg, m = fig3
    pe_start = {pv: m.pe_start(pv) for pv in ("pv0", "pv1")}
    rng = random.Random(7)
    lo, hi = 18 * MiB, 23 * MiB
    pattern = rng.randbytes(hi - lo)
    fd = os.open(m.lv("lvx"), os.O_RDWR)
    try:
        assert pwrite_full(fd, pattern, lo) == len(pattern)
        os.fsync(fd)
        # Unaligned hole crossing the pv0 -> pv1 run boundary at 20 MiB.
        p_off, p_len = 20 * MiB - 300_001, 1 * MiB + 500_003
        punch_hole(fd, p_off, p_len)
        assert os.fstat(fd).st_size == LVX_SIZE, "PUNCH_HOLE|KEEP_SIZE must not change the size"
        model = bytearray(pattern)
        model[p_off - lo:p_off - lo + p_len] = bytes(p_len)
        got = pread_full(fd, hi - lo, lo)
        assert got[p_off - lo:p_off - lo + p_len] == bytes(p_len), "punched range is not zero"
        assert got == bytes(model), "punch changed bytes outside the range"
        # A whole-extent aligned hole too.
        punch_hole(fd, 21 * MiB, 1 * MiB)
        model[21 * MiB - lo:22 * MiB - lo] = bytes(MiB)
        assert pread_full(fd, hi - lo, lo) == bytes(model)
        os.fsync(fd)
    finally:
        os.close(fd)
    m.unmount()
    # On the PVs: LE 18-19 are pv0 PE 68-69, LE 20-22 are pv1 PE 10-12.
    got = (read_pv_bytes(vg.pv_path("pv0"), pe_start["pv0"] + 68 * ES, 2 * ES)
           + read_pv_bytes(vg.pv_path("pv1"), pe_start["pv1"] + 10 * ES, 3 * ES))
    assert got == bytes(model), "PV images do not show the punched ranges as zeros"


def test_o_direct_io_across_run_boundary(fig3):
    vg, m = fig3
    try:
        fd = os.open(m.lv("lvx"), os.O_RDWR | os.O_DIRECT)
    except OSError as e:
        pytest.fail(f"O_DIRECT open of an LV file failed: {e!r}")
    try:
        size = 2 * MiB
        buf = mmap.mmap(-1, size)
        data = random.Random(3).randbytes(size)
        buf[:] = data
        off = 39 * MiB  # LE 39 on pv1, LE 40 on pv0
        assert os.pwritev(fd, [buf], off) == size
        rbuf = mmap.mmap(-1, size)
        assert os.preadv(fd, [rbuf], off) == size
        assert rbuf[:] == data
        # O_DIRECT read at the end returns 0 bytes.
        assert os.preadv(fd, [mmap.mmap(-1, 4096)], LVX_SIZE) == 0
    finally:
        os.close(fd)


def test_sigkill_after_fsync_keeps_data_and_remounts(env, fig3):
    """A crashed daemon loses nothing that was fsynced, releases its locks,
    and the VG mounts again and checks clean."""
    vg, m = fig3
    data = random.Random(11).randbytes(2 * MiB + 333)
    fd = os.open(m.lv("lvx"), os.O_RDWR)
    try:
        assert pwrite_full(fd, data, 19 * MiB + 5) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert m.pids
    for pid in m.pids:
        os.kill(pid, signal.SIGKILL)
    for pid in m.pids:
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    m.unmount()  # clears the dead FUSE connection
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, r.stdout + r.stderr
    m2 = vg.mount()
    with open(m2.lv("lvx"), "rb") as f:
        f.seek(19 * MiB + 5)
        assert f.read(len(data)) == data


def test_many_single_extent_runs_with_64k_extents(env):
    """256 one-extent runs alternating between two PVs in reverse PE order:
    every 1 MiB request splits into 16-17 PV pieces."""
    es = 64 * 1024
    n = 256
    runs = [(str(i), f"pv{i % 2}", str(300 - i // 2)) for i in range(n)]
    vg = env.make_vg(name="vgsmall",
                     pvs=[PvSpec("pv0", "pv0.img", "32MiB"), PvSpec("pv1", "pv1.img", "32MiB")],
                     lvs=[LvSpec("lvm", extents=runs)], extent_size="64KiB",
                     region_size="64KiB")
    vg.create()
    m = vg.mount()
    lines = open(m.meta / "lvs" / "lvm" / "map").read().splitlines()
    assert len(lines) == n and lines[0] == "0 pv0 300" and lines[3] == "3 pv1 299"
    size = n * es
    assert os.stat(m.lv("lvm")).st_size == size
    rng = random.Random(99)
    model = bytearray(rng.randbytes(size))
    fd = os.open(m.lv("lvm"), os.O_RDWR)
    try:
        assert pwrite_full(fd, model, 0) == size
        for _ in range(300):
            ln = rng.choice([1, 4095, 65535, 65536, 65537, 1 * MiB, 1 * MiB + 4097, 2 * MiB - 1])
            off = rng.randint(0, size - ln)
            if rng.random() < 0.5:
                data = rng.randbytes(ln)
                assert pwrite_full(fd, data, off) == ln
                model[off:off + ln] = data
            else:
                assert pread_full(fd, ln, off) == bytes(model[off:off + ln]), f"read {ln} at {off}"
        os.fsync(fd)
    finally:
        os.close(fd)
    starts = {p: m.pe_start(p) for p in ("pv0", "pv1")}
    m.unmount()
    for le_s, pv, pe_s in runs:
        le, pe = int(le_s), int(pe_s)
        got = read_pv_bytes(vg.pv_path(pv), starts[pv] + pe * es, es)
        assert got == bytes(model[le * es:(le + 1) * es]), f"LE {le} on {pv} PE {pe}"


def test_offsets_beyond_4gib(env):
    """64-bit offsets end to end: a 6 GiB LV on two sparse 4 GiB PVs."""
    es = 4 * MiB
    vg = env.make_vg(name="vgbig",
                     pvs=[PvSpec("pv0", "pv0.img", "4GiB"), PvSpec("pv1", "pv1.img", "4GiB")],
                     lvs=[LvSpec("lvbig", extents=[("0-799", "pv0", "100-899"),
                                                   ("800-1535", "pv1", "200-935")])],
                     extent_size="4MiB")
    vg.create()
    m = vg.mount()
    size = 1536 * es
    assert os.stat(m.lv("lvbig")).st_size == size == 6 * 1024 * MiB
    starts = {p: m.pe_start(p) for p in ("pv0", "pv1")}
    rng = random.Random(5)
    # (LV offset, length): around 2 GiB, 3200 MiB (run edge), 4 GiB, near the end.
    spots = [(2048 * MiB - 7, 100_000), (800 * es - 3000, 2 * MiB), (4096 * MiB - 1, 4097),
             (5 * 1024 * MiB + 12345, 1 * MiB), (size - 5000, 5000)]
    written = []
    fd = os.open(m.lv("lvbig"), os.O_RDWR)
    try:
        for off, ln in spots:
            data = rng.randbytes(ln)
            assert pwrite_full(fd, data, off) == ln
            written.append((off, data))
        for off, data in written:
            assert pread_full(fd, len(data), off) == data, f"read back at {off}"
        with pytest.raises(OSError) as ei:
            os.pwrite(fd, b"x", size)
        assert ei.value.errno == errno.ENOSPC
        os.fsync(fd)
    finally:
        os.close(fd)
    m.unmount()

    def pv_offset(lv_off):
        le, within = divmod(lv_off, es)
        if le < 800:
            return "pv0", starts["pv0"] + (100 + le) * es + within
        return "pv1", starts["pv1"] + (200 + le - 800) * es + within

    for off, data in written:
        for i in range(0, len(data), 4096):
            piece = data[i:i + 4096]
            # pieces never cross an extent edge when split at 4096 + offset alignment
            pos = off + i
            end = pos + len(piece)
            cut = min(end, (pos // es + 1) * es)
            pv, poff = pv_offset(pos)
            assert read_pv_bytes(vg.pv_path(pv), poff, cut - pos) == piece[:cut - pos], \
                f"LV byte {pos} not at {pv}:{poff}"
            if cut < end:
                pv, poff = pv_offset(cut)
                assert read_pv_bytes(vg.pv_path(pv), poff, end - cut) == piece[cut - pos:], \
                    f"LV byte {cut} not at {pv}:{poff}"
