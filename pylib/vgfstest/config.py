"""VG configuration files (YAML, docs/format.md) as tests write them: PVs,
LVs with an optional explicit extent map."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class PvSpec:
    name: str
    path: str            # relative to the config folder, or absolute
    size: str | None = "128MiB"


@dataclass
class LvSpec:
    name: str
    size: str | None = None
    mode: str | None = None
    # explicit runs: (le_range, pv, pe_range) e.g. ("0-19", "pv0", "50-69")
    extents: list[tuple[str, str, str]] = field(default_factory=list)
    uid: int | str | None = None   # owner of the LV file (a number or a name)
    gid: int | str | None = None


def render_config(vg_name: str, pvs: list[PvSpec], lvs: list[LvSpec],
                  extent_size: str | None = "1MiB", region_size: str | None = None) -> str:
    out = ["vg:", f"  name: {vg_name}"]
    if extent_size:
        out.append(f"  extent_size: {extent_size}")
    if region_size:
        out.append(f"  region_size: {region_size}")
    out.append("pvs:")
    for pv in pvs:
        item = f"  - {{name: {pv.name}, path: {json.dumps(pv.path)}"
        if pv.size is not None:
            item += f", size: {pv.size}"
        out.append(item + "}")
    if lvs:
        out.append("lvs:")
    for lv in lvs:
        out.append(f"  - name: {lv.name}")
        if lv.size is not None:
            out.append(f"    size: {lv.size}")
        if lv.mode is not None:
            out.append(f"    mode: \"{lv.mode}\"")
        if lv.uid is not None:
            out.append(f"    uid: {lv.uid}")
        if lv.gid is not None:
            out.append(f"    gid: {lv.gid}")
        if lv.extents:
            out.append("    extents:")
            for le, pv, pe in lv.extents:
                out.append(f"      - {{le: {le}, pv: {pv}, pe: {pe}}}")
    return "\n".join(out) + "\n"
