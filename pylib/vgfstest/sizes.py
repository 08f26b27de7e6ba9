"""Byte units and the size and range forms vgfs prints and accepts
('1MiB', '13631488 (13MiB)', '500-999'), parsed the way a test expects them."""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_SUFFIX = {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": 1024 * GiB}


def parse_size(text: str) -> int:
    """'1048576' or '1MiB' -> bytes (test-side parser, lenient on spaces)."""
    text = str(text).strip()
    m = re.fullmatch(r"(\d+)\s*([KMGT]iB|B)?", text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(m.group(1)) * _SUFFIX[m.group(2) or "B"]


def parse_int_bytes(text: str) -> int:
    """A value documented as an integer number of bytes; tolerates a trailing
    human form like '13631488 (13MiB)' but the first token must be an int."""
    first = str(text).strip().split()[0]
    if not first.isdigit():
        raise AssertionError(f"expected an integer byte count, got {text!r}")
    return int(first)


def parse_range(text: str) -> tuple[int, int]:
    """'500-999' -> (500, 500); '7' -> (7, 1). Returns (first, count)."""
    if "-" in text:
        a, b = text.split("-", 1)
        a, b = int(a), int(b)
        assert b >= a, text
        return a, b - a + 1
    return int(text), 1


def format_range(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"
