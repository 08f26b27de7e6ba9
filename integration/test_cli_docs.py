"""The pages and scripts a newcomer meets first stay true to the program
(issue 9; README.md's walk-through itself runs in test_readme.py):

- every relative link of README.md and docs/*.md reaches a file, and its
  #anchor a heading of that file (docs/benchmarks.md once pointed to a
  "Known problem" section that did not exist);
- every `vgfs VERB ...` the pages show names a real command, and every
  option it uses is one that command takes;
- every VG config the pages show in YAML (README.md, docs/config.md,
  config/demo.yaml) is one `vgfs create` takes; docs/format.md's metadata
  example has each key where the format has it (it once put `extents:`
  under `jobs:`); config/demo.yaml's comment names the folder its PVs are in;
- .gitignore covers what runs leave behind; scripts/test keeps pytest's
  temporary folders in its own folder and removes them; bench/run works in a
  folder of its own per run; scripts/build and scripts/demo say what they do.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from vgfstest import REPO, VGFS_BIN

PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, blanks to '-'."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+\s+(.*)$", text, flags=re.M)} | set(re.findall(r'<a id="([^"]+)">', text))


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target}: no heading #{anchor} in {dest.name}")
    assert not broken, "\n".join(broken)


def shown_commands():
    """(page, command words) for every `vgfs VERB ...` a page shows, in code
    blocks and inline code; alternatives and placeholders are cut at `|`,
    `[` and `...`."""
    out = []
    for page in PAGES + [REPO / "docs" / "vgfs.8"]:
        text = page.read_text()
        pieces = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, flags=re.S) + re.findall(r"`(vgfs [^`]+)`", text)
        pieces += re.findall(r"^    (vgfs .*)$", text, flags=re.M)  # indented blocks
        for piece in pieces:
            for line in piece.splitlines():
                for cmd in re.split(r"\s{3,}", line.split("#")[0]):
                    words = cmd.strip().split()
                    if len(words) >= 2 and words[0] == "vgfs" and re.fullmatch(r"[a-z]+", words[1]):
                        out.append((page.name, words))
    return out


# Words after "vgfs" in the pages that name no command: benchmarks.md's rows
# ("vgfs contiguous", "vgfs fragmented"), lvm2.md's scan verdict ("vgfs can serve it").
PROSE = {"contiguous", "fragmented", "can"}


def test_commands_the_pages_show_exist_with_their_options():
    helps: dict[str, str] = {}
    bad = []
    commands = shown_commands()
    assert len(commands) > 40, commands
    for page, words in commands:
        verb = words[1]
        if verb in PROSE or verb == "help":  # `vgfs help [COMMAND]` is the usage itself
            continue
        if verb not in helps:
            r = subprocess.run([str(VGFS_BIN), verb, "--help"], capture_output=True, text=True, timeout=30)
            helps[verb] = r.stdout if r.returncode == 0 else ""
        if not helps[verb]:
            bad.append(f"{page}: {' '.join(words)}: no command {verb}")
            continue
        for w in words[2:]:
            if w.startswith("-") and len(w) > 1 and not re.fullmatch(r"-\d.*", w):
                opt = re.split(r"[=\s]", w.rstrip(",.;:)"))[0]
                if opt not in ("-h", "--help") and not re.search(rf"(^|[\s,]){re.escape(opt)}([\s,=]|$)", helps[verb],
                                                                   flags=re.M):
                    bad.append(f"{page}: {' '.join(words)}: {verb} has no option {opt}")
    assert not bad, "\n".join(sorted(set(bad)))


def vg_configs():
    """(where, yaml text) of every VG config a page shows."""
    out = []
    for page in [REPO / "README.md", REPO / "docs" / "config.md"]:
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.S):
            if re.search(r"^vg:", block, flags=re.M) and re.search(r"^pvs:", block, flags=re.M) and \
                    "uuid" not in block:
                out.append((page.name, block))
    out.append(("config/demo.yaml", (REPO / "config" / "demo.yaml").read_text()))
    return out


@pytest.mark.parametrize("where,text", vg_configs(), ids=lambda v: v if "\n" not in str(v) else "")
def test_vg_configs_the_pages_show_create(env, tmp_path, where, text):
    work = tmp_path / "conf"
    work.mkdir()
    config = yaml.safe_load(text)
    for pv in config["pvs"]:  # their folders exist, as a reader makes them
        (work / Path(pv["path"]).parent).mkdir(parents=True, exist_ok=True)
    (work / "vg.yaml").write_text(text)
    r = env.vgfs("create", str(work / "vg.yaml"))
    assert r.returncode == 0, f"{where}: {r.stderr}"


def test_format_md_metadata_example_has_every_key_in_its_place():
    text = (REPO / "docs" / "format.md").read_text()
    examples = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "seqno" in b]
    assert examples
    for block in examples:
        md = yaml.safe_load(block.replace("…", "x"))
        assert set(md) <= {"vg", "pvs", "lvs", "jobs"}, md.keys()
        for lv in md["lvs"]:
            assert {"name", "uuid", "extents"} <= set(lv), lv
            assert set(lv) <= {"name", "uuid", "mode", "uid", "gid", "hidden", "extents", "run_kept", "kept"}, lv
        for job in md.get("jobs") or []:
            assert "extents" not in job, job
            assert {"id", "lv", "le", "source", "destination", "state"} <= set(job), job


def test_demo_config_comment_names_the_folder_its_pvs_are_in():
    path = REPO / "config" / "demo.yaml"
    text = path.read_text()
    folders = {(path.parent / pv["path"]).resolve().parent for pv in yaml.safe_load(text)["pvs"]}
    assert folders == {REPO / "demo-pvs"}, folders
    assert "demo-pvs/ at the top of the repository" in re.sub(r"\n#\s*", " ", text)
    assert "demo-pvs" in (REPO / "scripts" / "demo").read_text()
    assert "/demo-pvs/" in (REPO / ".gitignore").read_text().split()


def test_gitignore_covers_what_runs_leave():
    ignored = set((REPO / ".gitignore").read_text().split())
    for entry in ("/build/", "/demo-pvs/", "/demo-mnt/", "/config/archive/", "/bench/results/smoke.*", "__pycache__/"):
        assert entry in ignored, entry
    r = subprocess.run(["git", "-C", str(REPO), "check-ignore", "config/archive/demo_00000001.yaml",
                        "bench/results/smoke.json", "bench/results/smoke.png"], capture_output=True, text=True)
    assert len(r.stdout.split()) == 3, r.stdout + r.stderr


def test_scripts_test_keeps_pytest_temp_in_its_own_folder_and_removes_it():
    text = (REPO / "scripts" / "test").read_text()
    assert re.search(r'tmp=\$\(mktemp -d /tmp/vgfs-test-XXXXXX\)', text)
    assert '--basetemp="$tmp/pytest"' in text
    assert "trap remove_tmp EXIT" in text and 'rm -rf "$tmp"' in text
    # Never across a mount left behind in it.
    assert "/proc/self/mountinfo" in text


def test_bench_run_works_in_a_folder_of_its_own_per_run():
    import sys
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import common
    finally:
        sys.path.pop(0)
    import os
    assert common.WORK == f"{common.WORK_PREFIX}{os.getpid()}"
    assert "remove_work(WORK)" in (REPO / "bench" / "run").read_text()


def test_scripts_say_what_they_do():
    if not (REPO / "build" / "build.ninja").exists():
        pytest.skip("scripts/build would make a first build here")
    r = subprocess.run([str(REPO / "scripts" / "build")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("build: meson + ninja into build/"), r.stderr
    demo = (REPO / "scripts" / "demo").read_text()
    assert 'echo "demo: building vgfs' in demo and 'echo "demo: creating the demo VG' in demo
    test = (REPO / "scripts" / "test").read_text()
    for phase in ("== build", "== unit tests", "== fuzz", "== integration tests"):
        assert phase in test, phase
