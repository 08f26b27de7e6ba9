// Unit tests of load_config (include/vgfs/config.h): the docs/config.md YAML, its
// defaults, path resolution, and errors that point at file:line:col.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/config.h"
#include "vgfs/owner_id.h"
#include "vgfs/metadata.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

const char* kSpecExample = R"(vg:
  name: vg0
  extent_size: 4MiB        # optional, default 4MiB
  region_size: 256KiB      # optional: migration bitmap granularity
pvs:
  - {name: pv0, path: pvs/pv0.img, size: 4GiB}   # created sparse if missing
  - {name: pv1, path: pvs/pv1.img, size: 4GiB}
lvs:
  - {name: lv0, size: 2GiB, mode: "0640"}       # placed by the allocator
  - name: lv_other
    extents:                                     # explicit LE→PE runs
      - {le: 0-499, pv: pv0, pe: 500-999}
      - {le: 500-502, pv: pv1, pe: 100-102}
)";

// 1-based number of the first line of `text` containing `marker`.
int line_of(const std::string& text, const std::string& marker) {
  size_t at = text.find(marker);
  REQUIRE_MESSAGE(at != std::string::npos, marker);
  int line = 1;
  for (size_t i = 0; i < at; ++i)
    if (text[i] == '\n') ++line;
  return line;
}

struct Written {
  std::string path;
  std::string text;
};

Written write_config(const TempDir& dir, const std::string& text, const std::string& name = "vg.yaml") {
  std::string path = dir / name;
  vgfs_test::write_file(path, text);
  return {path, text};
}

// Loads `text` and expects failure whose message names the file, the line of
// the first line containing `marker` (when given) and each of `words`.
std::string expect_error(const std::string& text, const std::string& marker,
                         const std::vector<std::string>& words = {}) {
  TempDir dir;
  Written w = write_config(dir, text);
  Result<VgConfig> r = load_config(w.path);
  CAPTURE(text);
  REQUIRE_FALSE(r.ok());
  const std::string& msg = r.status().message();
  CAPTURE(msg);
  CHECK(r.status().code() != 0);
  CHECK(msg.find(w.path) != std::string::npos);
  if (!marker.empty()) {
    std::string where = w.path + ":" + std::to_string(line_of(text, marker)) + ":";
    CHECK_MESSAGE(msg.find(where) != std::string::npos, "expected location " << where);
  }
  for (const std::string& word : words) CHECK_MESSAGE(msg.find(word) != std::string::npos, word);
  return msg;
}

const char* kHead = R"(vg:
  name: vg0
pvs:
  - {name: pv0, path: pv0.img, size: 64MiB}
  - {name: pv1, path: pv1.img, size: 64MiB}
)";

}  // namespace

TEST_CASE("ConfigPlace::str is FILE:LINE:COL") {
  ConfigPlace p{"/etc/vgfs/vg.yaml", 12, 5};
  CHECK(p.str() == "/etc/vgfs/vg.yaml:12:5");
}

TEST_CASE("the docs/config.md example parses") {
  TempDir dir;
  Written w = write_config(dir, kSpecExample);
  Result<VgConfig> r = load_config(w.path);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const VgConfig& c = *r;
  CHECK(c.path == w.path);
  CHECK(c.name == "vg0");
  CHECK(c.extent_size == 4 * MiB);
  CHECK(c.region_size == 256 * KiB);

  REQUIRE(c.pvs.size() == 2);
  CHECK(c.pvs[0].name == "pv0");
  CHECK(c.pvs[0].path == (dir.path() / "pvs/pv0.img").lexically_normal().string());
  CHECK(std::filesystem::path(c.pvs[0].path).is_absolute());
  REQUIRE(c.pvs[0].size.has_value());
  CHECK(*c.pvs[0].size == 4 * GiB);
  CHECK(c.pvs[1].name == "pv1");
  CHECK(c.pvs[1].path == (dir.path() / "pvs/pv1.img").lexically_normal().string());
  CHECK(c.pvs[0].place.file == w.path);
  CHECK(c.pvs[0].place.line == line_of(w.text, "{name: pv0"));
  CHECK(c.pvs[1].place.line == line_of(w.text, "{name: pv1"));
  CHECK(c.pvs[1].place.column >= 1);

  REQUIRE(c.lvs.size() == 2);
  const LvConfig& lv0 = c.lvs[0];
  CHECK(lv0.name == "lv0");
  REQUIRE(lv0.size.has_value());
  CHECK(*lv0.size == 2 * GiB);
  CHECK(lv0.mode == 0640u);
  CHECK(lv0.extents.empty());
  CHECK(lv0.place.line == line_of(w.text, "{name: lv0"));

  const LvConfig& other = c.lvs[1];
  CHECK(other.name == "lv_other");
  CHECK_FALSE(other.size.has_value());
  CHECK(other.mode == 0600u);
  CHECK(other.place.line == line_of(w.text, "name: lv_other"));
  REQUIRE(other.extents.size() == 2);
  CHECK(other.extents[0].le == 0);
  CHECK(other.extents[0].count == 500);
  CHECK(other.extents[0].pv == "pv0");
  CHECK(other.extents[0].pe == 500);
  CHECK(other.extents[0].place.line == line_of(w.text, "{le: 0-499"));
  CHECK(other.extents[1].le == 500);
  CHECK(other.extents[1].count == 3);
  CHECK(other.extents[1].pv == "pv1");
  CHECK(other.extents[1].pe == 100);
  CHECK(other.extents[1].place.line == line_of(w.text, "{le: 500-502"));
  CHECK(other.extents[1].place.str() ==
        w.path + ":" + std::to_string(other.extents[1].place.line) + ":" +
            std::to_string(other.extents[1].place.column));
}

