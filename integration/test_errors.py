"""Bad input (docs/design.md "Input vgfs cannot trust"): each gets exit status
1, one stderr line beginning 'vgfs: ' that names what and where, and changes
nothing on disk (every file byte for byte the same, no file created). Plus
metadata damage: one copy damaged is repaired with a warning, every copy
damaged is refused."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import struct

import pytest

from vgfstest import (LABEL_OFFSETS, LABEL_SIZE, MiB, SLOT_HEADER_SIZE, SLOT_OFFSETS, LvSpec,
                      PvSpec, assert_one_line_error, damage, is_mounted,
                      render_config, snapshot)


def line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in config")


def expect_create_error(env, vg, text: str, *needles, places=None, force=False):
    """Writes `text` as the config, runs create, checks the one-line error,
    that it names `cfg:LINE:COL` for one of `places` (line numbers), and that
    the folder is unchanged."""
    vg.dir.mkdir(parents=True, exist_ok=True)
    vg.config.write_text(text)
    before = snapshot(vg.dir)
    r = env.vgfs("create", vg.config, *(["--force"] if force else []))
    line = assert_one_line_error(r, *needles)
    if places is not None:
        m = re.search(re.escape(str(vg.config)) + r":(\d+):(\d+)", line)
        assert m, f"error does not name the place as {vg.config}:LINE:COL: {line!r}"
        assert int(m.group(1)) in places, f"error names line {m.group(1)}, expected one of {places}: {line!r}"
        assert int(m.group(2)) >= 1, f"column must be 1-based: {line!r}"
    after = snapshot(vg.dir)
    assert after == before, f"create failed but changed the folder: before={before} after={after}"
    return line


def base_vg(env, **kw):
    return env.make_vg(name="vg0", **kw)


def good_text(vg, lvs=None, pvs=None, extent_size="1MiB", region_size=None):
    pvs = pvs or [PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")]
    lvs = lvs if lvs is not None else [LvSpec("lv0", size="8MiB")]
    return render_config("vg0", pvs, lvs, extent_size, region_size)


# --------------------------------------------------------------------------
# Config errors (create)
# --------------------------------------------------------------------------

def test_malformed_yaml_names_file_line_col(env):
    vg = base_vg(env)
    text = ("vg:\n"
            "  name: vg0: x\n"
            "pvs:\n"
            "  - {name: pv0, path: pv0.img, size: 64MiB}\n")
    line = expect_create_error(env, vg, text, places=[2])
    # yaml-cpp puts the mark at the second ':' -> column 12 (1-based).
    assert f"{vg.config}:2:12" in line, f"expected {vg.config}:2:12 in {line!r}"


def test_malformed_yaml_unclosed_flow_map(env):
    vg = base_vg(env)
    text = ("vg:\n"
            "  name: vg0\n"
            "pvs:\n"
            "  - {name: pv0, path: pv0.img, size: 64MiB\n"
            "lvs: []\n")
    expect_create_error(env, vg, text, places=[4, 5, 6])


@pytest.mark.parametrize("where", ["top", "vg", "pv", "lv", "extent"])
def test_unknown_key_is_named_with_its_line(env, where):
    vg = base_vg(env)
    lvs = [LvSpec("lv0", extents=[("0-3", "pv0", "0-3")])]
    text = good_text(vg, lvs=lvs)
    lines = text.splitlines()
    if where == "top":
        lines.append("bogus: 1")
        ln = len(lines)
    elif where == "vg":
        lines.insert(2, "  bogus: 1")
        ln = 3
    elif where == "pv":
        i = line_of(text, "name: pv1") - 1
        lines[i] = lines[i].replace("}", ", bogus: 1}")
        ln = i + 1
    elif where == "lv":
        i = line_of(text, "- name: lv0") - 1
        lines.insert(i + 1, "    bogus: 1")
        ln = i + 2
    else:
        i = line_of(text, "{le: 0-3") - 1
        lines[i] = lines[i].replace("}", ", bogus: 1}")
        ln = i + 1
    expect_create_error(env, vg, "\n".join(lines) + "\n", 'unknown key "bogus"', places=[ln])


@pytest.mark.parametrize("field,value", [
    ("pv_size", "12XB"),
    ("pv_size", "-64MiB"),
    ("pv_size", "64 MB"),
    ("lv_size", "1.5GiB"),
    ("lv_size", "lots"),
    ("extent_size", "3MiB"),     # not a power of two
    ("extent_size", "32KiB"),    # below 64 KiB
    ("extent_size", "2GiB"),     # above 1 GiB
    ("region_size", "8MiB"),     # larger than the extent size
    ("region_size", "100KiB"),   # not a power of two
])
def test_bad_size(env, field, value):
    vg = base_vg(env)
    pvs = [PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")]
    lvs = [LvSpec("lv0", size="8MiB")]
    es, rs = "1MiB", None
    if field == "pv_size":
        pvs[1] = PvSpec("pv1", "pv1.img", value)
    elif field == "lv_size":
        lvs[0] = LvSpec("lv0", size=value)
    elif field == "extent_size":
        es = value
    else:
        rs = value
    text = render_config("vg0", pvs, lvs, es, rs)
    key = {"pv_size": "size: " + value, "lv_size": "size: " + value,
           "extent_size": "extent_size:", "region_size": "region_size:"}[field]
    expect_create_error(env, vg, text, places=[line_of(text, key)])


@pytest.mark.parametrize("what,name", [
    ("lv", "bad/name"),
    ("lv", "-lv"),
    ("lv", ".vgfs"),
    ("lv", "x" * 128),
    ("lv", "sp ace"),
    ("pv", "pv/0"),
    ("vg", ".vg"),
])
def test_bad_name(env, what, name):
    vg = base_vg(env)
    pvs = [PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")]
    lvs = [LvSpec("lv0", size="8MiB")]
    vg_name = "vg0"
    if what == "lv":
        lvs[0] = LvSpec(name, size="8MiB")
    elif what == "pv":
        pvs[1] = PvSpec(name, "pv1.img", "64MiB")
    else:
        vg_name = name
    text = render_config(vg_name, pvs, lvs, "1MiB")
    shown = name if len(name) < 60 else name[:20]
    expect_create_error(env, vg, text, shown, places=[line_of(text, name)])


def test_duplicate_lv_and_pv_names(env):
    vg = base_vg(env)
    text = good_text(vg, lvs=[LvSpec("lv0", size="4MiB"), LvSpec("lv0", size="4MiB")])
    expect_create_error(env, vg, text, "lv0", places=[i for i, l in enumerate(text.splitlines(), 1)
                                                      if "lv0" in l])
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv0", "pv1.img", "64MiB")])
    expect_create_error(env, vg, text, "pv0", places=[line_of(text, "pv0.img"), line_of(text, "pv1.img")])


@pytest.mark.parametrize("case", [
    "two_lvs_same_pes", "one_lv_overlapping_les", "one_lv_same_pe_twice",
])
def test_overlapping_explicit_extents(env, case):
    vg = base_vg(env)
    if case == "two_lvs_same_pes":
        lvs = [LvSpec("lva", extents=[("0-9", "pv0", "10-19")]),
               LvSpec("lvb", extents=[("0-5", "pv0", "15-20")])]
        bad = ["pe: 10-19", "pe: 15-20"]
    elif case == "one_lv_overlapping_les":
        lvs = [LvSpec("lva", extents=[("0-9", "pv0", "0-9"), ("5-14", "pv1", "0-9")])]
        bad = ["le: 0-9", "le: 5-14"]
    else:
        lvs = [LvSpec("lva", extents=[("0-4", "pv0", "0-4"), ("5-9", "pv0", "2-6")])]
        bad = ["pe: 0-4", "pe: 2-6"]
    text = good_text(vg, lvs=lvs)
    expect_create_error(env, vg, text, places=[line_of(text, b) for b in bad])


@pytest.mark.parametrize("case", [
    "pe_past_end", "unknown_pv", "count_mismatch", "le_gap", "le_not_from_zero", "reversed_range",
])
def test_out_of_range_or_inconsistent_explicit_extents(env, case):
    vg = base_vg(env)
    runs = {
        "pe_past_end": [("0-20", "pv0", "100-120")],
        "unknown_pv": [("0-3", "pv9", "0-3")],
        "count_mismatch": [("0-9", "pv0", "10-14")],
        "le_gap": [("0-9", "pv0", "0-9"), ("20-29", "pv1", "0-9")],
        "le_not_from_zero": [("5-9", "pv0", "0-4")],
        "reversed_range": [("0-9", "pv0", "19-10")],
    }[case]
    text = good_text(vg, lvs=[LvSpec("lva", extents=runs)])
    places = [line_of(text, f"le: {r[0]}") for r in runs] + [line_of(text, "- name: lva")]
    expect_create_error(env, vg, text, places=places)


@pytest.mark.parametrize("case", [
    "vg_name_missing", "pv_path_missing", "pv_name_missing", "lv_name_missing",
    "lv_size_and_extents_missing", "pvs_missing", "vg_missing", "pvs_empty",
])
def test_missing_required_entries(env, case):
    vg = base_vg(env)
    text = good_text(vg)
    lines = text.splitlines()
    if case == "vg_name_missing":
        lines = [l for l in lines if l != "  name: vg0"]
        place = [1, 2]  # the `vg:` key or its mapping's first line
    elif case == "pv_path_missing":
        i = line_of(text, "name: pv1") - 1
        lines[i] = '  - {name: pv1, size: 64MiB}'
        place = [i + 1]
    elif case == "pv_name_missing":
        i = line_of(text, "name: pv1") - 1
        lines[i] = '  - {path: "pv1.img", size: 64MiB}'
        place = [i + 1]
    elif case == "lv_name_missing":
        i = line_of(text, "- name: lv0") - 1
        lines[i] = "  - size: 8MiB"
        del lines[i + 1]
        place = [i + 1]
    elif case == "lv_size_and_extents_missing":
        i = line_of(text, "- name: lv0") - 1
        del lines[i + 1]
        place = [i + 1]
    elif case == "pvs_missing":
        i = line_of(text, "pvs:") - 1
        lines = lines[:i] + [l for l in lines[i + 1:] if not l.startswith("  - {name: pv")]
        place = None
    elif case == "vg_missing":
        lines = lines[3:]
        place = None
    else:
        i = line_of(text, "pvs:") - 1
        lines = lines[:i] + ["pvs: []"] + [l for l in lines[i + 1:] if not l.startswith("  - {name: pv")]
        place = None
    expect_create_error(env, vg, "\n".join(lines) + "\n", places=place)


@pytest.mark.parametrize("mode", ["0999", "abc", "07777", "-1"])
def test_bad_lv_mode(env, mode):
    vg = base_vg(env)
    text = good_text(vg, lvs=[LvSpec("lv0", size="8MiB", mode=mode)])
    expect_create_error(env, vg, text, places=[line_of(text, "mode:")])


@pytest.mark.parametrize("content", ["", "just a string\n", "- a\n- b\n", "vg: 5\n"])
def test_config_of_the_wrong_shape(env, content):
    vg = base_vg(env)
    expect_create_error(env, vg, content)


def test_config_is_a_directory(env):
    d = env.tmp / "cfgdir.yaml"
    d.mkdir()
    r = env.vgfs("create", d)
    assert_one_line_error(r, "cfgdir.yaml")


def test_lv_larger_than_free_space(env):
    vg = base_vg(env)
    text = good_text(vg, lvs=[LvSpec("lvbig", size="1GiB")])
    expect_create_error(env, vg, text, "lvbig")


def test_missing_config_file(env):
    cfg = env.tmp / "nope" / "missing.yaml"
    r = env.vgfs("create", cfg)
    assert_one_line_error(r, "missing.yaml")
    assert not cfg.parent.exists()


def test_pv_in_missing_directory(env):
    vg = base_vg(env)
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", "64MiB"),
                              PvSpec("pv1", "nodir/pv1.img", "64MiB")])
    expect_create_error(env, vg, text, "pv1")
    assert not (vg.dir / "nodir").exists()
    assert not (vg.dir / "pv0.img").exists()


@pytest.mark.parametrize("size", ["8MiB", "1MiB", "4KiB"])
def test_pv_too_small(env, size):
    vg = base_vg(env)
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", size)])
    expect_create_error(env, vg, text, "pv1")


def test_existing_file_too_small_without_size(env):
    vg = base_vg(env)
    vg.dir.mkdir(parents=True, exist_ok=True)
    with open(vg.dir / "pv1.img", "wb") as f:
        f.truncate(2 * MiB)
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", None)])
    expect_create_error(env, vg, text, "pv1")


def test_existing_file_smaller_than_given_size(env):
    """docs/config.md: an existing file/device smaller than the given size is an error."""
    vg = base_vg(env)
    vg.dir.mkdir(parents=True, exist_ok=True)
    with open(vg.dir / "pv1.img", "wb") as f:
        f.truncate(32 * MiB)
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")])
    expect_create_error(env, vg, text, "pv1")


# --------------------------------------------------------------------------
# create over existing data
# --------------------------------------------------------------------------

def test_create_over_existing_vgfs_pv_needs_force(env):
    vg = base_vg(env)
    vg.create()
    text = vg.config.read_text()
    expect_create_error(env, vg, text, "pv0")
    before = vg.pv_hashes()
    r = vg.create(force=True)
    assert r.returncode == 0
    after = vg.pv_hashes()
    assert after["pv0"] != before["pv0"], "--force create must write a new label"


def test_create_over_foreign_data_is_refused(env):
    vg = base_vg(env)
    vg.dir.mkdir(parents=True, exist_ok=True)
    foreign = vg.dir / "pv0.img"
    with open(foreign, "wb") as f:
        f.truncate(64 * MiB)
    env.run(["mkfs.ext4", "-q", "-F", foreign], check=True)
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", None), PvSpec("pv1", "pv1.img", "64MiB")])
    # pv1 does not exist: it must not exist after the failure either.
    expect_create_error(env, vg, text, "pv0")
    assert not (vg.dir / "pv1.img").exists()


def test_create_over_foreign_data_late_in_list_creates_nothing(env):
    """A failure on the last PV leaves no trace on the earlier ones."""
    vg = base_vg(env)
    vg.dir.mkdir(parents=True, exist_ok=True)
    with open(vg.dir / "pv1.img", "wb") as f:
        f.truncate(64 * MiB)
        f.seek(0)
        f.write(os.urandom(64 * 1024))
    text = good_text(vg, pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", None)])
    expect_create_error(env, vg, text, "pv1")
    assert not (vg.dir / "pv0.img").exists()


def test_create_force_over_foreign_data_works(env):
    vg = base_vg(env)
    vg.dir.mkdir(parents=True, exist_ok=True)
    with open(vg.dir / "pv0.img", "wb") as f:
        f.write(os.urandom(1 * MiB))
        f.truncate(64 * MiB)
    vg.pvs = [PvSpec("pv0", "pv0.img", None), PvSpec("pv1", "pv1.img", "64MiB")]
    vg.lvs = [LvSpec("lv0", size="8MiB")]
    vg.create(force=True)
    m = vg.mount()
    assert os.stat(m.lv("lv0")).st_size == 8 * MiB


# --------------------------------------------------------------------------
# Mount-time errors
# --------------------------------------------------------------------------

def created_vg(env, name="vg0", subdir=None):
    vg = env.make_vg(name=name, subdir=subdir,
                     pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lv0", extents=[("0-9", "pv0", "3-12"), ("10-19", "pv1", "0-9")])])
    vg.create()
    return vg


def expect_mount_error(env, vg_dir, config, *needles, dirs=()):
    snaps = {d: snapshot(d) for d in (vg_dir, *dirs)}
    m = env.mount(config, expect_ok=False)
    line = assert_one_line_error(m.result, *needles)
    assert not is_mounted(m.mp), "mount failed but the mountpoint is mounted"
    for d, before in snaps.items():
        assert snapshot(d) == before, f"failed mount changed files under {d}"
    return line


def test_mount_with_missing_pv_file(env):
    vg = created_vg(env)
    os.unlink(vg.pv_path("pv1"))
    expect_mount_error(env, vg.dir, vg.config, "pv1")
    assert not vg.pv_path("pv1").exists()


def test_mount_with_pv_in_missing_directory(env):
    vg = created_vg(env)
    text = vg.config.read_text().replace('"pv1.img"', '"gone/pv1.img"')
    cfg = vg.dir / "moved.yaml"
    cfg.write_text(text)
    expect_mount_error(env, vg.dir, cfg, "pv1")
    assert not (vg.dir / "gone").exists()


def test_mount_of_a_non_vgfs_file(env):
    vg = created_vg(env)
    p = vg.pv_path("pv1")
    size = p.stat().st_size
    with open(p, "wb") as f:
        f.write(os.urandom(2 * MiB))
        f.truncate(size)
    expect_mount_error(env, vg.dir, vg.config, "pv1")


def test_mount_of_pvs_from_two_vgs(env):
    a = created_vg(env, name="vga", subdir="a")
    b = created_vg(env, name="vgb", subdir="b")
    mix = a.dir / "mix.yaml"
    mix.write_text(render_config("vga", [PvSpec("pv0", "pv0.img", None),
                                         PvSpec("pv1", str(b.pv_path("pv1")), None)], [], None))
    expect_mount_error(env, a.dir, mix, "pv1", dirs=(b.dir,))
    r = env.vgfs("check", mix)
    assert r.returncode != 0, f"check of a config mixing two VGs passed: {r.stdout}{r.stderr}"


def test_label_corrupted_on_every_copy(env):
    vg = created_vg(env)
    for off in LABEL_OFFSETS:
        damage(vg.pv_path("pv1"), off, os.urandom(LABEL_SIZE))
    expect_mount_error(env, vg.dir, vg.config, "pv1")
    before = snapshot(vg.dir)
    r = env.vgfs("check", vg.config)
    assert r.returncode != 0
    assert "pv1" in (r.stdout + r.stderr)
    assert snapshot(vg.dir) == before, "check must not change the PVs"


def test_pv_locked_by_another_mount(env):
    vg = created_vg(env)
    m = vg.mount()
    other = vg.dir / "other.yaml"
    shutil.copy(vg.config, other)
    m2 = env.mount(other, expect_ok=False)
    assert_one_line_error(m2.result, "locked")
    assert not is_mounted(m2.mp)
    # create --force over PVs that are mounted is refused too, and changes nothing.
    before = vg.pv_hashes()
    r = env.vgfs("create", "--force", other)
    assert_one_line_error(r, "locked")
    assert vg.pv_hashes() == before
    m.unmount()
    # Free again once unmounted.
    env.mount(other).unmount()


def test_pv_locked_by_another_program(env):
    vg = created_vg(env)
    fd = os.open(vg.pv_path("pv0"), os.O_RDWR)
    try:
        # An OFD write lock on the whole file, as another tool would take.
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
        expect_mount_error(env, vg.dir, vg.config, "locked")
        r = env.vgfs("create", "--force", vg.config)
        assert_one_line_error(r, "locked")
    finally:
        os.close(fd)
    env.mount(vg.config).unmount()


def test_mounted_vg_holds_ofd_lock_on_every_pv(env):
    vg = created_vg(env)
    m = vg.mount()
    for p in vg.pv_paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            lk = struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0)
            res = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, lk)
            l_type = struct.unpack("hhqqi4x", res)[0]
            assert l_type != fcntl.F_UNLCK, f"no OFD lock held on {p} while mounted"
        finally:
            os.close(fd)
    m.unmount()


# --------------------------------------------------------------------------
# Metadata damage
# --------------------------------------------------------------------------

def damage_metadata(path):
    for slot in SLOT_OFFSETS:
        damage(path, slot + SLOT_HEADER_SIZE + 8, b"\xff" * 64)


def write_marker(env, vg, data: bytes):
    m = vg.mount()
    with open(m.lv("lv0"), "r+b") as f:
        f.seek(9 * MiB + 100)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    m.unmount()


def test_one_metadata_copy_damaged_warns_and_repairs(env):
    vg = created_vg(env)
    marker = os.urandom(3 * MiB)
    write_marker(env, vg, marker)
    damage_metadata(vg.pv_path("pv0"))

    before = snapshot(vg.dir)
    r = env.vgfs("check", vg.config)
    assert r.returncode != 0, f"check must report the damaged copy: {r.stdout}{r.stderr}"
    out = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert any("pv0" in l for l in out), f"check output does not name pv0: {out}"
    assert not any("pv1" in l for l in out), f"check blames pv1, which is fine: {out}"
    assert snapshot(vg.dir) == before, "a failing check changed the PVs"

    m = env.mount(vg.config)
    assert "pv0" in m.stderr(), f"mount must warn about pv0's damaged metadata; stderr={m.stderr()!r}"
    with open(m.lv("lv0"), "rb") as f:
        f.seek(9 * MiB + 100)
        assert f.read(len(marker)) == marker, "LV data changed by the metadata repair"
    m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"check after the repairing mount: {r.stdout}{r.stderr}"
    with open(vg.pv_path("pv0"), "rb") as f:
        texts = []
        for slot in SLOT_OFFSETS:
            f.seek(slot + SLOT_HEADER_SIZE + 8)
            texts.append(f.read(64))
    assert any(t != b"\xff" * 64 for t in texts), "pv0's metadata was not rewritten"
    # Mounting again is silent now.
    m2 = env.mount(vg.config)
    assert "pv0" not in m2.stderr(), f"warning again after repair: {m2.stderr()!r}"
    m2.unmount()


def test_one_label_copy_damaged_warns_and_repairs(env):
    vg = created_vg(env)
    damage(vg.pv_path("pv1"), LABEL_OFFSETS[0], os.urandom(512))
    r = env.vgfs("check", vg.config)
    assert r.returncode != 0, "check must report a damaged label copy"
    assert "pv1" in (r.stdout + r.stderr)
    m = env.mount(vg.config)
    assert "pv1" in m.stderr(), f"mount must warn about pv1's label; stderr={m.stderr()!r}"
    m.unmount()
    r = env.vgfs("check", vg.config)
    assert r.returncode == 0, f"check after repair: {r.stdout}{r.stderr}"


def test_every_metadata_copy_damaged_is_refused(env):
    vg = created_vg(env)
    for p in vg.pv_paths:
        damage_metadata(p)
    expect_mount_error(env, vg.dir, vg.config, "no valid metadata")
    before = snapshot(vg.dir)
    r = env.vgfs("check", vg.config)
    assert r.returncode == 1, f"check rc={r.returncode}: {r.stdout}{r.stderr}"
    assert "no valid metadata" in (r.stdout + r.stderr).lower()
    assert snapshot(vg.dir) == before
    r = env.vgfs("lvs", vg.config)
    assert_one_line_error(r, "no valid metadata")


# --------------------------------------------------------------------------
# Command line usage
# --------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["mount", "CONFIG"],            # MOUNTPOINT missing
    ["frobnicate"],                 # unknown subcommand
    ["lvs", "--frob", "CONFIG"],    # unknown option
    ["create"],                     # CONFIG missing
    ["create", "CONFIG", "extra"],  # too many arguments
], ids=["mount-no-mountpoint", "unknown-subcommand", "unknown-option", "create-no-config",
        "create-extra-arg"])
def test_command_line_usage_errors_are_one_line(env, argv):
    vg = created_vg(env)
    before = snapshot(vg.dir)
    r = env.vgfs(*[str(vg.config) if a == "CONFIG" else a for a in argv])
    assert_one_line_error(r)
    assert snapshot(vg.dir) == before


def test_mount_on_missing_mountpoint(env):
    vg = created_vg(env)
    before = snapshot(vg.dir)
    r = env.vgfs("mount", vg.config, env.tmp / "no" / "such" / "mp")
    assert_one_line_error(r, "mp")
    assert snapshot(vg.dir) == before
    assert not (env.tmp / "no").exists()


def test_read_only_mount_reports_but_does_not_repair(env):
    vg = created_vg(env)
    damage_metadata(vg.pv_path("pv0"))
    before = snapshot(vg.dir)
    m = env.mount(vg.config, opts="ro")
    assert "pv0" in m.stderr(), f"ro mount must still warn about pv0: {m.stderr()!r}"
    assert os.stat(m.lv("lv0")).st_size == 20 * MiB
    m.unmount()
    assert snapshot(vg.dir) == before, "a read-only mount repaired (wrote) the PVs"
    assert env.vgfs("check", vg.config).returncode == 1


def test_smallest_extent_size_works_with_default_region_size(env):
    """extent_size 64KiB is legal (docs/records.md) and region_size is optional: the
    default region size must fit the extent size instead of failing."""
    vg = env.make_vg(name="vg64k",
                     pvs=[PvSpec("pv0", "pv0.img", "32MiB")],
                     lvs=[LvSpec("lv0", size="1MiB")], extent_size="64KiB")
    vg.create()
    m = vg.mount()
    assert os.stat(m.lv("lv0")).st_size == MiB
    rs = m.vg_json()["region_size"]
    assert rs <= 64 * 1024 and 64 * 1024 % rs == 0
