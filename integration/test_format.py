"""The on-PV format as docs/format.md documents it, and hostile on-disk
values: labels and metadata slots rewritten with *valid* checksums but
nonsense sizes or offsets must be refused cleanly (docs/design.md "Input vgfs
cannot trust": no code path trusts sizes or offsets read from disk), and the
highest valid sequence number must win over stale copies (docs/format.md
"Commit and load")."""

from __future__ import annotations

import os
import re

import pytest

from vgfstest import (MiB, SLOT_OFFSETS, LvSpec, PvSpec, assert_one_line_error, crc32c, is_mounted, json_pvs,
                      read_kv, snapshot)
from pv_image import PvImage


def make_vg(env, name="vgf"):
    vg = env.make_vg(name=name,
                     pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lvx", extents=[("0-9", "pv0", "3-12"), ("10-19", "pv1", "0-9")]),
                          LvSpec("lvy", size="4MiB")])
    vg.create()
    return vg


def test_layout_matches_docs_and_views(env):
    vg = make_vg(env)
    pvs = {p["name"]: p for p in json_pvs(vg.pvs_json())}
    r = env.vgfs("dump", vg.config)
    assert r.returncode == 0, r.stderr
    for name in ("pv0", "pv1"):
        img = PvImage(vg.pv_path(name))
        a, b = img.label(0), img.label(1)
        assert a["crc_ok"] and b["crc_ok"]
        assert a["raw"] == b["raw"], "label copies A and B must be identical"
        assert a["version"] == 1 and a["label_size"] == 4096
        assert (a["slot0"], a["slot1"]) == SLOT_OFFSETS
        assert a["extent_size"] == MiB
        assert a["pe_start"] == pvs[name]["pe_start"]
        assert a["pe_count"] == pvs[name]["pe_count"]
        assert a["pv_uuid"] == pvs[name]["uuid"]
        assert a["device_size"] == 64 * MiB
        assert a["pe_start"] + a["pe_count"] * MiB <= 64 * MiB
        hdr, text = img.slot(1)
        assert hdr.get("seqno") == 1, "after create, seqno 1 lives in slot 1"
        assert hdr["crc_ok"] and hdr["text_ok"]
        assert text.decode().strip() == r.stdout.strip(), "slot text differs from `vgfs dump`"
    # The VG uuid in the labels is the VG's.
    m = vg.mount()
    vgj = m.vg_json()
    assert PvImage(vg.pv_path("pv0")).label()["vg_uuid"] == vgj["uuid"]
    assert PvImage(vg.pv_path("pv1")).label()["vg_uuid"] == vgj["uuid"]


def test_highest_seqno_wins_and_stale_copies_are_repaired(env):
    vg = make_vg(env)
    pv0, pv1 = PvImage(vg.pv_path("pv0")), PvImage(vg.pv_path("pv1"))
    _, text = pv0.slot(1)
    newer = text.decode()
    newer, n1 = re.subn(r"seqno: 1\b", "seqno: 2", newer, count=1)
    # lvx's mode line is the first '"0600"' after 'name: lvx'.
    i = newer.index("name: lvx")
    j = newer.index('"0600"', i)
    newer = newer[:j] + '"0604"' + newer[j + 6:]
    assert n1 == 1
    pv0.write_slot(0, 2, newer.encode())   # seqno 2 -> slot 0, on pv0 only

    before = snapshot(vg.dir)
    r = env.vgfs("check", vg.config)
    assert r.returncode == 1, f"check must report pv1's stale copy: {r.stdout}{r.stderr}"
    assert "pv1" in r.stdout + r.stderr
    assert snapshot(vg.dir) == before, "check changed the PVs"
    r = env.vgfs("dump", vg.config)
    assert r.returncode == 0 and re.search(r"seqno: 2\b", r.stdout), r.stdout + r.stderr

    m = vg.mount()
    assert "pv1" in m.stderr(), f"mount must warn about (and repair) pv1: {m.stderr()!r}"
    assert int(read_kv(m.meta / "vg")["seqno"]) >= 2
    assert oct(os.stat(m.lv("lvx")).st_mode & 0o777) == oct(0o604), \
        "the seqno-2 metadata (lvx mode 0604) must win"
    m.unmount()
    hdr, text1 = pv1.slot(0)
    assert hdr.get("seqno", 0) >= 2 and hdr["text_ok"], f"pv1 slot 0 not repaired: {hdr}"
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, r.stdout + r.stderr


HOSTILE_LABELS = {
    "pe_count_huge": dict(pe_count=1 << 60),
    "pe_count_past_device": dict(pe_count=52),
    "pe_start_past_device": dict(pe_start=1 << 40),
    "pe_start_unaligned": dict(pe_start=13 * MiB + 4096),
    "pe_start_inside_slots": dict(pe_start=2 * MiB),
    "slot_overlaps_label": dict(slot0=0),
    "slot_past_device": dict(slot1=1 << 50),
    "slot_size_zero": dict(slot_size=0),
    "slot_size_huge": dict(slot_size=1 << 62),
    "extent_size_not_pow2": dict(extent_size=3 * MiB),
    "extent_size_zero": dict(extent_size=0),
    "migration_overlaps_pe": dict(mig_size=64 * MiB),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LABELS))
