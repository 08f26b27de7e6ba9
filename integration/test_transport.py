"""The FUSE transport: request sizes that keep replies on libfuse's splice
path, and the same data path served over /dev/fuse and over io_uring."""

from __future__ import annotations

import errno
import json
import mmap
import os
import random
import re
import time

import pytest

from conftest import LvSpec, MiB, PvSpec, ctl, pread_full, pwrite_full
from vgfstest.mounts import daemon_pids

# A WRITE carries at most 256 pages (1 MiB, copied out of libfuse's request
# buffer), or 252 with -o splice_read (the request is spliced into a 1 MiB
# pipe first); a READ asks for at most 251, so that a reply of two pieces (a
# read crossing a run boundary), plus its header and libfuse's slack pages,
# fits the 1 MiB pipe libfuse can get without CAP_SYS_RESOURCE
# (src/fuse/vgfs_fs.cc, kMaxWritePages, kMaxSplicedWritePages, kMaxReadPages).
MAX_WRITE = 256 * 4096
MAX_SPLICED_WRITE = 252 * 4096
MAX_READ = 251 * 4096
IN_HEADER = 40      # struct fuse_in_header
WRITE_IN = 40       # struct fuse_write_in
OUT_HEADER = 16     # struct fuse_out_header


def small_vg(env, name="vgt"):
    vg = env.make_vg(name=name, pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv", size="16MiB")], extent_size="4MiB")
    vg.create()
    return vg


def aligned(size: int) -> mmap.mmap:
    return mmap.mmap(-1, size)  # page-aligned, as O_DIRECT wants


def requests_from_debug_log(text: str) -> tuple[int, dict[int, str], dict[int, int], dict[int, str]]:
    """(max_write of the INIT reply, opcode by unique, insize by unique, reply line by unique)."""
    m = re.search(r"^\s+max_write=0x([0-9a-f]+)$", text, re.M)
    assert m, "no INIT reply in the -o debug log"
    opcodes, insizes, replies = {}, {}, {}
    for u, op, size in re.findall(r"^unique: (\d+), opcode: (\w+) \(\d+\), nodeid: \d+, insize: (\d+)", text, re.M):
        opcodes[int(u)] = op
        insizes[int(u)] = int(size)
    for u, rest in re.findall(r"^\s+unique: (\d+), (success, outsize: .*|error: .*)$", text, re.M):
        replies[int(u)] = rest
    return int(m.group(1), 16), opcodes, insizes, replies


@pytest.mark.parametrize("opts,max_write", [("debug", MAX_WRITE), ("debug,splice_read", MAX_SPLICED_WRITE)],
                         ids=["copied-writes", "spliced-writes"])
def test_large_requests_fit_the_splice_pipe(env, opts, max_write):
    """A user's 1 MiB O_DIRECT write arrives as one 256-page request (252-page
    ones with -o splice_read, whose request must fit libfuse's pipe), a read
    as requests of at most 251 pages, and every READ reply takes the splice
    path. Raising the read size to 1 MiB again makes the reply miss the pipe:
    libfuse then logs it without "(splice)" and this test fails."""
    vg = small_vg(env)
    m = vg.mount(foreground=True, opts=opts)
    data = os.urandom(4 * MiB)
    buf = aligned(4 * MiB)
    buf.write(data)
    fd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
    try:
        for off in range(0, 4 * MiB, MiB):
            assert os.pwrite(fd, memoryview(buf)[off:off + MiB], 4 * MiB + off) == MiB
        back = aligned(4 * MiB)
        for off in range(0, 4 * MiB, MiB):
            assert os.preadv(fd, [memoryview(back)[off:off + MiB]], 4 * MiB + off) == MiB
        assert bytes(back) == data, "1 MiB O_DIRECT reads returned other bytes than were written"
    finally:
        os.close(fd)
    m.unmount()
    negotiated, opcodes, insizes, replies = requests_from_debug_log(m.stderr())
    assert negotiated == max_write, f"INIT negotiated max_write={negotiated}, expected {max_write // 4096} pages"
    writes = [u for u, op in opcodes.items() if op == "WRITE"]
    reads = [u for u, op in opcodes.items() if op == "READ"]
    assert writes and reads, "the debug log shows no WRITE or READ request"
    for u in writes:
        assert insizes[u] - IN_HEADER - WRITE_IN <= max_write, f"WRITE {u} carried {insizes[u]} bytes"
    assert max(insizes[u] for u in writes) - IN_HEADER - WRITE_IN == max_write, (
        f"a 1 MiB write was not sent as {max_write // 4096}-page requests")
    sizes = []
    for u in reads:
        line = replies.get(u, "")
        assert line.startswith("success") and line.endswith("(splice)"), (
            f"READ {u} was not answered on the splice path: {line!r}")
        sizes.append(int(re.search(r"outsize: (\d+)", line).group(1)) - OUT_HEADER)
    assert max(sizes) == MAX_READ, f"READ reply sizes {sorted(set(sizes))}: expected 251-page replies"


def test_reads_crossing_a_run_boundary_stay_on_the_splice_path(env):
    """A read that crosses from one run of the LV to another (two PV pieces)
    is still answered on libfuse's splice path: at 252 pages its reply plus
    libfuse's slack missed the pipe by 16 bytes and took the
    allocate-copy-free fallback. Every READ reply must say "(splice)" and the
    bytes must be the ones written."""
    ext = 4 * MiB
    vg = env.make_vg(name="vgx", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv", extents=[("0-0", "pv0", "0-0"), ("1-1", "pv0", "2-2"),
                                                ("2-2", "pv0", "4-4"), ("3-3", "pv0", "6-6")])],
                     extent_size="4MiB")
    vg.create()
    m = vg.mount(foreground=True, opts="debug")
    data = os.urandom(4 * ext)
    fd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
    try:
        buf = aligned(4 * ext)
        buf.write(data)
        assert os.pwrite(fd, buf, 0) == 4 * ext
        # 1 MiB reads ending just past, starting just before, and straddling each boundary
        offsets = [b + d for b in (ext, 2 * ext, 3 * ext) for d in (-4096, -MiB + 8192, -MiB // 2, -MAX_READ + 4096)]
        for off in offsets:
            back = aligned(MiB)
            assert os.preadv(fd, [back], off) == MiB
            assert bytes(back) == data[off:off + MiB], f"1 MiB read at {off} returned other bytes"
    finally:
        os.close(fd)
    m.unmount()
    _, opcodes, _, replies = requests_from_debug_log(m.stderr())
    reads = [u for u, op in opcodes.items() if op == "READ"]
    assert len(reads) >= 2 * len(offsets)
    for u in reads:
        line = replies.get(u, "")
        assert line.startswith("success") and line.endswith("(splice)"), (
            f"READ {u} was not answered on the splice path: {line!r}")
    sizes = {int(re.search(r"outsize: (\d+)", replies[u]).group(1)) - OUT_HEADER for u in reads}
    assert max(sizes) == MAX_READ, f"READ reply sizes {sorted(sizes)}: expected 251-page replies"


# ---- both transports -------------------------------------------------------

ENABLE_URING = "/sys/module/fuse/parameters/enable_uring"


def uring_switched_on():
    """Switches the kernel side of FUSE over io_uring on for one test and back
    to N afterwards (a generator for the fixtures below); skips, printing
    why, on a kernel without it."""
    if not os.path.exists(ENABLE_URING):
        reason = f"this kernel has no FUSE over io_uring ({ENABLE_URING} is missing)"
        print(reason)
        pytest.skip(reason)
    try:
        with open(ENABLE_URING, "w") as f:
            f.write("Y")
    except OSError as e:
        reason = f"cannot switch FUSE over io_uring on ({ENABLE_URING}: {e.strerror})"
        print(reason)
        pytest.skip(reason)
    try:
        yield "io_uring"
    finally:
        with open(ENABLE_URING, "w") as f:
            f.write("N")


@pytest.fixture(params=["dev_fuse", "io_uring"])
def transport(request):
    """Mount options that select the transport. For io_uring the kernel side
    is switched on only for the test and put back to N afterwards."""
    if request.param == "dev_fuse":
        yield ""
        return
    yield from uring_switched_on()


@pytest.fixture
def uring():
    yield from uring_switched_on()


def ring_served_uniques(log: str) -> set[int]:
    return {int(u) for u in re.findall(r"^vgfs: ring \d+ serves unique (\d+)$", log, re.M)}


def worker_served_uniques(log: str) -> set[int]:
    """Ring requests whose handler may block, handed to the transport's workers."""
    return {int(u) for u in re.findall(r"^vgfs: ring \d+ hands unique (\d+) to a worker$", log, re.M)}


def test_data_path_over_each_transport(env, transport):
    """Reads and writes of many sizes and alignments over a fragmented LV
    (extents alternating between two PVs) match a model and the PV bytes, and
    the control file works; with io_uring, every READ and WRITE was served
    by a ring, not by /dev/fuse."""
    vg = env.make_vg(name="vgtr", pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lv", extents=[("0-3", "pv0", "2-5"), ("4-7", "pv1", "7-10"),
                                                ("8-11", "pv0", "20-23")])],
                     extent_size="1MiB")
    vg.create()
    opts = ",".join(o for o in ("debug", transport) if o)
    m = vg.mount(foreground=True, opts=opts)
    size = 12 * MiB
    model = bytearray(size)
    rng = random.Random(14)
    fd = os.open(m.lv("lv"), os.O_RDWR)
    dfd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
    try:
        for length in (1, 511, 4096, 65536 + 3, MiB, 2 * MiB + 4096, 3 * MiB):
            off = rng.randrange(0, size - length)
            data = rng.randbytes(length)
            assert pwrite_full(fd, data, off) == length
            model[off:off + length] = data
        os.fsync(fd)
        time.sleep(0.7)  # idle rings wake up on their wait timeout (500 ms) and must keep serving
        for off in range(0, size, MiB):  # O_DIRECT 1 MiB pieces straddle the extent runs
            buf = mmap.mmap(-1, MiB)
            buf.write(bytes(model[off:off + MiB]))
            assert os.pwrite(dfd, buf, off) == MiB
        back = mmap.mmap(-1, size)
        assert os.preadv(dfd, [back], 0) == size
        assert bytes(back) == bytes(model), f"{transport or 'dev_fuse'}: LV content differs from the model"
        assert pread_full(fd, 100, size - 50) == bytes(model[-50:])
        assert os.pread(fd, 10, size) == b""
    finally:
        os.close(fd)
        os.close(dfd)
    st = json.loads((m.meta / "vg.json").read_text())
    assert st["name"] == "vgtr"
    code, reply = ctl(m, "lvcreate lv2 2MiB")
    assert code == 0, reply
    assert (m.mp / "lv2").stat().st_size == 2 * MiB
    m.unmount()
    log = m.stderr()
    _, opcodes, _, _ = requests_from_debug_log(log)
    data_requests = {u for u, op in opcodes.items() if op in ("READ", "WRITE")}
    assert data_requests
    served = ring_served_uniques(log)
    if transport == "io_uring":
        missing = sorted(data_requests - served)
        assert not missing, f"{len(missing)} of {len(data_requests)} READ/WRITE requests came through /dev/fuse"
        assert "serving through /dev/fuse" not in log, log[-2000:]
        # fsync and the control command ran on workers (they may block), LV
        # data requests on the ring threads themselves, and all were answered
        # (the content and the lvcreate above checked that).
        handed = worker_served_uniques(log)
        nodeids = {int(u): int(n) for u, n in re.findall(r"^unique: (\d+), opcode: \w+ \(\d+\), nodeid: (\d+)", log, re.M)}
        fsyncs = {u for u, op in opcodes.items() if op == "FSYNC"}
        assert fsyncs and fsyncs <= handed & served, "an FSYNC was not handed to a ring worker"
        # .vgfs/ctl is inode 3 (src/fuse/vgfs_fs.cc, kCtlIno)
        handed_data = sorted((opcodes[u], nodeids.get(u)) for u in handed & data_requests)
        assert handed_data and all(op == "WRITE" and nodeid == 3 for op, nodeid in handed_data), (
            f"ring workers got LV data requests, or not the .vgfs/ctl write: {handed_data}")
    else:
        assert not served, "a ring served requests without -o io_uring"
    # The daemon's log (docs/design.md "The daemon's log") also writes
    # mount, unmount and, with -o debug, control lines: those are not errors.
    errors = [line for line in log.splitlines() if line.startswith("vgfs:") and " serves unique " not in line
              and " to a worker" not in line
              and not line.startswith(("vgfs: debug: ", "vgfs: mounted VG ", "vgfs: unmounted VG "))]
    assert not errors, errors