TEST_CASE("defaults, absolute paths, optional sizes, single-number runs") {
  TempDir dir;
  std::string abs = dir / "abs.img";
  std::string text = "vg:\n  name: vgd\npvs:\n  - {name: a, path: " + abs +
                     "}\n  - name: b\n    path: sub/dir/b.img\n    size: 1TiB\n"
                     "lvs:\n  - {name: x, size: 12MiB, mode: 0755}\n"
                     "  - name: y\n    extents:\n      - {le: 7, pv: b, pe: 9}\n      - {le: 0-6, pv: a, pe: 0-6}\n";
  Written w = write_config(dir, text);
  Result<VgConfig> r = load_config(w.path);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->name == "vgd");
  CHECK(r->extent_size == kDefaultExtentSize);
  CHECK(r->extent_size == 4 * MiB);
  CHECK(r->region_size == kDefaultRegionSize);
  CHECK(r->region_size == 256 * KiB);
  REQUIRE(r->pvs.size() == 2);
  CHECK(r->pvs[0].path == abs);
  CHECK_FALSE(r->pvs[0].size.has_value());
  CHECK(r->pvs[1].path == (dir.path() / "sub/dir/b.img").string());
  REQUIRE(r->pvs[1].size.has_value());
  CHECK(*r->pvs[1].size == TiB);
  CHECK(r->pvs[1].place.line == line_of(text, "name: b"));
  REQUIRE(r->lvs.size() == 2);
  CHECK(r->lvs[0].mode == 0755u);
  CHECK(*r->lvs[0].size == 12 * MiB);
  REQUIRE(r->lvs[1].extents.size() == 2);
  CHECK(r->lvs[1].extents[0].le == 7);
  CHECK(r->lvs[1].extents[0].count == 1);
  CHECK(r->lvs[1].extents[0].pv == "b");
  CHECK(r->lvs[1].extents[0].pe == 9);
  CHECK(r->lvs[1].extents[1].count == 7);
}

TEST_CASE("explicit extent and region sizes") {
  TempDir dir;
  std::string text = std::string("vg:\n  name: vg0\n  extent_size: 1MiB\n  region_size: 64KiB\n") +
                     "pvs:\n  - {name: pv0, path: pv0.img, size: 64MiB}\n";
  Result<VgConfig> r = load_config(write_config(dir, text).path);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->extent_size == MiB);
  CHECK(r->region_size == 64 * KiB);
  CHECK(r->lvs.empty());
}

TEST_CASE("missing config file") {
  TempDir dir;
  std::string path = dir / "nope.yaml";
  Result<VgConfig> r = load_config(path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find(path) != std::string::npos);
}

TEST_CASE("malformed YAML names the file and a line") {
  const char* texts[] = {
      "vg:\n  name: vg0\npvs:\n  - {name: pv0, path: a.img, size: 1GiB\nlvs: []\n",
      "vg:\n  name: vg0\n pvs: [\n",
      "vg: {name: vg0]\n",
      "vg:\n  name: vg0\n\tbad: tab\n",
  };
  for (const char* text : texts) {
    std::string msg = expect_error(text, "");
    CHECK(std::regex_search(msg, std::regex(":[0-9]+:")));
  }
}

