"""Fixtures of the vgfs integration suite (real FUSE mounts).

The helpers the tests use (the ctl client, job waiter, status parsers, mount
bookkeeping, Env/VG/Mount) live in the vgfstest package (pylib/vgfstest/),
shared with bench/; tests import them from there. This file holds only the
pytest side: the per-test `env` fixture (an Env torn down in a safe order even
when the test fails, see vgfstest/env.py), its watchdog, the session checks and
the power-cut rig.

A watchdog kills the daemons of a test that runs far past its budget, so a
hung FUSE request turns into a failure (ENOTCONN) instead of a hung suite.

Run with:  /usr/bin/python3 -m pytest integration
Binary:    $VGFS_BIN, else <repo>/build/vgfs
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))

from vgfstest import Env, loop_devices_for, mountinfo_points  # noqa: E402
from vgfstest.paths import REPO, VGFS_BIN  # noqa: E402
# Tests written before vgfstest existed import helpers from conftest; keep
# that working until every branch imports from vgfstest.
from vgfstest import *  # noqa: E402,F401,F403

# Seconds a single test may run before the watchdog kills its daemons.
TEST_BUDGET = int(os.environ.get("VGFS_TEST_BUDGET", "240"))


@pytest.fixture(scope="session")
def vgfs_bin() -> Path:
    if not VGFS_BIN.exists():
        pytest.fail(f"vgfs binary not found at {VGFS_BIN} (build it or set VGFS_BIN)")
    return VGFS_BIN


@pytest.fixture(scope="session", autouse=True)
def _preconditions():
    if os.geteuid() != 0:
        pytest.skip("the integration suite needs root (FUSE mounts, loop devices, mount)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse missing")
    yield


@pytest.fixture
def env(request, tmp_path, vgfs_bin):
    e = Env(tmp_path, request.node.nodeid, TEST_BUDGET)
    timer = threading.Timer(TEST_BUDGET, e.watchdog_fire)
    timer.daemon = True
    timer.start()
    try:
        yield e
    finally:
        timer.cancel()
        e.cleanup()
    if e.killed_by_watchdog:
        pytest.fail(f"watchdog killed the daemons after {TEST_BUDGET}s (hung FUSE request?)")
    if e.problems:
        pytest.fail("teardown problems:\n" + "\n".join(e.problems))


def pytest_sessionfinish(session, exitstatus):
    # Last line of defence: report (and remove) anything left under this
    # session's own temporary base directory (not other sessions').
    try:
        base = str(session.config._tmp_path_factory.getbasetemp()) + "/"
    except Exception:
        return
    leaks = [pt for pt in mountinfo_points() if pt.startswith(base)]
    loops = loop_devices_for(base)
    for dev in loops:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    for pt in sorted(leaks, reverse=True):
        subprocess.run(["umount", "-l", pt], capture_output=True)
    if leaks or loops:
        sys.stderr.write(f"\nvgfs integration: cleaned leaked mounts {leaks} loops {loops}\n")


# --------------------------------------------------------------------------
# The power-cut rig (integration/powercut/, docs/powercut.md)
# --------------------------------------------------------------------------

@pytest.fixture
def power_rig(tmp_path_factory):
    """Factory: power_rig(["pv0", "pv1"]) -> powercut.rig.PowerRig, PVs that
    lose power together. Request it BEFORE `env`, so its teardown (nbdfuse
    unmounts) runs after the vgfs mounts on it are gone. Lives outside the
    test's tmp_path, like nbd_dest in test_migration_faults.py."""
    import shutil as _shutil
    from powercut.rig import PowerRig, find_plugin
    missing = [t for t in ("nbdkit", "nbdfuse") if _shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages nbdkit, libnbd-bin)")
    plugin = find_plugin(VGFS_BIN, REPO)
    if plugin is None:
        pytest.fail("powercut.so not built: install nbdkit-plugin-dev (scripts/bootstrap) and rebuild")
    rigs: list = []

    def make(pvs, name="rig"):
        rig = PowerRig(tmp_path_factory.mktemp(name), pvs, plugin)
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            rig.stop()


@pytest.fixture
def lvm():
    """A private LVM2 world (vgfstest/lvm2.py) for the test_lvm2_* files: its
    loops detached by name and its folder removed, even when the test fails."""
    import shutil
    from vgfstest.lvm2 import Lvm
    world = Lvm()
    try:
        yield world
    finally:
        world.detach_all()
        shutil.rmtree(world.dir, ignore_errors=True)