def ring_threads(pid: int) -> list[str]:
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sorted(n for n in names if n.startswith("vgfs-ring-") and n != "vgfs-ring-work")


def test_io_uring_stays_when_the_switch_goes_back_right_after_mount(env, uring):
    """The README's sequence: enable_uring Y, `vgfs mount -o io_uring` (in the
    background), enable_uring N at once. The rings register after INIT, in the
    daemon; `vgfs mount` must return only after that, or the kernel refuses
    the entries and the mount falls back to /dev/fuse without a word (the
    daemon's stderr is /dev/null). The ring threads must still be serving
    after some I/O."""
    vg = small_vg(env, "vgsw")
    m = vg.mount(opts="io_uring")
    with open(ENABLE_URING, "w") as f:  # the fixture puts it back to N after the test too
        f.write("N")
    assert m.result.returncode == 0, m.result.stderr
    pids = daemon_pids(m.mp)
    assert len(pids) == 1, pids
    data = os.urandom(MiB)
    fd = os.open(m.lv("lv"), os.O_RDWR)
    try:
        for k in range(4):
            assert pwrite_full(fd, data, k * MiB) == MiB
            assert pread_full(fd, MiB, k * MiB) == data
    finally:
        os.close(fd)
    rings = ring_threads(pids[0])
    assert rings, (
        f"ring threads {rings}: the kernel refused the entries (enable_uring went back to N before they "
        "registered) and the mount serves through /dev/fuse")