TEST_CASE("unknown keys are errors that name the key and its line") {
  SUBCASE("top level") {
    expect_error(std::string(kHead) + "colour: blue\n", "colour: blue", {"colour"});
  }
  SUBCASE("vg level") {
    expect_error("vg:\n  name: vg0\n  colour: blue\npvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n",
                 "colour: blue", {"colour"});
  }
  SUBCASE("pv level") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n"
                 "  - {name: pv1, path: b.img, size: 64MiB, colour: red}\n",
                 "colour: red", {"colour"});
  }
  SUBCASE("lv level") {
    expect_error(std::string(kHead) + "lvs:\n  - {name: lv0, size: 8MiB}\n  - {name: lv1, size: 8MiB, sise: 1}\n",
                 "sise: 1", {"sise"});
  }
  SUBCASE("extent run level") {
    expect_error(std::string(kHead) +
                     "lvs:\n  - name: lv0\n    extents:\n      - {le: 0-1, pv: pv0, pe: 0-1, stripe: 2}\n",
                 "stripe: 2", {"stripe"});
  }
}

TEST_CASE("bad sizes") {
  SUBCASE("pv size") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {name: pv0, path: a.img, size: 4XB}\n", "size: 4XB");
  }
  SUBCASE("lv size") {
    expect_error(std::string(kHead) + "lvs:\n  - {name: lv0, size: 1.5GiB}\n", "size: 1.5GiB");
  }
  SUBCASE("extent size") {
    expect_error("vg:\n  name: vg0\n  extent_size: lots\npvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n",
                 "extent_size: lots");
  }
  SUBCASE("negative size") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {name: pv0, path: a.img, size: -1}\n", "size: -1");
  }
}

TEST_CASE("bad names") {
  SUBCASE("lv") {
    expect_error(std::string(kHead) + "lvs:\n  - {name: a/b, size: 8MiB}\n", "name: a/b");
  }
  SUBCASE("pv") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {name: -pv, path: a.img, size: 64MiB}\n", "name: -pv");
  }
  SUBCASE("vg") {
    expect_error("vg:\n  name: .vg\npvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n", "name: .vg");
  }
  SUBCASE("lv name too long") {
    std::string name(128, 'n');
    expect_error(std::string(kHead) + "lvs:\n  - {name: " + name + ", size: 8MiB}\n", name);
  }
}

TEST_CASE("missing required entries") {
  SUBCASE("vg name") {
    expect_error("vg:\n  extent_size: 4MiB\npvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n", "");
  }
  SUBCASE("vg section") {
    expect_error("pvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n", "");
  }
  SUBCASE("pv path") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {name: pv0, size: 64MiB}\n", "{name: pv0");
  }
  SUBCASE("pv name") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {path: a.img, size: 64MiB}\n", "{path: a.img");
  }
  SUBCASE("lv name") {
    expect_error(std::string(kHead) + "lvs:\n  - {size: 8MiB}\n", "{size: 8MiB}");
  }
  SUBCASE("empty file") {
    expect_error("", "");
  }
  SUBCASE("document is not a map") {
    expect_error("- vg\n- pvs\n", "");
  }
}

TEST_CASE("LV placement: exactly one of size and extents") {
  SUBCASE("both") {
    expect_error(std::string(kHead) +
                     "lvs:\n  - {name: lv0, size: 8MiB, extents: [{le: 0-1, pv: pv0, pe: 0-1}]}\n",
                 "{name: lv0");
  }
  SUBCASE("neither") {
    expect_error(std::string(kHead) + "lvs:\n  - {name: lv0, size: 8MiB}\n  - {name: lv1, mode: \"0600\"}\n",
                 "{name: lv1");
  }
}

TEST_CASE("bad explicit runs") {
  SUBCASE("reversed range") {
    expect_error(std::string(kHead) + "lvs:\n  - name: lv0\n    extents:\n      - {le: 5-3, pv: pv0, pe: 0-2}\n",
                 "{le: 5-3");
  }
  SUBCASE("LE and PE counts differ") {
    expect_error(std::string(kHead) + "lvs:\n  - name: lv0\n    extents:\n      - {le: 0-9, pv: pv0, pe: 0-4}\n",
                 "{le: 0-9");
  }
  SUBCASE("malformed PE range") {
    expect_error(std::string(kHead) + "lvs:\n  - name: lv0\n    extents:\n      - {le: 0-1, pv: pv0, pe: x-y}\n",
                 "{le: 0-1");
  }
}

