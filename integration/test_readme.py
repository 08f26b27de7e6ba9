"""README.md's walk-through, run as written (issue 9: the page can never
drift from the program again).

The test takes the YAML block and every ```sh block of the "## Walk-through"
section, in order, moves their absolute paths (/mnt/vg0, /mnt/data, /srv)
into the test's own folder, and runs them with bash -e in a folder of its own
with the vgfs under test first on PATH: a real FUSE mount, a loop device,
mkfs.ext4, a live move, lvextend + resize2fs, pvadd, pvmove and pvremove.
Teardown detaches the loop device and unmounts whatever the script left.
"""
import os
import re
import subprocess
from pathlib import Path

from vgfstest import REPO, VGFS_BIN, is_mounted, loop_devices_for


def has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        eff = next(int(l.split()[1], 16) for l in f if l.startswith("CapEff:"))
    return bool(eff & (1 << 24))


def walkthrough() -> tuple[str, list[str]]:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Walk-through\n")
    end = text.index("\n## ", start + 1)
    section = text[start:end]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    yaml_blocks = [body for lang, body in blocks if lang == "yaml"]
    sh_blocks = [body for lang, body in blocks if lang == "sh"]
    assert len(yaml_blocks) == 1 and sh_blocks, "README walk-through: one yaml block and sh blocks expected"
    return yaml_blocks[0], sh_blocks


def test_readme_walkthrough_runs_as_written(tmp_path):
    config, scripts = walkthrough()
    work = tmp_path / "walk"
    work.mkdir()
    (work / "vg.yaml").write_text(config)
    root = tmp_path / "root"  # stands for / in the page's absolute paths
    (root / "srv").mkdir(parents=True)
    script = "\n".join(scripts)
    for absolute in ("/mnt/vg0", "/mnt/data", "/srv/"):
        script = script.replace(absolute, f"{root}{absolute}")
    if not has_cap_sys_resource():
        # ext4's online resize ioctl needs CAP_SYS_RESOURCE, which this
        # machine's root lacks; the README gives the offline form for that case.
        line = "losetup -c $dev && resize2fs $dev"
        assert line in script
        script = script.replace(line, f"losetup -c $dev && umount {root}/mnt/data && e2fsck -fy $dev && "
                                      f"resize2fs $dev && mount $dev {root}/mnt/data")
        print("README walk-through: resize2fs offline (no CAP_SYS_RESOURCE here, as the README says)")
    env = dict(os.environ, PATH=f"{VGFS_BIN.parent}:{os.environ['PATH']}")
    lv_file = f"{root}/mnt/vg0/lv0"
    try:
        r = subprocess.run(["bash", "-euo", "pipefail", "-x", "-c", script], cwd=work, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"README walk-through failed (exit {r.returncode}):\n{r.stderr[-4000:]}"
        trace = r.stderr
        # The page's claims that can break: the move switched lv0 onto pv0 and
        # the pvmove emptied pv0, which pvremove then took out.
        assert "ok PV pv0 removed from VG vg0" in r.stdout, r.stdout
        assert "ok LV lv0 extended to 768 extents (3GiB)" in r.stdout, r.stdout
        assert "+ fusermount3 -u" in trace
        assert not is_mounted(root / "mnt/vg0")
    finally:
        for dev in loop_devices_for(lv_file):
            subprocess.run(["umount", str(root / "mnt/data")], capture_output=True)
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        if is_mounted(root / "mnt/data"):
            subprocess.run(["umount", "-l", str(root / "mnt/data")], capture_output=True)
        if is_mounted(root / "mnt/vg0"):
            if subprocess.run(["fusermount3", "-u", str(root / "mnt/vg0")], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(root / "mnt/vg0")], capture_output=True)
