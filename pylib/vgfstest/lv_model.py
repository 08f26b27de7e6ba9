"""An in-memory model of an LV's content and threads that write random data
through it, so a test can prove that no acknowledged write was lost across a
move, a crash or a remount; AckWriter for power cuts, where only what an
fsync acknowledged must survive."""

from __future__ import annotations

import os
import random
import threading
import time

from .files import pread_full, pwrite_full
from .sizes import KiB, MiB


class LvModel:
    """In-memory image of an LV file, kept in step with writes made through
    `write`. A write locks the 1 MiB stripes it touches (in ascending order),
    then writes the LV and the model, so overlapping writes from several
    threads are serialised and the model holds the last completed one."""

    def __init__(self, size: int, stripe: int = MiB, data: bytes | None = None):
        self.size = size
        self.stripe = stripe
        self.buf = bytearray(data) if data is not None else bytearray(size)
        assert len(self.buf) == size
        self.locks = [threading.Lock() for _ in range((size + stripe - 1) // stripe)]
        self.writes = 0
        self._count_lock = threading.Lock()
        # Per writer thread, the write it started and has not completed: after
        # a SIGKILL of the daemon any of its bytes may or may not be on the LV.
        self.pending: dict[int, tuple[int, bytes]] = {}

    def write(self, fd: int, offset: int, data: bytes) -> None:
        assert 0 <= offset and offset + len(data) <= self.size
        first, last = offset // self.stripe, (offset + len(data) - 1) // self.stripe
        held = self.locks[first:last + 1]
        for lk in held:
            lk.acquire()
        try:
            self.pending[threading.get_ident()] = (offset, data)
            n = pwrite_full(fd, data, offset)
            assert n == len(data), f"short write at {offset}: {n} of {len(data)}"
            self.buf[offset:offset + len(data)] = data
            del self.pending[threading.get_ident()]
        finally:
            for lk in reversed(held):
                lk.release()
        with self._count_lock:
            self.writes += 1

    def random_write(self, fd: int, rng, lo: int = 0, hi: int | None = None,
                     min_len: int = 512, max_len: int = MiB) -> tuple[int, int]:
        """One write of random length (min_len..max_len) at a random unaligned
        offset inside [lo, hi). Returns (offset, length)."""
        hi = self.size if hi is None else hi
        length = rng.randint(min_len, min(max_len, hi - lo))
        offset = rng.randint(lo, hi - length)
        self.write(fd, offset, rng.randbytes(length))
        return offset, length

    def first_difference(self, path) -> tuple[int, bytes, bytes] | None:
        """(offset, expected, actual) of the first differing 4 KiB block of
        the LV file at `path`, or None when it equals the model."""
        fd = os.open(path, os.O_RDONLY)
        try:
            chunk = 4 * MiB
            for off in range(0, self.size, chunk):
                want = bytes(self.buf[off:off + chunk])
                got = pread_full(fd, len(want), off)
                if got != want:
                    for i in range(0, len(want), 4096):
                        if got[i:i + 4096] != want[i:i + 4096]:
                            return off + i, want[i:i + 16], got[i:i + 16]
        finally:
            os.close(fd)
        return None

    def adopt_after_kill(self, path, what: str) -> None:
        """After the daemon was killed under the writers: every completed
        write is on the LV, and a byte that differs from the model is one a
        pending write put there. The model then takes the LV's content (so
        the writers can go on) and forgets the pending writes."""
        fd = os.open(path, os.O_RDONLY)
        try:
            got = pread_full(fd, self.size, 0)
        finally:
            os.close(fd)
        if got != self.buf:
            for blk in range(0, self.size, 64 * KiB):
                if got[blk:blk + 64 * KiB] == self.buf[blk:blk + 64 * KiB]:
                    continue
                for i in range(blk, min(blk + 64 * KiB, self.size)):
                    if got[i] != self.buf[i] and not any(
                            off <= i < off + len(d) and d[i - off] == got[i] for off, d in self.pending.values()):
                        raise AssertionError(f"{what}: a completed write is lost at LV byte {i}: expected "
                                             f"{bytes(self.buf[i:i + 8]).hex()} read {got[i:i + 8].hex()} "
                                             f"({len(self.pending)} writes pending at the kill)")
        self.buf = bytearray(got)
        self.pending.clear()

    def assert_equals(self, path, what: str) -> None:
        d = self.first_difference(path)
        assert d is None, (f"{what}: LV content differs from the model at byte {d[0]} "
                           f"(expected {d[1].hex()}..., read {d[2].hex()}...)")


class RandomWriters:
    """`n` threads writing random data at random offsets (512 B..1 MiB,
    unaligned) through os.pwrite on one LV file, recorded in an LvModel.
    `phase` (a callable) is sampled per write to count writes per phase."""

    def __init__(self, model: LvModel, path, n: int = 4, seed: int = 1, lo: int = 0,
                 hi: int | None = None, phase=None, pause: float = 0.0):
        self.model, self.path, self.n, self.seed = model, path, n, seed
        self.lo, self.hi, self.phase, self.pause = lo, hi, phase, pause
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.per_phase: dict[str, int] = {}
        self._lock = threading.Lock()

    def _run(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        fd = os.open(self.path, os.O_RDWR)
        try:
            while not self.stop_event.is_set():
                ph = self.phase() if self.phase else "-"
                self.model.random_write(fd, rng, self.lo, self.hi)
                with self._lock:
                    self.per_phase[ph] = self.per_phase.get(ph, 0) + 1
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # reported by stop()
            self.errors.append(f"writer {i}: {e!r}")
        finally:
            try:
                os.close(fd)
            except OSError as e:   # the daemon is gone (ENOTCONN): reported by stop()
                self.errors.append(f"writer {i}: close: {e!r}")

    def start(self) -> "RandomWriters":
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, killed: bool = False) -> dict[str, int]:
        """Stops the threads; `killed`: the daemon is gone, so their errors
        (ENOTCONN, ...) are expected (LvModel.adopt_after_kill checks)."""
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a writer thread is stuck"
        assert killed or not self.errors, "writer errors: " + "; ".join(self.errors)
        return dict(self.per_phase)


class AckWriter:
    """One thread writing random data at random places of an LV file and
    fsyncing every two writes. `acked` is the LV as the writes whose fsync
    returned make it; `in_flight` are the writes since the last good fsync
    (any of their bytes may or may not have landed). Stops at the first
    error (the power is off, the daemon killed). The LV is len(data) bytes."""

    def __init__(self, path, data: bytes, seed: int):
        self.path, self.rng, self.size = path, random.Random(seed), len(data)
        self.acked = bytearray(data)
        self.in_flight: list[tuple[int, bytes]] = []
        self.acks = 0
        self.error: OSError | None = None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        fd = os.open(self.path, os.O_RDWR)
        try:
            while not self.stop_event.is_set():
                for _ in range(2):
                    n = self.rng.randrange(512, 64 * KiB)
                    off = self.rng.randrange(0, self.size - n)
                    data = self.rng.randbytes(n)
                    self.in_flight.append((off, data))
                    os.pwrite(fd, data, off)
                os.fsync(fd)
                for off, data in self.in_flight:
                    self.acked[off:off + len(data)] = data
                self.in_flight.clear()
                self.acks += 1
                time.sleep(0.002)
        except OSError as e:
            self.error = e
        finally:
            try:
                os.close(fd)
            except OSError as e:   # the daemon is gone (ENOTCONN)
                self.error = self.error or e

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the writer is stuck"

    def check(self, got: bytes, what: str) -> None:
        """Every acknowledged byte is there; a byte differing from the
        acknowledged state must be what an in-flight write put there."""
        assert len(got) == self.size, f"{what}: read {len(got)} bytes"
        bad = []
        for blk in range(0, self.size, 64 * KiB):
            if got[blk:blk + 64 * KiB] == self.acked[blk:blk + 64 * KiB]:
                continue
            for i in range(blk, blk + 64 * KiB):
                if got[i] != self.acked[i] and not any(
                        off <= i < off + len(d) and d[i - off] == got[i] for off, d in self.in_flight):
                    bad.append(i)
                    break
            if len(bad) > 4:
                break
        assert not bad, (f"{what}: acknowledged (fsync'd) data lost at LV bytes {bad}: "
                         f"expected {bytes(self.acked[bad[0]:bad[0] + 8]).hex()} read {got[bad[0]:bad[0] + 8].hex()}")