TEST_CASE("bad modes") {
  for (const char* mode : {"\"0999\"", "rwx", "\"07777777\""}) {
    CAPTURE(mode);
    expect_error(std::string(kHead) + "lvs:\n  - {name: lv0, size: 8MiB, mode: " + mode + "}\n", "{name: lv0");
  }
}

TEST_CASE("duplicate names") {
  SUBCASE("PVs") {
    expect_error("vg:\n  name: vg0\npvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n"
                 "  - {name: pv0, path: b.img, size: 64MiB}\n",
                 "path: b.img", {"pv0"});
  }
  SUBCASE("LVs") {
    expect_error(std::string(kHead) + "lvs:\n  - {name: lv0, size: 8MiB}\n  - {name: lv0, size: 16MiB}\n",
                 "size: 16MiB", {"lv0"});
  }
}

TEST_CASE("extent and region sizes outside the rules") {
  auto vg = [](const std::string& lines) {
    return "vg:\n  name: vg0\n" + lines + "pvs:\n  - {name: pv0, path: a.img, size: 64MiB}\n";
  };
  SUBCASE("extent size not a power of two") {
    expect_error(vg("  extent_size: 3MiB\n"), "extent_size: 3MiB");
  }
  SUBCASE("extent size below 64KiB") {
    expect_error(vg("  extent_size: 32KiB\n  region_size: 4KiB\n"), "extent_size: 32KiB");
  }
  SUBCASE("extent size above 1GiB") {
    expect_error(vg("  extent_size: 2GiB\n"), "extent_size: 2GiB");
  }
  SUBCASE("region size larger than the extent size") {
    expect_error(vg("  extent_size: 4MiB\n  region_size: 8MiB\n"), "region_size: 8MiB");
  }
  SUBCASE("region size not a power of two") {
    expect_error(vg("  region_size: 96KiB\n"), "region_size: 96KiB");
  }
  SUBCASE("region size larger than the default extent size") {
    expect_error(vg("  region_size: 8MiB\n"), "region_size: 8MiB");
  }
}

TEST_CASE("relative PV paths with .. resolve against the config's folder") {
  TempDir dir;
  std::filesystem::create_directory(dir.path() / "conf");
  std::string text = "vg:\n  name: vg0\npvs:\n  - {name: pv0, path: ../images/pv0.img, size: 64MiB}\n"
                     "  - {name: pv1, path: ./pv1.img, size: 64MiB}\n";
  Written w = write_config(dir, text, "conf/vg.yaml");
  Result<VgConfig> r = load_config(w.path);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->pvs.size() == 2);
  std::filesystem::path p0(r->pvs[0].path);
  CHECK(p0.is_absolute());
  CHECK(p0.lexically_normal() == (dir.path() / "images/pv0.img").lexically_normal());
  std::filesystem::path p1(r->pvs[1].path);
  CHECK(p1.is_absolute());
  CHECK(p1.lexically_normal() == (dir.path() / "conf/pv1.img").lexically_normal());
}

TEST_CASE("LV uid and gid: numbers, carried into the created metadata") {
  TempDir dir;
  auto store = vgfs_test::create_and_open(dir, std::string(kHead) +
                                                   "lvs:\n  - {name: lv0, size: 8MiB, uid: 65534, gid: 100, mode: \"0660\"}\n"
                                                   "  - {name: lv1, size: 4MiB}\n");
  const VgMetadata& md = store->metadata();
  const LvInfo& lv0 = md.lvs[static_cast<size_t>(md.find_lv("lv0"))];
  CHECK(lv0.uid == std::optional<uint32_t>(65534));
  CHECK(lv0.gid == std::optional<uint32_t>(100));
  CHECK(lv0.mode == 0660u);
  const LvInfo& lv1 = md.lvs[static_cast<size_t>(md.find_lv("lv1"))];
  CHECK_FALSE(lv1.uid);
  CHECK_FALSE(lv1.gid);
}

