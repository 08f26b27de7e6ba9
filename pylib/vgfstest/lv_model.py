"""An in-memory model of an LV's content and threads that write random data
through it, so a test can prove that no acknowledged write was lost across a
move, a crash or a remount."""

from __future__ import annotations

import os
import threading
import time

from .files import pread_full, pwrite_full
from .sizes import MiB


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

    def write(self, fd: int, offset: int, data: bytes) -> None:
        assert 0 <= offset and offset + len(data) <= self.size
        first, last = offset // self.stripe, (offset + len(data) - 1) // self.stripe
        held = self.locks[first:last + 1]
        for lk in held:
            lk.acquire()
        try:
            n = pwrite_full(fd, data, offset)
            assert n == len(data), f"short write at {offset}: {n} of {len(data)}"
            self.buf[offset:offset + len(data)] = data
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
        import random
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
            os.close(fd)

    def start(self) -> "RandomWriters":
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> dict[str, int]:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a writer thread is stuck"
        assert not self.errors, "writer errors: " + "; ".join(self.errors)
        return dict(self.per_phase)
