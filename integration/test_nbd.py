"""PVs over NBD (docs/nbd.md): VGs with PVs served by nbdkit (memory and file
plugins) and qemu-nbd over unix sockets and loopback TCP, every server
started and stopped by the test, by PID.

Covers: a VG with a local PV and an NBD PV (create, mount, I/O across both,
fsync, remount), ext4 on an LV of an NBD PV, pvadd of an NBD URI, live
pvmove local -> NBD and NBD -> another NBD under concurrent writers checked
against a model, one vgfs per export on this host, exports refused for a
read-write VG (read-only, no flush and no FUA), and the faults: a job whose
NBD destination dies becomes failed with its reason and the LV keeps every
byte; a mount whose server stops fails requests with EIO after the
deadline; a server restarted inside the reconnect window is not noticed;
one gone longer fails requests with EIO until it is back; server errors
(--filter=error) fail one write; acknowledged writes a killed writeback
server lost make one fsync fail; a TLS-PSK export."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vgfstest import (LvModel, LvSpec, MiB, PvSpec, RandomWriters, assert_one_line_error, ctl, ctl_ok,
                      job_status, lv_map, pread_full, pwrite_full, start_job, wait_job)

pytestmark = pytest.mark.skipif(shutil.which("nbdkit") is None, reason="needs nbdkit (Debian package nbdkit)")

HAVE_QEMU_NBD = shutil.which("qemu-nbd") is not None
HAVE_EXT4 = shutil.which("mkfs.ext4") is not None and shutil.which("e2fsck") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NbdServer:
    """One NBD server process in the foreground, on a unix socket (`tcp`
    False) or on HOST:PORT (127.0.0.1 unless told); stop() kills it by PID
    and waits for it."""

    def __init__(self, base: Path, name: str, argv_tail: list[str], tcp: bool = False,
                 qemu: bool = False, host: str = "127.0.0.1"):
        self.base, self.name, self.tail, self.tcp, self.qemu = base, name, argv_tail, tcp, qemu
        self.host = host
        self.sock = base / f"{name}.sock"
        self.port = free_port() if tcp else 0
        self.proc: subprocess.Popen | None = None
        self.log = base / f"{name}.log"
        self.start()

    @property
    def uri(self) -> str:
        if self.tcp:
            return f"nbd://{self.host}:{self.port}/"
        return f"nbd+unix:///?socket={self.sock}"

    def start(self) -> None:
        if self.sock.exists():
            self.sock.unlink()
        if self.qemu:
            where = ["-b", self.host, "-p", str(self.port)] if self.tcp else ["-k", str(self.sock)]
            argv = ["qemu-nbd", "-t", "-e", "8", "-f", "raw", "--cache=writeback"] + where + self.tail
        else:
            where = ["-i", self.host, "-p", str(self.port)] if self.tcp else ["-U", str(self.sock)]
            # nbdkit -f ends with the thread that started it (it sets
            # PR_SET_PDEATHSIG): start servers from the test's main thread.
            argv = ["nbdkit", "-f"] + where + self.tail
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{argv[0]} exited: {self.log.read_text()}"
            if self.tcp:
                try:
                    socket.create_connection((self.host, self.port), timeout=0.2).close()
                    return
                except OSError:
                    pass
            elif self.sock.exists():  # exists a moment before the server listens
                try:
                    with socket.socket(socket.AF_UNIX) as c:
                        c.connect(str(self.sock))
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise AssertionError(f"{argv[0]} did not come up: {self.log.read_text()}")

    def signal(self, sig) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def servers(tmp_path_factory):
    """Factory for NBD servers, all stopped after the test. Request it
    BEFORE `env`, so the vgfs mounts go away before their servers do."""
    base = tmp_path_factory.mktemp("nbd")
    made: list[NbdServer] = []

    def make(name, argv_tail, tcp=False, qemu=False, host="127.0.0.1"):
        s = NbdServer(base, name, argv_tail, tcp=tcp, qemu=qemu, host=host)
        made.append(s)
        return s

    make.base = base
    try:
        yield make
    finally:
        for s in made:
            s.stop()


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def read_lv(m, name, offset=0, length=None) -> bytes:
    fd = os.open(m.lv(name), os.O_RDONLY)
    try:
        if length is None:
            length = os.fstat(fd).st_size - offset
        return pread_full(fd, length, offset)
    finally:
        os.close(fd)


def write_lv(m, name, data: bytes, offset=0, fsync=True) -> None:
    fd = os.open(m.lv(name), os.O_WRONLY)
    try:
        assert pwrite_full(fd, data, offset) == len(data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_vg_with_a_local_and_an_nbd_pv(servers, env):
    img = sparse(servers.base / "pv1.img", 64 * MiB)
    srv = servers("pv1", ["file", str(img)])
    vg = env.make_vg("vgnbd", pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", srv.uri, None)],
                     lvs=[LvSpec("lva", extents=[("0-9", "pv0", "0-9"), ("10-19", "pv1", "3-12")]),
                          LvSpec("lvb", size="8MiB")])
    vg.create()
    m = vg.mount()
    info = (m.meta / "pvs" / "pv1" / "info").read_text()
    assert srv.uri in info, info
    # Patterns across the PV boundary (LE 10 = byte 10 MiB), unaligned.
    rng = random.Random(1)
    data = rng.randbytes(20 * MiB)
    write_lv(m, "lva", data)
    assert read_lv(m, "lva") == data
    piece = rng.randbytes(3 * MiB + 17)
    write_lv(m, "lva", piece, 8 * MiB + 5)
    data = data[:8 * MiB + 5] + piece + data[8 * MiB + 5 + len(piece):]
    assert read_lv(m, "lva") == data
    # The bytes of LE 10-19 are on the NBD export's image, at PE 3.
    pe_start = m.pe_start("pv1")
    with open(img, "rb") as f:
        f.seek(pe_start + 3 * MiB)
        assert f.read(10 * MiB) == data[10 * MiB:]
    env.unmount(m)
    m = vg.mount()
    assert read_lv(m, "lva") == data
    # pvs knows the PV by its URI
    r = env.vgfs("pvs", m.mp)
    assert r.returncode == 0 and "pv1" in r.stdout, r.stdout + r.stderr


def test_one_vgfs_per_export_on_this_host(servers, env):
    srv = servers("shared", ["memory", "64M"])
    vg = env.make_vg("vga", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount()
    # Another config naming the same export: refused while the first holds it.
    other = env.make_vg("vgb", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[])
    other.write_config()
    m2 = env.mount(other.config, expect_ok=False)
    assert m2.result.returncode != 0
    assert_one_line_error(m2.result, "another vgfs")
    r = env.vgfs("create", str(other.config), "--force")
    assert_one_line_error(r, "another vgfs")
    env.unmount(m)
    m = vg.mount()  # free again once unmounted


def test_the_lease_on_the_export_refuses_a_vgfs_on_another_host(servers, env):
    """Another host is another process with its own lock folder
    (VGFS_NBD_LOCK_DIR), so only the lease on the export can stop it: its
    read-write mount is refused with one line naming the holder; an offline
    read is not; after the holder unmounts, the lease is free and it mounts."""
    from vgfstest.env import Mount
    srv = servers("lease", ["memory", "64M"])
    vg = env.make_vg("vgl", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount()
    write_lv(m, "lv", b"h" * 4096)
    other_locks = servers.base / "otherhost-locks"
    other_locks.mkdir()
    other = dict(os.environ, VGFS_NBD_LOCK_DIR=str(other_locks))
    mp2 = env.new_mountpoint("other")
    m2 = Mount(env, vg.config, mp2)
    env.mounts.append(m2)  # torn down by env if it ever mounted
    r = env.vgfs("mount", vg.config, mp2, env=other)
    assert_one_line_error(r, "pv0", f"in use by vgfs pid {m.pids[0]} on host {socket.gethostname()}",
                          "its process is running")
    r = env.vgfs("lvs", vg.config, env=other)
    assert r.returncode == 0 and "lv" in r.stdout, r.stdout + r.stderr
    env.unmount(m)  # releases the lease
    r = env.vgfs("mount", vg.config, mp2, env=other)
    assert r.returncode == 0, r.stderr
    assert read_lv(m2, "lv", 0, 4096) == b"h" * 4096
    env.unmount(m2)


def test_refused_exports(servers, env):
    img = sparse(servers.base / "ro.img", 32 * MiB)
    ro = servers("ro", ["-r", "file", str(img)])
    unflushable = servers("nf", ["eval", "get_size=echo 33554432",
                                 "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
                                 "pwrite=cat >/dev/null", "can_write=exit 0", "can_flush=exit 3",
                                 "can_fua=echo none"])
    for srv, needle in ((ro, "read-only"), (unflushable, "neither flush nor FUA")):
        vg = env.make_vg(f"vg{srv.name}", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[])
        r = vg.create(check=False)
        assert_one_line_error(r, needle, "pv0")
    assert open(img, "rb").read() == bytes(32 * MiB)  # nothing written
    # pvadd of such an export into a mounted VG: the same line, no commit.
    vg = env.make_vg("vgok", pvs=[PvSpec("pv0", "pv0.img", "32MiB")], lvs=[])
    vg.create()
    m = vg.mount()
    for srv, needle in ((ro, "read-only"), (unflushable, "neither flush nor FUA")):
        r = env.vgfs("pvadd", m.mp, srv.uri)
        assert_one_line_error(r, needle)
    assert sorted(p["name"] for p in m.vg_json()["pvs"]) == ["pv0"]
    r = env.vgfs("mount", str(vg.config), str(env.new_mountpoint()), "-o", "nbd_conns=0")
    assert_one_line_error(r, "nbd_conns")


@pytest.mark.skipif(not HAVE_EXT4 or not HAVE_QEMU_NBD, reason="needs e2fsprogs and qemu-nbd")
def test_ext4_on_an_lv_of_a_qemu_nbd_pv_over_tcp(servers, env):
    img = sparse(servers.base / "q.img", 96 * MiB)
    srv = servers("q", [str(img)], tcp=True, qemu=True)
    vg = env.make_vg("vgq", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("fs", size="64MiB")])
    vg.create()
    m = vg.mount()
    dev = env.losetup(m.lv("fs"))
    env.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev], check=True)
    ext = env.tmp / "ext"
    env.mount_ext4(dev, ext)
    rng = random.Random(2)
    files = {f"f{i}.bin": rng.randbytes(rng.randint(1, 400_000)) for i in range(30)}
    for name, data in files.items():
        (ext / name).write_bytes(data)
    os.sync()
    env.umount_ext4(ext)
    env.run(["e2fsck", "-f", "-n", dev], check=True)
    env.mount_ext4(dev, ext, read_only=True)
    for name, data in files.items():
        assert (ext / name).read_bytes() == data
    env.umount_ext4(ext)
    env.loop_detach(dev)


def test_pvadd_and_live_pvmove_local_to_nbd_to_other_nbd(servers, env):
    size = 24 * MiB
    vg = env.make_vg("vgmv", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv", extents=[("0-23", "pv0", "2-25")])], region_size="256KiB")
    vg.create()
    m = vg.mount()
    model = LvModel(size, data=random.Random(3).randbytes(size))
    write_lv(m, "lv", bytes(model.buf))
    mem = servers("mem", ["memory", "64M"])
    img = sparse(servers.base / "far.img", 64 * MiB)
    far = servers("far", ["file", str(img)], tcp=True)
    r = env.vgfs("pvadd", m.mp, mem.uri, "pv1")
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
    r = env.vgfs("pvadd", m.mp, far.uri, "pv2")
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
    for src, dst in (("pv0", "pv1"), ("pv1", "pv2")):
        writers = RandomWriters(model, m.lv("lv"), n=3, seed=int(dst[-1]), pause=0.002).start()
        time.sleep(0.2)
        r = env.vgfs("pvmove", m.mp, src, dst, "--wait", timeout=180)
        time.sleep(0.2)
        writers.stop()
        assert r.returncode == 0, f"pvmove {src} {dst}: {r.stdout}\n{r.stderr}"
        assert {run[2] for run in lv_map(m, "lv")} == {dst}, lv_map(m, "lv")
        model.assert_equals(m.lv("lv"), f"after pvmove {src} -> {dst}")
    env.unmount(m)
    # The VG now lives on the far export: mount it again (the config still
    # names only pv0; the metadata lists the URIs).
    m = vg.mount()
    model.assert_equals(m.lv("lv"), "after remount")


def test_readme_nbd_block_moves_a_live_ext4_to_another_address(servers, env):
    """Issue 13's "done when": README.md's NBD block (pvadd of an nbd://
    URI, pvmove --wait, pvremove) run as written, with the server on another
    loopback address (127.0.0.2) over TCP, moves a mounted ext4 that a
    writer keeps adding files to; e2fsck is clean, every file exact, pv0 is
    gone. Then the server is SIGKILLed and restarted: every byte synced
    before reads back through the same mount (it reconnects)."""
    from vgfstest import REPO, VGFS_BIN
    text = (REPO / "README.md").read_text()
    start = text.index("\n### PVs on other machines (NBD)\n")
    section = text[start:text.index("\n## ", start + 1)]
    [script] = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    vg = env.make_vg("vgrd", pvs=[PvSpec("pv0", "pv0.img", "96MiB"), PvSpec("pv1", "pv1.img", "16MiB")],
                     lvs=[LvSpec("fs", extents=[("0-63", "pv0", "0-63")])])
    vg.create()
    m = vg.mount(opts="nbd_reconnect=30")
    dev = env.losetup(m.lv("fs"))
    env.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    ext = env.tmp / "ext"
    env.mount_ext4(dev, ext)
    rng = random.Random(13)
    files = {f"f{i}": rng.randbytes(rng.randint(1, 2 * MiB)) for i in range(10)}
    for name, data in files.items():
        (ext / name).write_bytes(data)
    img = sparse(servers.base / "far.img", 96 * MiB)
    far = servers("far", ["file", str(img)], tcp=True, host="127.0.0.2")
    script = script.replace("/mnt/vg0", str(m.mp)).replace("nbd://otherhost/", far.uri)
    writer = subprocess.Popen(["bash", "-c", f"for i in $(seq 1 30); do head -c 65536 /dev/urandom > {ext}/w$i; "
                               f"sync {ext}/w$i; done"])
    path = f"{VGFS_BIN.parent}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    r = subprocess.run(["bash", "-e", "-c", script], env=dict(os.environ, PATH=path), capture_output=True,
                       text=True, timeout=300)
    assert writer.wait(timeout=120) == 0
    assert r.returncode == 0, r.stdout + r.stderr
    assert {run[2] for run in lv_map(m, "fs")} == {"pv2"}, lv_map(m, "fs")
    assert "pv0" not in env.vgfs("pvs", m.mp).stdout
    written = {p.name: p.read_bytes() for p in ext.iterdir() if p.name.startswith("w")}
    assert len(written) == 30
    os.sync()
    far.stop()  # SIGKILL: the file plugin holds nothing unflushed that was synced
    far.start()
    env.umount_ext4(ext)
    env.run(["e2fsck", "-fn", dev], check=True)
    env.mount_ext4(dev, ext, read_only=True)
    for name, data in list(files.items()) + list(written.items()):
        assert (ext / name).read_bytes() == data, name
    env.umount_ext4(ext)
    env.loop_detach(dev)


def test_a_job_whose_nbd_destination_dies_fails_and_the_source_is_untouched(servers, env):
    size = 32 * MiB
    vg = env.make_vg("vgf", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv", extents=[("0-31", "pv0", "0-31")])])
    vg.create()
    dest = servers("dest", ["memory", "64M"])
    m = vg.mount(opts="nbd_timeout=2,nbd_reconnect=2")
    model = LvModel(size, data=random.Random(4).randbytes(size))
    write_lv(m, "lv", bytes(model.buf))
    ctl_ok(m, f"pvadd {dest.uri} pv1")
    job = start_job(m, "pvmove pv0 pv1", limit="4MiB")
    writers = RandomWriters(model, m.lv("lv"), n=2, seed=9, pause=0.01).start()
    time.sleep(1.0)
    dest.stop()
    st = wait_job(m, job, timeout=60)
    writers.stop()
    assert st["sync_status"] == "failed", st
    assert st.get("reason"), st
    assert {run[2] for run in lv_map(m, "lv")} == {"pv0"}
    model.assert_equals(m.lv("lv"), "after the failed job")


def test_a_move_whose_destination_restarts_inside_the_window_recopies_and_completes(servers, env):
    """Issue 13: the destination's server (cache=writeback: what it
    acknowledged since the last flush dies with it) is killed mid-move and
    restarted within the reconnect window. The job recopies what it copied
    since its last durable checkpoint and completes; every byte is exact,
    also read back after the server is killed once more after the unmount."""
    size = 32 * MiB
    vg = env.make_vg("vgw", pvs=[PvSpec("pv0", "pv0.img", "64MiB")],
                     lvs=[LvSpec("lv", extents=[("0-31", "pv0", "0-31")])])
    vg.create()
    img = sparse(servers.base / "wb.img", 64 * MiB)
    dest = servers("wb", ["--filter=cache", "file", str(img), "cache=writeback"])
    m = vg.mount(foreground=True, opts="nbd_timeout=3,nbd_reconnect=20")
    model = LvModel(size, data=random.Random(12).randbytes(size))
    write_lv(m, "lv", bytes(model.buf))
    ctl_ok(m, f"pvadd {dest.uri} pv1")
    job = start_job(m, "pvmove pv0 pv1", limit="8MiB")  # about 4 s
    writers = RandomWriters(model, m.lv("lv"), n=2, seed=12, pause=0.01).start()
    time.sleep(1.6)  # past the first checkpoint, with copies after it
    assert job_status(m, job)["sync_status"] == "copying"
    dest.stop()  # SIGKILL: the unflushed copies are gone
    dest.start()
    st = wait_job(m, job, timeout=90)
    writers.stop()
    assert st["sync_status"] == "completed", st
    assert {run[2] for run in lv_map(m, "lv")} == {"pv1"}
    model.assert_equals(m.lv("lv"), "after the move")
    assert "recopying what was copied since the last durable checkpoint" in m.stderr(), m.stderr()
    env.unmount(m)
    dest.stop()  # nothing unflushed may be lost now
    dest.start()
    m = vg.mount()
    model.assert_equals(m.lv("lv"), "after the server was killed again and a remount")


def test_stopped_server_fails_requests_after_the_deadline(servers, env):
    srv = servers("stall", ["memory", "64M"])
    vg = env.make_vg("vgs", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount(opts="nbd_timeout=1,nbd_reconnect=1")
    write_lv(m, "lv", b"x" * 4096)
    srv.signal(signal.SIGSTOP)
    time.sleep(0.1)
    try:
        t0 = time.monotonic()
        fd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
        try:
            import mmap
            buf = mmap.mmap(-1, 4096)
            with pytest.raises(OSError) as e:
                os.preadv(fd, [buf], 1 * MiB)
            assert e.value.errno == 5, e.value
        finally:
            os.close(fd)
        took = time.monotonic() - t0
        assert took < 10, took
    finally:
        srv.signal(signal.SIGCONT)


def test_server_restarted_inside_the_window(servers, env):
    img = sparse(servers.base / "r.img", 64 * MiB)
    srv = servers("r", ["file", str(img)])
    vg = env.make_vg("vgr", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="16MiB")])
    vg.create()
    m = vg.mount(opts="nbd_timeout=3,nbd_reconnect=20", foreground=True)
    data = random.Random(5).randbytes(16 * MiB)
    write_lv(m, "lv", data)
    srv.stop()
    # The read waits in a thread; the server comes back from this one (nbdkit
    # -f dies with the thread that started it: it sets PR_SET_PDEATHSIG).
    got: list = []

    def read_while_down():
        fd = os.open(m.lv("lv"), os.O_RDONLY | os.O_DIRECT)
        try:
            import mmap
            buf = mmap.mmap(-1, MiB)
            got.append(os.preadv(fd, [buf], 3 * MiB))
            got.append(bytes(buf))
        except OSError as e:
            got.append(e)
        finally:
            os.close(fd)

    reader = threading.Thread(target=read_while_down)
    reader.start()
    time.sleep(1.0)
    srv.start()
    reader.join(timeout=60)
    assert got and got[0] == MiB, f"{got[:1]}; daemon: {m.stderr()}"
    assert got[1] == data[3 * MiB:4 * MiB]
    piece = random.Random(6).randbytes(MiB)
    try:
        write_lv(m, "lv", piece, 5 * MiB)
    except OSError as e:
        raise AssertionError(f"{e}; daemon: {m.stderr()}")
    env.unmount(m)
    m = vg.mount()
    assert read_lv(m, "lv", 5 * MiB, MiB) == piece


def test_server_errors_reach_the_writer_and_the_pv_stays_usable(servers, env):
    trigger = servers.base / "fail-writes"
    srv = servers("err", ["--filter=error", "memory", "64M", "error=EIO", "error-pwrite-rate=100%",
                          f"error-pwrite-file={trigger}"])
    vg = env.make_vg("vge", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount()
    write_lv(m, "lv", b"a" * 8192)
    trigger.write_text("")
    fd = os.open(m.lv("lv"), os.O_WRONLY | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, 4096)
        buf.write(b"b" * 4096)
        with pytest.raises(OSError) as e:
            os.pwritev(fd, [buf], 0)
        assert e.value.errno == 5
        trigger.unlink()
        assert os.pwritev(fd, [buf], 0) == 4096
        os.fsync(fd)
    finally:
        os.close(fd)
    assert read_lv(m, "lv", 0, 8192) == b"b" * 4096 + b"a" * 4096


def test_unflushed_writes_of_a_killed_server_make_one_fsync_fail(servers, env):
    img = sparse(servers.base / "u.img", 64 * MiB)
    # cache=writeback: what the server acknowledged before a flush is lost
    # when it is killed, as a disk cache is at a power cut.
    srv = servers("u", ["--filter=cache", "file", str(img), "cache=writeback"])
    vg = env.make_vg("vgu", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount(opts="nbd_timeout=3,nbd_reconnect=20")
    write_lv(m, "lv", b"x" * MiB)  # fsync'd: survives
    fd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, MiB)
        buf.write(b"y" * MiB)
        assert os.pwritev(fd, [buf], MiB) == MiB  # acknowledged, not flushed
        srv.stop()
        srv.start()
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == 5
        os.fsync(fd)  # once
    finally:
        os.close(fd)
    assert read_lv(m, "lv", 0, MiB) == b"x" * MiB


def test_server_gone_longer_than_the_window_then_back(servers, env):
    img = sparse(servers.base / "g.img", 64 * MiB)
    srv = servers("g", ["file", str(img)])
    vg = env.make_vg("vgg", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount(opts="nbd_timeout=1,nbd_reconnect=1")
    write_lv(m, "lv", b"z" * MiB)
    srv.stop()
    fd = os.open(m.lv("lv"), os.O_RDONLY | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, 4096)
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            os.preadv(fd, [buf], 0)
        assert e.value.errno == 5
        assert time.monotonic() - t0 < 10
        srv.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert os.preadv(fd, [buf], 0) == 4096
                break
            except OSError:
                assert time.monotonic() < deadline, "the PV did not come back with its server"
                time.sleep(0.2)
        assert bytes(buf) == b"z" * 4096
    finally:
        os.close(fd)


def test_tls_psk_export(servers, env):
    keys = servers.base / "keys.psk"
    keys.write_text("alice:" + os.urandom(32).hex() + "\n")
    srv = servers("tls", ["--tls=require", f"--tls-psk={keys}", "memory", "64M"])
    uri = f"nbds+unix://alice@/?socket={srv.sock}&tls-psk-file={keys}"
    vg = env.make_vg("vgt", pvs=[PvSpec("pv0", uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount()
    data = random.Random(8).randbytes(3 * MiB)
    write_lv(m, "lv", data)
    env.unmount(m)
    m = vg.mount()
    assert read_lv(m, "lv", 0, len(data)) == data
    # Without TLS the server refuses: one line naming the PV.
    plain = env.make_vg("vgp", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[])
    env.unmount(m)
    r = plain.create(check=False)
    assert_one_line_error(r, "pv0", "cannot connect")


def make_x509(d: Path, cn_server: str = "localhost") -> tuple[Path, Path]:
    """A throwaway CA, a server certificate for `cn_server` and a client
    certificate, made with openssl: returns (server dir for nbdkit
    --tls-certificates, client dir for libnbd's tls-certificates=)."""
    d.mkdir()
    srv, cli = d / "server", d / "client"
    srv.mkdir()
    cli.mkdir()

    def ossl(*args):
        r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, f"openssl {args[0]}: {r.stderr}"

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "ca-key.pem",
         "-out", d / "ca-cert.pem", "-days", "2", "-subj", "/CN=vgfs test CA")
    for name, where, cn, usage in (("server", srv, cn_server, "serverAuth"),
                                   ("client", cli, "vgfs test client", "clientAuth")):
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{cn_server},IP:127.0.0.1\n"
                       "keyUsage=digitalSignature,keyEncipherment\n"
                       f"extendedKeyUsage={usage}\n")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", where / f"{name}-key.pem",
             "-out", d / f"{name}.csr", "-subj", f"/CN={cn}")
        ossl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca-cert.pem", "-CAkey",
             d / "ca-key.pem", "-CAcreateserial", "-out", where / f"{name}-cert.pem", "-days", "2",
             "-extfile", ext)
        shutil.copyfile(d / "ca-cert.pem", where / "ca-cert.pem")
    return srv, cli


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_x509_export(servers, env):
    """TLS with X.509 certificates (nbds:// over TCP, the server's name
    checked against its certificate, a client certificate sent): data
    written survives a remount; a client whose CA did not sign the server's
    certificate is refused with one line."""
    srv_dir, cli_dir = make_x509(servers.base / "pki")
    srv = servers("x509", ["--tls=require", f"--tls-certificates={srv_dir}", "--tls-verify-peer",
                           "memory", "64M"], tcp=True)
    uri = f"nbds://localhost:{srv.port}/?tls-certificates={cli_dir}"
    vg = env.make_vg("vgx", pvs=[PvSpec("pv0", uri, None)], lvs=[LvSpec("lv", size="8MiB")])
    vg.create()
    m = vg.mount()
    data = random.Random(13).randbytes(3 * MiB)
    write_lv(m, "lv", data)
    env.unmount(m)
    m = vg.mount()
    assert read_lv(m, "lv", 0, len(data)) == data
    env.unmount(m)
    # Another CA: the server's certificate does not verify.
    _, other = make_x509(servers.base / "pki-other")
    bad = env.make_vg("vgxb", pvs=[PvSpec("pv0", f"nbds://localhost:{srv.port}/?tls-certificates={other}",
                                          None)], lvs=[])
    r = bad.create(check=False)
    assert_one_line_error(r, "pv0", "cannot connect")