TEST_CASE("LV uid and gid: names looked up on this host, as chown takes them") {
  TempDir dir;
  auto store = vgfs_test::create_and_open(dir, std::string(kHead) +
                                                   "lvs:\n  - {name: lv0, size: 8MiB, uid: root, gid: root}\n");
  const VgMetadata& md = store->metadata();
  CHECK(md.lvs[0].uid == std::optional<uint32_t>(0));
  CHECK(md.lvs[0].gid == std::optional<uint32_t>(0));
  CHECK(resolve_owner_id("0", OwnerKind::kUser).value() == 0u);
  CHECK(resolve_owner_id("root", OwnerKind::kGroup).value() == 0u);
  Result<uint32_t> unknown = resolve_owner_id("no-such-user-vgfs", OwnerKind::kUser);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().message() == "no user named \"no-such-user-vgfs\" on this host");
  CHECK_FALSE(resolve_owner_id("4294967295", OwnerKind::kGroup).ok());
}

TEST_CASE("bad LV uid and gid") {
  for (const char* owner : {"uid: no-such-user-vgfs", "gid: no-such-group-vgfs", "uid: -1", "gid: 4294967295", "gid: 1.5", "uid: 99999999999"}) {
    CAPTURE(owner);
    expect_error(std::string(kHead) + "lvs:\n  - {name: lv0, size: 8MiB, " + owner + "}\n", "{name: lv0");
  }
}

// ---- ConfigParts::kVgAndPvs: the LVs skipped for a mount (include/vgfs/config.h) ----

TEST_CASE("without_top_level_block blanks the lvs block and keeps every other line where it was") {
  const std::string text =
      "vg: {name: vg0}\n"
      "lvs:\n"
      "  - name: a\n"
      "\n"
      "# a comment at column 0\n"
      "- name: b   # a compact sequence entry at column 0\n"
      "-\n"
      "pvs:\n"
      "  - {name: pv0, path: p.img}\n"
      "lvsx: 1\n";
  std::optional<std::string> cut = without_top_level_block(text, "lvs");
  REQUIRE(cut);
  CHECK(cut->size() == text.size());
  CHECK(line_of(*cut, "pvs:") == line_of(text, "pvs:"));
  CHECK(cut->find("name: a") == std::string::npos);
  CHECK(cut->find("name: b") == std::string::npos);
  CHECK(cut->find("lvsx: 1") != std::string::npos);  // another key that starts alike stays
  CHECK(cut->find("vg: {name: vg0}") == 0);

  CHECK_FALSE(without_top_level_block("vg: {name: a}\n", "lvs"));
  CHECK_FALSE(without_top_level_block("  lvs:\n", "lvs"));         // not at the top level
  CHECK_FALSE(without_top_level_block("{lvs: [], vg: 1}\n", "lvs"));  // flow style: read whole
  CHECK(without_top_level_block("lvs : []\r\n", "lvs"));
  CHECK(without_top_level_block("lvs:", "lvs"));
  // The block ends at the next column-0 key, even a document marker.
  std::optional<std::string> ended = without_top_level_block("lvs:\n  - x\n---\nvg: 1\n", "lvs");
  REQUIRE(ended);
  CHECK(ended->find("---\nvg: 1\n") != std::string::npos);
}

TEST_CASE("kVgAndPvs gives the VG and PVs of a whole load and no LVs") {
  TempDir dir;
  Written w = write_config(dir, kSpecExample);
  Result<VgConfig> whole = load_config(w.path);
  Result<VgConfig> parts = load_config(w.path, ConfigParts::kVgAndPvs);
  REQUIRE_MESSAGE(whole.ok(), whole.status().message());
  REQUIRE_MESSAGE(parts.ok(), parts.status().message());
  CHECK(parts->name == whole->name);
  CHECK(parts->extent_size == whole->extent_size);
  CHECK(parts->region_size == whole->region_size);
  REQUIRE(parts->pvs.size() == whole->pvs.size());
  for (size_t i = 0; i < parts->pvs.size(); ++i) {
    CHECK(parts->pvs[i].name == whole->pvs[i].name);
    CHECK(parts->pvs[i].path == whole->pvs[i].path);
    CHECK(parts->pvs[i].size == whole->pvs[i].size);
    CHECK(parts->pvs[i].place.str() == whole->pvs[i].place.str());
  }
  CHECK(whole->lvs.size() == 2);
  CHECK(parts->lvs.empty());
}