def test_io_uring_falls_back_to_dev_fuse_with_one_line(env):
    """With the kernel side off (enable_uring N, or a kernel without it),
    `-o io_uring` mounts anyway on /dev/fuse and says why in one line."""
    if os.path.exists(ENABLE_URING):
        with open(ENABLE_URING) as f:
            assert f.read().strip() == "N", f"{ENABLE_URING} must be N outside the transport fixture"
    vg = small_vg(env, "vgfb")
    m = vg.mount(opts="io_uring")
    lines = [line for line in m.result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("vgfs: io_uring: ") and lines[0].endswith("; serving through /dev/fuse"), lines
    assert ("enable_uring" in lines[0]), lines
    data = os.urandom(MiB)
    fd = os.open(m.lv("lv"), os.O_RDWR)
    try:
        assert pwrite_full(fd, data, 3 * MiB) == MiB
        assert pread_full(fd, MiB, 3 * MiB) == data
    finally:
        os.close(fd)


def test_a_truncated_pv_gives_eio_over_each_transport(env, transport):
    """The ring READ path reads into the entry's buffer instead of splicing:
    a PV cut short under the mount must still give EIO, never an early end of
    file, and a write must not grow it back."""
    from test_datapath_safety import nonzero_bytes, read_until_error
    vg = env.make_vg(name="vgcut", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv0", extents=[("0-15", "pv0", "0-15")])])
    vg.create()
    data = nonzero_bytes(16 * MiB, 4)
    m = vg.mount(foreground=True, opts=transport or None)
    with open(m.lv("lv0"), "r+b") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    pe_start = m.pe_start("pv0")
    m.unmount()
    m = vg.mount(foreground=True, opts=transport or None)  # a fresh page cache
    pv = vg.pv_path("pv0")
    cut = pe_start + 8 * MiB + 12345
    os.truncate(pv, cut)
    fd = os.open(m.lv("lv0"), os.O_RDWR)
    try:
        assert pread_full(fd, MiB, 0) == data[:MiB]
        for off in (8 * MiB, 15 * MiB):
            got, err = read_until_error(fd, off, MiB)
            assert err == errno.EIO, f"read from {off}: {len(got)} bytes then {'EOF' if err == 0 else err}"
            assert got == data[off:off + len(got)]
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"w" * 65536, 12 * MiB)
        assert e.value.errno == errno.EIO
        assert os.stat(pv).st_size == cut, "a write grew the truncated PV"
    finally:
        os.close(fd)
    m.unmount()