def test_hostile_label_with_valid_crc_is_refused(env, case):
    vg = make_vg(env)
    PvImage(vg.pv_path("pv1")).write_label(**HOSTILE_LABELS[case])
    before = snapshot(vg.dir)
    m = env.mount(vg.config, expect_ok=False)
    assert_one_line_error(m.result, "pv1")
    assert not is_mounted(m.mp)
    for cmd in (("check",), ("lvs",), ("dump",)):
        r = env.vgfs(*cmd, vg.config)
        assert r.returncode == 1, f"vgfs {cmd[0]}: rc={r.returncode} {r.stdout[-500:]}{r.stderr}"
        assert "pv1" in r.stdout + r.stderr
    assert snapshot(vg.dir) == before


def test_truncated_pv_is_refused(env):
    vg = make_vg(env)
    os.truncate(vg.pv_path("pv1"), 20 * MiB)
    before = snapshot(vg.dir)
    m = env.mount(vg.config, expect_ok=False)
    assert_one_line_error(m.result, "pv1")
    assert snapshot(vg.dir) == before


@pytest.mark.parametrize("case", ["length_huge", "length_past_slot", "length_zero"])
def test_hostile_slot_header_on_every_copy_is_refused(env, case):
    vg = make_vg(env)
    for name in ("pv0", "pv1"):
        img = PvImage(vg.pv_path(name))
        _, text = img.slot(1)
        length = {"length_huge": 1 << 62, "length_past_slot": 4 * MiB,
                  "length_zero": 0}[case]
        for i in (0, 1):
            img.write_slot(i, 1, text if case != "length_zero" else b"", length=length,
                           text_crc=crc32c(text) if case != "length_zero" else 0)
    before = snapshot(vg.dir)
    m = env.mount(vg.config, expect_ok=False)
    assert_one_line_error(m.result, "no valid metadata")
    r = env.vgfs("check", vg.config)
    assert r.returncode == 1 and "no valid metadata" in (r.stdout + r.stderr).lower()
    assert snapshot(vg.dir) == before


def _bad_text(text: str, case: str) -> str:
    t = re.sub(r"seqno: 1\b", "seqno: 2", text, count=1)
    if case == "pe_out_of_range":
        return t.replace("0-9 pv0 3-12", "0-9 pv0 45-54")
    if case == "pe_overlap":
        return t.replace("0-9 pv0 3-12", "0-9 pv0 0-9").replace("10-19 pv1 0-9", "10-19 pv0 5-14")
    if case == "le_count_mismatch":
        return t.replace("0-9 pv0 3-12", "0-9 pv0 3-5")
    if case == "extent_size_bad":
        return t.replace("extent_size: 1048576", "extent_size: 1000")
    if case == "pe_start_differs":
        return t.replace("pe_start: 13631488", "pe_start: 1048576", 1)
    if case == "unknown_pv":
        return t.replace("10-19 pv1 0-9", "10-19 pv7 0-9")
    if case == "garbage_yaml":
        return t.replace("lvs:", "lvs: [{{{", 1)
    raise KeyError(case)


BAD_TEXTS = ["pe_out_of_range", "pe_overlap", "le_count_mismatch", "extent_size_bad",
             "pe_start_differs", "unknown_pv", "garbage_yaml"]


@pytest.mark.parametrize("case", BAD_TEXTS)
def test_invalid_newer_metadata_falls_back_to_valid_copy(env, case):
    """seqno 2 with valid checksums but an inconsistent map on every PV: the
    loader takes the highest seqno that also validates (seqno 1), warns, and
    the LV map is the old one."""
    vg = make_vg(env)
    for name in ("pv0", "pv1"):
        img = PvImage(vg.pv_path(name))
        _, text = img.slot(1)
        bad = _bad_text(text.decode(), case)
        assert bad != text.decode()
        img.write_slot(0, 2, bad.encode())
    r = env.vgfs("check", vg.config)
    assert r.returncode == 1, f"check must report the invalid seqno-2 copies: {r.stdout}{r.stderr}"
    out = r.stdout + r.stderr
    assert "pv0" in out and "pv1" in out, f"check must say which PVs hold the bad copies: {out}"
    m = vg.mount()
    assert m.stderr().strip(), "mount must warn about the invalid copies"
    with open(m.meta / "lvs" / "lvx" / "map") as f:
        assert f.read().split("\n")[:2] == ["0-9 pv0 3-12", "10-19 pv1 0-9"]
    m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("case", BAD_TEXTS)
def test_invalid_metadata_as_only_copy_is_refused(env, case):
    vg = make_vg(env)
    for name in ("pv0", "pv1"):
        img = PvImage(vg.pv_path(name))
        _, text = img.slot(1)
        bad = _bad_text(text.decode(), case).encode()
        img.write_slot(0, 2, bad)
        img.write_slot(1, 2, bad)
    before = snapshot(vg.dir)
    m = env.mount(vg.config, expect_ok=False)
    assert_one_line_error(m.result)
    assert not is_mounted(m.mp)
    r = env.vgfs("check", vg.config)
    assert r.returncode == 1, r.stdout + r.stderr
    r = env.vgfs("lvs", "--json", vg.config)
    assert r.returncode == 1
    assert snapshot(vg.dir) == before


def test_pv_json_offline_fields(env):
    vg = make_vg(env)
    pvs = json_pvs(vg.pvs_json())
    assert [p["name"] for p in pvs] == ["pv0", "pv1"]
    for p in pvs:
        assert isinstance(p["pe_start"], int) and p["pe_start"] % MiB == 0
        assert p["pe_start"] == PvImage(vg.pv_path(p["name"])).label()["pe_start"]
