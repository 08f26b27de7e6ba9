"""The daemon's log has every repair (issue 9, "The daemon"): a metadata
copy damaged on a PV is repaired at mount and the daemonized mount says so in
syslog, as well as on the terminal that mounted it. test_logging.py covers
jobs, -f and -o debug; this listens on the socket VGFS_SYSLOG_SOCKET names."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from vgfstest import LvSpec, PvSpec, damage
from vgfstest.pv_format import SLOT_HEADER_SIZE, SLOT_OFFSETS


def test_a_repair_at_mount_is_in_syslog(env, monkeypatch):
    vg = env.make_vg(name="vgrep", pvs=[PvSpec("pv0", "pv0.img", "64MiB"), PvSpec("pv1", "pv1.img", "64MiB")],
                     lvs=[LvSpec("lv0", size="8MiB")])
    vg.create()
    for slot in SLOT_OFFSETS:  # both copies on pv0; pv1 has the metadata whole
        damage(vg.pv_path("pv0"), slot + SLOT_HEADER_SIZE + 8, b"\xff" * 64)
    path = Path(f"/tmp/cli9-syslog-{os.getpid()}.sock")
    if path.exists():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    monkeypatch.setenv("VGFS_SYSLOG_SOCKET", str(path))
    got = []
    try:
        m = vg.mount()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("mounted VG vgrep" in g for g in got):
            try:
                got.append(sock.recv(65536).decode())
            except socket.timeout:
                pass
        m.unmount()
    finally:
        sock.close()
        path.unlink()
    lines = "\n".join(got)
    # <28> = LOG_DAEMON (3<<3) | LOG_WARNING (4): the repair, naming the PV.
    warnings = [g for g in got if g.startswith("<28>vgfs[") and "pv0" in g]
    assert warnings, lines
    assert "pv0" in m.stderr(), m.stderr()  # the terminal that mounted saw it too
    assert env.vgfs("check", str(vg.config)).returncode == 0  # and it was repaired
