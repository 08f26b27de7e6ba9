"""Parsers for what a mounted VG shows under MOUNTPOINT/.vgfs (docs/design.md):
'key: value' status files, LV and PV maps, the JSON views. Each accepts a
Mount (anything with a `.meta` folder) or a mount point path."""

from __future__ import annotations

import re
from pathlib import Path

from .sizes import parse_range


def meta_dir(target) -> Path:
    """MOUNTPOINT/.vgfs of a Mount or of a mount point path."""
    meta = getattr(target, "meta", None)
    return Path(meta) if meta is not None else Path(target) / ".vgfs"


def read_kv(path) -> dict[str, str]:
    """Parses 'key: value' lines."""
    out: dict[str, str] = {}
    with open(path, "r") as f:
        text = f.read()
    for line in text.splitlines():
        if not line.strip():
            continue
        assert ": " in line or line.endswith(":"), f"{path}: not a 'key: value' line: {line!r}"
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def split_list(value: str) -> list[str]:
    """'pv0, pv1' / 'pv0 pv1' / '[pv0, pv1]' / '-' / '' -> list of names."""
    value = value.strip().strip("[]")
    if value in ("", "-", "none", "(none)"):
        return []
    return [x for x in re.split(r"[,\s]+", value) if x]


def map_lines(m, kind: str, name: str) -> list[list[str]]:
    """The words of each non-empty line of <kind>/<name>/map ('lvs' or 'pvs')."""
    text = (meta_dir(m) / kind / name / "map").read_text()
    return [line.split() for line in text.splitlines() if line.strip()]


def lv_map(m, lv: str) -> list[tuple[int, int, str, int]]:
    """lvs/<lv>/map -> [(le_first, count, pv, pe_first)]."""
    out = []
    for words in map_lines(m, "lvs", lv):
        line = " ".join(words)
        le, pv, pe = words[:3]
        le_first, n = parse_range(le)
        pe_first, n2 = parse_range(pe)
        assert n == n2, f"LV map line with unequal ranges: {line!r}"
        out.append((le_first, n, pv, pe_first))
    return out


def pv_map(m, pv: str) -> list[tuple]:
    """pvs/<pv>/map -> a list of (pe_first, count, 'free'),
    (pe_first, count, lv, le_first[, 'job N']) and, for the extents holding a
    job's record on LVM2 VGs, (pe_first, count, lv, 'record', 'job N')."""
    out = []
    for parts in map_lines(m, "pvs", pv):
        line = " ".join(parts)
        pe_first, n = parse_range(parts[0])
        if parts[1:] == ["free"]:
            out.append((pe_first, n, "free"))
        elif parts[2] == "record":  # a job's record in extents of its own (LVM2 VGs)
            out.append((pe_first, n, parts[1], "record", " ".join(parts[3:])))
        else:
            le_first, n2 = parse_range(parts[2])
            assert n == n2, f"PV map line with unequal ranges: {line!r}"
            out.append((pe_first, n, parts[1], le_first) + ((" ".join(parts[3:]),) if parts[3:] else ()))
    return out


def pv_allocated(m, pv: str) -> list[tuple]:
    """The non-free runs of a PV map."""
    return [r for r in pv_map(m, pv) if r[2] != "free"]


def lv_runs_from_json(lv: dict) -> list[tuple[int, int, str, int]]:
    """vg.json lvs[i].map -> [(le, count, pv, pe)]."""
    out = []
    for e in lv["map"]:
        le, n = parse_range(e["le"])
        pe, n2 = parse_range(e["pe"])
        assert n == n2, e
        out.append((le, n, e["pv"], pe))
    return out


def json_pvs(obj) -> list[dict]:
    """The PV list of `vgfs pvs --json` output: a list, or an object with a
    "pvs" list (the vg.json shape)."""
    if isinstance(obj, dict):
        assert "pvs" in obj, f"no 'pvs' in {list(obj)}"
        return obj["pvs"]
    assert isinstance(obj, list), type(obj)
    return obj


def json_lvs(obj) -> list[dict]:
    if isinstance(obj, dict):
        assert "lvs" in obj, f"no 'lvs' in {list(obj)}"
        return obj["lvs"]
    assert isinstance(obj, list), type(obj)
    return obj
