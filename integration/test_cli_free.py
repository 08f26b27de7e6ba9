"""The free space `vgfs vgs`/`pvs` show can be allocated as shown (issue 9:
"Free 3.0GiB that is really 2.98 GiB makes lvcreate 3GiB fail"). A size
LVM2's way never shows more than exists: the default units mark a size whose
decimals round up with '<', so the number without it is the most that can
be asked for; exact units (b, s, m for whole MiB) are exact.

The VG is left with 1023 free extents of 4 MiB (4092 MiB, 3.996 GiB), where
rounding to two decimals of GiB matters."""

from __future__ import annotations

import pytest

from vgfstest import LvSpec, MiB, PvSpec, assert_one_line_error

FREE_EXTENTS = 1023


@pytest.fixture
def odd_free(env):
    vg = env.make_vg("vgfree", pvs=[PvSpec("pv0", "pv0.img", "4200MiB")], lvs=[LvSpec("filler", "4MiB")],
                     extent_size="4MiB")
    vg.create()
    m = vg.mount()
    free = m.vg_json()["free"] // (4 * MiB)
    grow = free - FREE_EXTENTS
    assert grow > 0
    r = env.vgfs("lvextend", str(m.mp), "filler", "-l", f"+{grow}")
    assert r.returncode == 0, r.stderr
    return m


def report(env, m, verb, field, *opts):
    r = env.vgfs(verb, str(m.mp), "-o", field, "--noheadings", *opts)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_lvcreate_of_the_free_size_shown_succeeds(env, odd_free):
    m = odd_free
    shown = report(env, m, "vgs", "vg_free")
    assert shown == "<4.00g", shown  # 3.996 GiB: never "4.00g"
    assert report(env, m, "pvs", "pv_free") == "<4.00g"
    # Asking for the number behind '<' asks for more than exists: refused, one line, nothing changes.
    seq = m.vg_json()["seqno"]
    assert_one_line_error(env.vgfs("lvcreate", str(m.mp), "big", shown.lstrip("<")), "lvcreate")
    assert m.vg_json()["seqno"] == seq
    # The exact forms are what exists, to the byte: each one allocates all of it.
    for opts, expect in ((("--units", "m"), "4092.00m"), (("--units", "b", "--nosuffix"), str(4092 * MiB)),
                         (("--units", "s"), f"{4092 * MiB // 512}S")):
        shown = report(env, m, "vgs", "vg_free", *opts)
        assert shown == expect, (opts, shown)
        size = shown + ("b" if opts[1] == "b" else "")
        r = env.vgfs("lvcreate", str(m.mp), "all", size if opts[1] != "s" else shown.rstrip("S") + "s")
        assert r.returncode == 0, (opts, r.stderr)
        assert report(env, m, "vgs", "vg_free", "--units", "b", "--nosuffix") == "0"
        r = env.vgfs("lvremove", str(m.mp), "all", "-y")
        assert r.returncode == 0, r.stderr
    # And -l 100%FREE, LVM2's own way of asking for all of it.
    r = env.vgfs("lvcreate", str(m.mp), "-n", "rest", "-l", "100%FREE")
    assert r.returncode == 0, r.stderr
    assert next(l["size"] for l in m.vg_json()["lvs"] if l["name"] == "rest") == 4092 * MiB
    assert report(env, m, "vgs", "vg_free", "--units", "b", "--nosuffix") == "0"