def max_in_flight(log: Path) -> int:
    """The most data requests nbdkit's log filter saw in flight at once (a
    request counts from its `connection=C Read id=N` line to its `...Read
    id=N return=` line)."""
    open_, most = set(), 0
    for line in log.read_text().splitlines():
        parts = line.split()
        conn = next((p for p in parts if p.startswith("connection=")), None)
        ident = next((p for p in parts if p.startswith("id=")), None)
        if conn is None or ident is None:
            continue
        if any(p in ("Read", "Write") for p in parts):
            open_.add((conn, ident))
            most = max(most, len(open_))
        elif any(p in ("...Read", "...Write") for p in parts):
            open_.discard((conn, ident))
    return most


@pytest.mark.skipif(shutil.which("fio") is None, reason="needs fio")
def test_fio_qd32_on_a_delayed_nbd_pv_keeps_dozens_of_requests_in_flight(servers, env):
    """Issue 13, "FUSE replies sent from completions": a mount with 2 FUSE
    threads keeps many more NBD requests in flight than it has threads (the
    reads and writes are replied from the NBD completions), and fio's
    QD32 write + verify through it reads back exactly what it wrote."""
    img = sparse(servers.base / "d.img", 64 * MiB)
    log = servers.base / "d.nbdlog"
    # log outermost: it sees each request arrive and its reply leave, the
    # delay (5 ms per request) in between.
    srv = servers("d", ["--filter=log", "--filter=delay", "file", str(img), "rdelay=5ms", "wdelay=5ms",
                        f"logfile={log}"])
    vg = env.make_vg("vgq", pvs=[PvSpec("pv0", srv.uri, None)], lvs=[LvSpec("lv", size="16MiB")])
    vg.create()
    m = vg.mount(opts="threads=2")
    argv = ["fio", "--name=q", f"--filename={m.lv('lv')}", "--direct=1", "--ioengine=io_uring", "--iodepth=32",
            "--rw=randwrite", "--bs=4k", "--size=4M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
            "--verify_state_save=0", "--output-format=json"]
    r = env.run(argv, timeout=240, cwd=env.tmp)
    assert r.returncode == 0, f"fio failed: {r.stderr[-2000:]}"
    assert "verify" not in r.stderr.lower(), r.stderr[-2000:]
    # 2 FUSE threads waiting for their replies would keep at most 2 in flight.
    assert max_in_flight(log) >= 8, f"at most {max_in_flight(log)} requests in flight"
    # The bytes are on the export (not only in some cache of the mount).
    env.unmount(m)
    m = vg.mount()
    data = read_lv(m, "lv", 0, 4 * MiB)
    assert data != bytes(4 * MiB)


