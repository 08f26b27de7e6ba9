"""fio with data verification on an LV file whose extents are scattered over
two PVs."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from vgfstest import MiB, LvSpec, PvSpec

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")

LV_SIZE = 64 * MiB


def fio_engines() -> str:
    r = subprocess.run(["fio", "--enghelp"], capture_output=True, text=True)
    return r.stdout


def make_vg(env):
    vg = env.make_vg(
        name="vgfio",
        pvs=[PvSpec("pv0", "pv0.img", "128MiB"), PvSpec("pv1", "pv1.img", "128MiB")],
        lvs=[LvSpec("lvf", extents=[("0-20", "pv0", "40-60"),
                                    ("21-44", "pv1", "3-26"),
                                    ("45-50", "pv0", "2-7"),
                                    ("51-63", "pv1", "60-72")])],
        extent_size="1MiB",
    )
    vg.create()
    return vg


def run_fio(env, lvfile, *opts, timeout=240):
    argv = ["fio", "--name=v", f"--filename={lvfile}", "--direct=1", "--output-format=json",
            "--verify_fatal=1", "--exitall_on_error=1", "--verify_state_save=0", *opts]
    # cwd: fio drops state files into its working directory.
    r = env.run(argv, timeout=timeout, cwd=env.tmp)
    detail = f"{' '.join(argv)}\nrc={r.returncode}\nstderr={r.stderr[-3000:]}\nstdout={r.stdout[-3000:]}"
    assert r.returncode == 0, f"fio failed\n{detail}"
    text = r.stdout
    start = text.find("{")
    assert start >= 0, f"no JSON from fio\n{detail}"
    out = json.loads(text[start:])
    for job in out["jobs"]:
        assert job["error"] == 0, f"fio job {job['jobname']} error {job['error']}\n{detail}"
    low = (r.stderr + text[:start]).lower()
    for bad in ("verify failed", "bad magic", "crc32c: verify", "mismatch", "bad header"):
        assert bad not in low, f"fio reported {bad!r}\n{detail}"
    return out


CASES = {
    "psync-randrw-4k-64k": ["--ioengine=psync", "--rw=randrw", "--bs=4k,64k",
                            "--verify=crc32c", "--size=48M", "--offset=3M"],
    "psync-randwrite-bsrange": ["--ioengine=psync", "--rw=randwrite", "--bsrange=4k-1m",
                                "--verify=crc32c", "--size=64M"],
    "psync-seq-1m-unaligned-start": ["--ioengine=psync", "--rw=write", "--bs=1m",
                                     "--offset=20992k", "--size=40M", "--verify=sha256"],
    "psync-4jobs-disjoint": ["--ioengine=psync", "--rw=randwrite", "--bs=16k",
                             "--numjobs=4", "--size=16M", "--offset_increment=16M",
                             "--verify=crc32c"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fio_verify(env, case):
    vg = make_vg(env)
    m = vg.mount()
    run_fio(env, m.lv("lvf"), *CASES[case])


def test_fio_libaio_queue_depth(env):
    if "libaio" not in fio_engines():
        pytest.skip("fio built without libaio")
    vg = make_vg(env)
    m = vg.mount()
    run_fio(env, m.lv("lvf"), "--ioengine=libaio", "--iodepth=16", "--rw=randrw",
            "--bs=4k,64k", "--verify=crc32c", "--size=64M")
    run_fio(env, m.lv("lvf"), "--ioengine=libaio", "--iodepth=32", "--rw=randwrite",
            "--bsrange=4k-256k", "--verify=crc32c", "--numjobs=2",
            "--offset_increment=32M", "--size=32M")


def test_fio_data_survives_remount(env):
    """Write with fio, unmount, remount, and let fio verify only."""
    vg = make_vg(env)
    m = vg.mount()
    common = ["--ioengine=psync", "--rw=randwrite", "--bs=8k", "--size=64M",
              "--verify=crc32c", "--randseed=1234", "--norandommap=0"]
    run_fio(env, m.lv("lvf"), *common, "--do_verify=0")
    m.unmount()
    m2 = vg.mount()
    run_fio(env, m2.lv("lvf"), *common, "--verify_only=1")


def test_fio_two_lvs_concurrently(env):
    """Two fio processes on two LVs whose extents interleave on the same PVs."""
    vg = env.make_vg(
        name="vgfio2",
        pvs=[PvSpec("pv0", "pv0.img", "128MiB"), PvSpec("pv1", "pv1.img", "128MiB")],
        lvs=[LvSpec("lva", extents=[("0-9", "pv0", "0-9"), ("10-19", "pv1", "10-19"),
                                    ("20-29", "pv0", "20-29")]),
             LvSpec("lvb", extents=[("0-9", "pv1", "0-9"), ("10-19", "pv0", "10-19"),
                                    ("20-29", "pv1", "20-29")])],
        extent_size="1MiB")
    vg.create()
    m = vg.mount()
    procs = []
    for lv, engine in (("lva", "psync"), ("lvb", "libaio" if "libaio" in fio_engines() else "psync")):
        argv = ["fio", f"--name={lv}", f"--filename={m.lv(lv)}", "--direct=1", f"--ioengine={engine}",
                "--iodepth=8", "--rw=randrw", "--bsrange=4k-512k", "--size=30M", "--verify=crc32c",
                "--verify_fatal=1", "--verify_state_save=0", "--numjobs=2", "--offset_increment=15M",
                "--size=15M", "--output-format=json"]
        procs.append((argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, cwd=env.tmp)))
    for argv, p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"{' '.join(argv)}\n{err[-2000:]}\n{out[-2000:]}"
        res = json.loads(out[out.find("{"):])
        assert all(j["error"] == 0 for j in res["jobs"]), out[-2000:]
