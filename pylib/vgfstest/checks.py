"""Assertions about how the vgfs command line reports errors: one line on
stderr starting 'vgfs: ', a non-zero exit."""

from __future__ import annotations

import subprocess


def errlines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.strip()]


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str, status: int = 1) -> str:
    """Exit status `status`, exactly one stderr line starting 'vgfs: ', and
    that line contains every needle (case-insensitive). Returns the line."""
    lines = errlines(r.stderr)
    detail = f"cmd={r.args!r}\nrc={r.returncode}\nstdout={r.stdout!r}\nstderr={r.stderr!r}"
    assert r.returncode == status, f"expected exit {status}\n{detail}"
    assert len(lines) == 1, f"expected exactly one stderr line\n{detail}"
    line = lines[0]
    assert line.startswith("vgfs: "), f"stderr must begin with 'vgfs: '\n{detail}"
    for n in needles:
        assert n.lower() in line.lower(), f"expected {n!r} in the error\n{detail}"
    return line