def test_fsync_reports_writes_lost_even_when_a_job_checkpoint_flushed_first(servers, env):
    """Issue 13: acknowledged, unflushed writes lost with a killed writeback
    server make the next fsync of the LV fail once, even though a running
    job's checkpoint (its record lives on that PV, the move's source)
    flushed the PV first and took the PV's own one-time EIO."""
    img = sparse(servers.base / "c.img", 64 * MiB)
    srv = servers("c", ["--filter=cache", "file", str(img), "cache=writeback"])
    vg = env.make_vg("vgc", pvs=[PvSpec("pv0", srv.uri, None), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lv", extents=[("0-7", "pv0", "0-7")]),
                          LvSpec("big", extents=[("0-31", "pv0", "8-39")])])
    vg.create()
    m = vg.mount(foreground=True, opts="nbd_timeout=3,nbd_reconnect=20")
    write_lv(m, "lv", b"x" * MiB)  # fsync'd: survives
    # A slow move of another LV off the NBD PV: it checkpoints every second,
    # flushing pv0 (its record is on the source).
    job = start_job(m, "move big pv1", limit="1MiB")
    fd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, MiB)
        buf.write(b"y" * MiB)
        assert os.pwritev(fd, [buf], MiB) == MiB  # acknowledged, not flushed
        srv.stop()
        srv.start()
        time.sleep(3.0)  # a checkpoint or two flush pv0 meanwhile
        assert job_status(m, job)["sync_status"] in ("copying", "resyncing"), job_status(m, job)
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == 5
        os.fsync(fd)  # once
    finally:
        os.close(fd)
    assert read_lv(m, "lv", 0, MiB) == b"x" * MiB
    ctl_ok(m, f"abort {job}")


