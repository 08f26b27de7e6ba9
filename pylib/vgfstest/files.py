"""File helpers: content hashes, whole-folder snapshots (to prove nothing
changed on disk), full-length pread/pwrite, hole punching, raw byte access to
PV images."""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path

from .sizes import MiB


def sha256_file(path, chunk=4 * MiB) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def snapshot(directory) -> dict[str, str]:
    """relpath -> sha256 for every regular file under `directory` (and 'DIR'
    for directories), so a test can prove that nothing changed on disk."""
    directory = Path(directory)
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith("mnt")]
        for d in dirs:
            out[str((Path(root) / d).relative_to(directory))] = "DIR"
        for name in files:
            p = Path(root) / name
            if p.is_symlink():
                out[str(p.relative_to(directory))] = "LINK:" + os.readlink(p)
            elif p.is_file():
                out[str(p.relative_to(directory))] = sha256_file(p)
    return out


def tree_sums(root) -> dict[str, str]:
    """relpath -> sha256 of every file under `root`, a mounted filesystem
    (its lost+found skipped), to compare a filesystem's content before and
    after a move or a remount."""
    root = Path(root)
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "lost+found"]
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = sha256_file(p)
    return out

libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]


def punch_hole(fd: int, offset: int, length: int) -> None:
    if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def pread_full(fd: int, length: int, offset: int) -> bytes:
    out = bytearray()
    while len(out) < length:
        b = os.pread(fd, length - len(out), offset + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def pwrite_full(fd: int, data, offset: int) -> int:
    done = 0
    mv = memoryview(data)
    while done < len(mv):
        n = os.pwrite(fd, mv[done:], offset + done)
        if n <= 0:
            break
        done += n
    return done


def read_pv_bytes(path, offset, length) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def damage(path, offset, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