TEST_CASE("kVgAndPvs skips a broken lvs list but reports errors elsewhere exactly as a whole load") {
  TempDir dir;
  // An LV error only a whole load sees: the mount does not read LVs from here.
  Written broken_lv = write_config(dir, std::string(kHead) + "lvs:\n  - {name: lv0, colour: blue}\n");
  CHECK_FALSE(load_config(broken_lv.path).ok());
  CHECK(load_config(broken_lv.path, ConfigParts::kVgAndPvs).ok());

  // An error in the PVs after the lvs block: the same message, line and all.
  const std::string text = "vg:\n  name: vg0\nlvs:\n  - {name: lv0, size: 1GiB}\npvs:\n  - {name: pv0, path: a.img, "
                           "size: 0}\n";
  Written w = write_config(dir, text, "late.yaml");
  Result<VgConfig> whole = load_config(w.path);
  Result<VgConfig> parts = load_config(w.path, ConfigParts::kVgAndPvs);
  REQUIRE_FALSE(whole.ok());
  REQUIRE_FALSE(parts.ok());
  CHECK(parts.status().message() == whole.status().message());
  CHECK(whole.status().message().find(w.path + ":" + std::to_string(line_of(text, "size: 0")) + ":") !=
        std::string::npos);

  // An anchor defined in the lvs block and used by the PVs: the cut text
  // fails, the whole file is read and loads.
  const std::string anchored = "vg: {name: vg0}\nlvs:\n  - &lv {name: lv0, size: 1GiB}\npvs:\n  - {name: pv0, path: "
                               "a.img}\nlvsrefs: *lv\n";
  Written a = write_config(dir, anchored, "anchored.yaml");
  Result<VgConfig> aw = load_config(a.path), ap = load_config(a.path, ConfigParts::kVgAndPvs);
  CHECK(aw.ok() == ap.ok());
  CHECK(aw.status().message() == ap.status().message());

  // An unclosed flow mapping in the lvs block: not cut (its end is not
  // sure), so the mount reports the whole file's error.
  Written m = write_config(dir, std::string(kHead) + "lvs:\n  - {name: lv0, size: 1GiB\n", "malformed.yaml");
  Result<VgConfig> mw = load_config(m.path), mp = load_config(m.path, ConfigParts::kVgAndPvs);
  REQUIRE_FALSE(mw.ok());
  REQUIRE_FALSE(mp.ok());
  CHECK(mp.status().message() == mw.status().message());
}

TEST_CASE("without_top_level_block leaves alone what it cannot cut for sure") {
  // A column-0 "lvs:" inside a double-quoted scalar that goes on over lines
  // (fuzz/regressions/config/lvs-line-inside-a-quoted-path): the path is
  // the whole load's, with "lvs:" in it.
  CHECK_FALSE(without_top_level_block("pvs:\n  - {name: p, path: \"a\nlvs:\n- b\"}\nvg: {name: v}\n", "lvs"));
  CHECK_FALSE(without_top_level_block("pvs:\n  - {name: p, path: 'a\nlvs:\n- b'}\n", "lvs"));
  // Inside a flow collection that goes on over lines.
  CHECK_FALSE(without_top_level_block("pvs: [{name: p,\nlvs: x, path: a}]\n", "lvs"));
  // A backslash escape (a \" would fool the quote count).
  CHECK_FALSE(without_top_level_block("vg: {name: \"v\\\"\"}\nlvs: []\n", "lvs"));
  // An anchor in the block (a later alias, or a redefinition, would change).
  CHECK_FALSE(without_top_level_block("lvs:\n  - {name: a, size: &s 1GiB}\npvs: []\n", "lvs"));
  // Quotes and brackets that close on their line are fine, comments too.
  CHECK(without_top_level_block("vg: {name: \"v\"}  # it's [\nlvs:\n  - {name: 'a''b', size: 1GiB}\n", "lvs"));

  // And what the fuzzer found: the mount's load of it is the whole load's.
  TempDir dir;
  const std::string text = "vg: {name: vg0}\npvs:\n  - {name: pv0, path: \"a\nlvs:\n- b\"}\n";
  Written w = write_config(dir, text);
  Result<VgConfig> whole = load_config(w.path), parts = load_config(w.path, ConfigParts::kVgAndPvs);
  REQUIRE_MESSAGE(whole.ok(), whole.status().message());
  REQUIRE(parts.ok());
  CHECK(parts->pvs.at(0).path == whole->pvs.at(0).path);
  CHECK(whole->pvs.at(0).path.find("lvs:") != std::string::npos);
}