def test_fsync_reports_lost_writes_to_the_lv_that_wrote_them(servers, env):
    """Issue 13: the one-time EIO goes to the fsync of the LV whose
    acknowledged writes a killed writeback server lost, not to the first
    fsync on the mount: another LV, whose writes were all fsync'd before,
    fsyncs first and succeeds."""
    import mmap
    img = sparse(servers.base / "l.img", 64 * MiB)
    srv = servers("l", ["--filter=cache", "file", str(img), "cache=writeback"])
    vg = env.make_vg("vgl", pvs=[PvSpec("pv0", srv.uri, None)],
                     lvs=[LvSpec("lv", extents=[("0-7", "pv0", "0-7")]),
                          LvSpec("other", extents=[("0-7", "pv0", "8-15")])])
    vg.create()
    m = vg.mount(foreground=True, opts="nbd_timeout=3,nbd_reconnect=20")
    write_lv(m, "other", b"o" * MiB)  # fsync'd
    fd = os.open(m.lv("lv"), os.O_RDWR | os.O_DIRECT)
    ofd = os.open(m.lv("other"), os.O_RDWR)
    try:
        buf = mmap.mmap(-1, MiB)
        buf.write(b"y" * MiB)
        assert os.pwritev(fd, [buf], 0) == MiB  # acknowledged, not flushed
        srv.stop()
        srv.start()
        os.fsync(ofd)  # nothing of other's was lost
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == 5
        os.fsync(fd)  # once
    finally:
        os.close(ofd)
        os.close(fd)
    assert read_lv(m, "other", 0, MiB) == b"o" * MiB


@pytest.mark.skipif(shutil.which("fio") is None, reason="needs fio")
@pytest.mark.parametrize("transport", ["dev_fuse", "io_uring"])
def test_mixed_local_and_nbd_lv_under_fio_qd16_verify_over_each_transport(servers, env, transport):
    """An LV with extents alternating between a local PV and an NBD PV:
    requests all on NBD are replied from completions, the others (and, over
    io_uring, every ring request, which only its queue thread may answer)
    synchronously; fio's QD16 random write + verify reads back exactly what
    it wrote over both transports."""
    from test_transport import uring_switched_on
    gen = uring_switched_on() if transport == "io_uring" else None
    if gen is not None:
        next(gen)
    try:
        img = sparse(servers.base / "x.img", 64 * MiB)
        srv = servers("x", ["--filter=delay", "file", str(img), "rdelay=1ms", "wdelay=1ms"])
        vg = env.make_vg("vgx", pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", srv.uri, None)],
                         lvs=[LvSpec("lv", extents=[("0-3", "pv0", "2-5"), ("4-7", "pv1", "7-10"),
                                                    ("8-11", "pv0", "20-23"), ("12-15", "pv1", "30-33")])])
        vg.create()
        m = vg.mount(opts="threads=2" + (",io_uring" if gen is not None else ""))
        argv = ["fio", "--name=x", f"--filename={m.lv('lv')}", "--direct=1", "--ioengine=io_uring",
                "--iodepth=16", "--rw=randwrite", "--bsrange=4k-256k", "--size=16M", "--verify=crc32c",
                "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--output-format=json"]
        r = env.run(argv, timeout=240, cwd=env.tmp)
        assert r.returncode == 0, f"fio failed: {r.stderr[-2000:]}"
        env.unmount(m)
    finally:
        if gen is not None:
            gen.close()
