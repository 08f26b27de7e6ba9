// Unit tests of VgMetadata (include/vgfs/metadata.h): validate(), the derived
// PE→LE maps (docs/records.md), the LV/PV cross lists and the YAML text codec.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "printers.h"
#include "vgfs/metadata.h"

using namespace vgfs;

namespace {

PvInfo make_pv(std::string name, std::string path, uint64_t pe_count) {
  PvInfo pv;
  pv.name = std::move(name);
  pv.uuid = new_uuid();
  pv.path = std::move(path);
  pv.pe_start = 10 * MiB;
  pv.pe_count = pe_count;
  return pv;
}

LvInfo make_lv(std::string name, uint32_t mode = 0600) {
  LvInfo lv;
  lv.name = std::move(name);
  lv.uuid = new_uuid();
  lv.mode = mode;
  return lv;
}

// Two PVs of 1000 PEs; lv_other is the LE→PE example of docs/records.md (LE 0-499 -> pvalpha PE 500-999,
// LE 500-502 -> pvbeta PE 100-102).
VgMetadata fixture() {
  VgMetadata md;
  md.name = "vgtest";
  md.uuid = new_uuid();
  md.extent_size = 2 * MiB;
  md.region_size = 256 * KiB;
  md.seqno = 7;
  md.pvs.push_back(make_pv("pvalpha", "/srv/disk-a.img", 1000));
  md.pvs.push_back(make_pv("pvbeta", "/srv/disk-b.img", 1000));

  LvInfo lv0 = make_lv("lv0");
  lv0.map.append(0, 0, 10);    // LE 0-9   -> pvalpha PE 0-9
  lv0.map.append(1, 200, 10);  // LE 10-19 -> pvbeta PE 200-209
  md.lvs.push_back(lv0);

  LvInfo other = make_lv("lv_other", 0640);
  other.map.append(0, 500, 500);  // LE 0-499   -> pvalpha PE 500-999
  other.map.append(1, 100, 3);    // LE 500-502 -> pvbeta PE 100-102
  md.lvs.push_back(other);

  LvInfo lv2 = make_lv("lv2");
  lv2.map.append(1, 300, 5);  // LE 0-4 -> pvbeta PE 300-304
  md.lvs.push_back(lv2);

  LvInfo lv3 = make_lv("lv3");
  lv3.map.append(1, 400, 2);  // LE 0-1 -> pvbeta PE 400-401
  lv3.map.append(0, 20, 2);   // LE 2-3 -> pvalpha PE 20-21
  lv3.map.append(1, 402, 1);  // LE 4   -> pvbeta PE 402
  md.lvs.push_back(lv3);
  return md;
}

void check_same(const VgMetadata& a, const VgMetadata& b) {
  CHECK(a.name == b.name);
  CHECK(a.uuid == b.uuid);
  CHECK(a.extent_size == b.extent_size);
  CHECK(a.region_size == b.region_size);
  CHECK(a.seqno == b.seqno);
  REQUIRE(a.pvs.size() == b.pvs.size());
  for (size_t i = 0; i < a.pvs.size(); ++i) {
    CAPTURE(i);
    CHECK(a.pvs[i].name == b.pvs[i].name);
    CHECK(a.pvs[i].uuid == b.pvs[i].uuid);
    CHECK(a.pvs[i].path == b.pvs[i].path);
    CHECK(a.pvs[i].pe_start == b.pvs[i].pe_start);
    CHECK(a.pvs[i].pe_count == b.pvs[i].pe_count);
  }
  REQUIRE(a.lvs.size() == b.lvs.size());
  for (size_t i = 0; i < a.lvs.size(); ++i) {
    CAPTURE(i);
    CHECK(a.lvs[i].name == b.lvs[i].name);
    CHECK(a.lvs[i].uuid == b.lvs[i].uuid);
    CHECK(a.lvs[i].mode == b.lvs[i].mode);
    CHECK(a.lvs[i].map.runs().size() == b.lvs[i].map.runs().size());
    CHECK(a.lvs[i].map == b.lvs[i].map);
  }
  CHECK(a.next_job_id == b.next_job_id);
  REQUIRE(a.jobs.size() == b.jobs.size());
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    CAPTURE(i);
    const JobInfo& x = a.jobs[i];
    const JobInfo& y = b.jobs[i];
    CHECK(x.id == y.id);
    CHECK(x.lv == y.lv);
    CHECK(x.le == y.le);
    CHECK(x.count == y.count);
    CHECK(x.src_pv == y.src_pv);
    CHECK(x.src_pe == y.src_pe);
    CHECK(x.dst_pv == y.dst_pv);
    CHECK(x.dst_pe == y.dst_pe);
    CHECK(x.state == y.state);
    CHECK(x.reason == y.reason);
    CHECK(x.record_offset == y.record_offset);
    CHECK(x.record_size == y.record_size);
    CHECK(x.leg == y.leg);
  }
}

// Checks pv_map(pv) against the inverse of every LV map, PE by PE.
void check_pv_map_is_inverse(const VgMetadata& md, uint32_t pv) {
  CAPTURE(pv);
  struct Owner {
    int64_t lv = PvRun::kFree;
    uint64_t le = 0;
  };
  std::vector<Owner> owner(md.pvs[pv].pe_count);
  for (size_t l = 0; l < md.lvs.size(); ++l)
    for (const MapRun& r : md.lvs[l].map.runs())
      if (r.pv == pv)
        for (uint64_t k = 0; k < r.count; ++k) owner[r.pe + k] = {static_cast<int64_t>(l), r.le + k};

  std::vector<PvRun> runs = md.pv_map(pv);
  uint64_t next = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    CAPTURE(i);
    const PvRun& r = runs[i];
    REQUIRE(r.pe == next);
    REQUIRE(r.count >= 1);
    for (uint64_t k = 0; k < r.count; ++k) {
      const Owner& o = owner[r.pe + k];
      REQUIRE(o.lv == r.lv);
      if (!r.free()) REQUIRE(o.le == r.le + k);
    }
    if (i > 0) CHECK_FALSE((runs[i - 1].free() && r.free()));  // free runs are merged
    next = r.pe_end();
  }
  CHECK(next == md.pvs[pv].pe_count);
}

// A path to a node inside a YAML document: map keys and sequence indices.
struct PathStep {
  std::string key;   // map key, when !is_index
  size_t index = 0;  // sequence index, when is_index
  bool is_index = false;
};
using Path = std::vector<PathStep>;

YAML::Node walk(YAML::Node node, const Path& path) {
  for (const PathStep& step : path) {
    if (step.is_index)
      node.reset(node[step.index]);
    else
      node.reset(node[step.key]);
  }
  return node;
}

// Collects (path of the containing map, key) of every map entry with a
// scalar key and scalar value for which `pick` is true.
void find_entries(const YAML::Node& node, Path& here,
                  const std::function<bool(const std::string&, const std::string&)>& pick,
                  std::vector<std::pair<Path, std::string>>& out) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      std::string key = it->first.Scalar();
      if (it->second.IsScalar() && pick(key, it->second.Scalar())) out.push_back({here, key});
      here.push_back(PathStep{key, 0, false});
      find_entries(it->second, here, pick, out);
      here.pop_back();
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      here.push_back(PathStep{"", i, true});
      find_entries(node[i], here, pick, out);
      here.pop_back();
    }
  }
}

// Decodes `text` with every entry `pick` selects removed, one at a time, and
// checks each decode fails. Returns how many entries were tried.
size_t check_removal_fails(const std::string& text,
                           const std::function<bool(const std::string&, const std::string&)>& pick) {
  YAML::Node doc = YAML::Load(text);
  std::vector<std::pair<Path, std::string>> entries;
  Path here;
  find_entries(doc, here, pick, entries);
  for (const auto& [path, key] : entries) {
    CAPTURE(key);
    YAML::Node copy = YAML::Load(text);
    YAML::Node parent = walk(copy, path);
    REQUIRE(parent.IsMap());
    REQUIRE(parent.remove(key));
    std::string changed = YAML::Dump(copy);
    CAPTURE(changed);
    Result<VgMetadata> r = decode_metadata(changed, "missing-key-test");
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK_FALSE(r.status().message().empty());
  }
  return entries.size();
}

}  // namespace

TEST_CASE("hand-built metadata validates") {
  VgMetadata md = fixture();
  Status s = md.validate();
  CHECK_MESSAGE(s.ok(), s.message());
  CHECK(md.find_pv("pvalpha") == 0);
  CHECK(md.find_pv("pvbeta") == 1);
  CHECK(md.find_pv("pvgamma") == -1);
  CHECK(md.find_lv("lv_other") == 1);
  CHECK(md.find_lv("lv3") == 3);
  CHECK(md.find_lv("lv") == -1);
  CHECK(md.find_lv("") == -1);
}

TEST_CASE("validate accepts boundary values") {
  SUBCASE("last PE of a PV") {
    VgMetadata md = fixture();
    LvInfo lv = make_lv("edge");
    lv.map.append(1, 999, 1);
    md.lvs.push_back(lv);
    CHECK(md.validate().ok());
  }
  SUBCASE("smallest and largest extent sizes") {
    VgMetadata md = fixture();
    md.extent_size = 64 * KiB;
    md.region_size = 64 * KiB;
    CHECK(md.validate().ok());
    md.extent_size = 1 * GiB;
    md.region_size = 256 * KiB;
    CHECK(md.validate().ok());
  }
  SUBCASE("region size equal to the extent size") {
    VgMetadata md = fixture();
    md.region_size = md.extent_size;
    CHECK(md.validate().ok());
  }
  SUBCASE("a PV with no extents in use and an empty VG") {
    VgMetadata md = fixture();
    md.pvs.push_back(make_pv("pvgamma", "/srv/disk-c.img", 50));
    CHECK(md.validate().ok());
    md.lvs.clear();
    CHECK(md.validate().ok());
  }
}

TEST_CASE("validate rejects inconsistent metadata") {
  auto expect_invalid = [](const VgMetadata& md) {
    Status s = md.validate();
    CHECK_FALSE(s.ok());
    CHECK(s.code() != 0);
    CHECK_FALSE(s.message().empty());
  };
  SUBCASE("PE used by two LVs") {
    VgMetadata md = fixture();
    md.lvs[2].map.append(0, 505, 1);  // pvalpha PE 505 belongs to lv_other
    expect_invalid(md);
  }
  SUBCASE("PE used twice by one LV") {
    VgMetadata md = fixture();
    LvInfo lv = make_lv("twice");
    lv.map.append(1, 600, 2);
    lv.map.append(0, 30, 1);
    lv.map.append(1, 601, 1);
    md.lvs.push_back(lv);
    expect_invalid(md);
  }
  SUBCASE("run partly overlapping the end of another LV's run") {
    VgMetadata md = fixture();
    LvInfo lv = make_lv("partial");
    lv.map.append(1, 95, 6);  // 95-100, 100 belongs to lv_other
    md.lvs.push_back(lv);
    expect_invalid(md);
  }
  SUBCASE("PE range past the end of the PV") {
    VgMetadata md = fixture();
    md.lvs[2].map.append(1, 998, 5);
    expect_invalid(md);
  }
  SUBCASE("PE equal to pe_count") {
    VgMetadata md = fixture();
    md.lvs[2].map.append(1, 1000, 1);
    expect_invalid(md);
  }
  SUBCASE("PE range that wraps around 2^64") {
    VgMetadata md = fixture();
    md.lvs[2].map.append(1, UINT64_MAX, 1);
    expect_invalid(md);
  }
  SUBCASE("run on a PV index that does not exist") {
    VgMetadata md = fixture();
    md.lvs[2].map.append(5, 0, 1);
    expect_invalid(md);
  }
  SUBCASE("bad LV name") {
    VgMetadata md = fixture();
    md.lvs[0].name = "a/b";
    expect_invalid(md);
  }
  SUBCASE("empty LV name") {
    VgMetadata md = fixture();
    md.lvs[0].name = "";
    expect_invalid(md);
  }
  SUBCASE("bad PV name") {
    VgMetadata md = fixture();
    md.pvs[1].name = "-pv";
    expect_invalid(md);
  }
  SUBCASE("bad VG name") {
    VgMetadata md = fixture();
    md.name = ".vg";
    expect_invalid(md);
    md.name = "";
    expect_invalid(md);
  }
  SUBCASE("duplicate LV names") {
    VgMetadata md = fixture();
    md.lvs[3].name = "lv0";
    expect_invalid(md);
  }
  SUBCASE("duplicate PV names") {
    VgMetadata md = fixture();
    md.pvs[1].name = "pvalpha";
    expect_invalid(md);
  }
  SUBCASE("extent size not a power of two") {
    VgMetadata md = fixture();
    md.extent_size = 3 * MiB;
    expect_invalid(md);
  }
  SUBCASE("extent size below 64KiB") {
    VgMetadata md = fixture();
    md.extent_size = 32 * KiB;
    md.region_size = 32 * KiB;
    expect_invalid(md);
  }
  SUBCASE("extent size above 1GiB") {
    VgMetadata md = fixture();
    md.extent_size = 2 * GiB;
    expect_invalid(md);
  }
  SUBCASE("extent size zero") {
    VgMetadata md = fixture();
    md.extent_size = 0;
    expect_invalid(md);
  }
  SUBCASE("region size larger than the extent size") {
    VgMetadata md = fixture();
    md.region_size = 4 * MiB;
    expect_invalid(md);
  }
  SUBCASE("region size not a power of two") {
    VgMetadata md = fixture();
    md.region_size = 96 * KiB;
    expect_invalid(md);
  }
  SUBCASE("region size zero") {
    VgMetadata md = fixture();
    md.region_size = 0;
    expect_invalid(md);
  }
}

TEST_CASE("pv_map is the PE→LE inverse with free runs") {
  VgMetadata md = fixture();
  REQUIRE(md.validate().ok());

  std::vector<PvRun> a = md.pv_map(0);
  std::vector<PvRun> expect_a = {
      {0, 10, 0, 0},           // lv0 LE 0-9
      {10, 10, PvRun::kFree, 0},
      {20, 2, 3, 2},           // lv3 LE 2-3
      {22, 478, PvRun::kFree, 0},
      {500, 500, 1, 0},        // lv_other LE 0-499
  };
  REQUIRE(a.size() == expect_a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(a[i].pe == expect_a[i].pe);
    CHECK(a[i].count == expect_a[i].count);
    CHECK(a[i].lv == expect_a[i].lv);
    if (!expect_a[i].free()) CHECK(a[i].le == expect_a[i].le);
  }

  std::vector<PvRun> b = md.pv_map(1);
  std::vector<PvRun> expect_b = {
      {0, 100, PvRun::kFree, 0},
      {100, 3, 1, 500},  // lv_other LE 500-502
      {103, 97, PvRun::kFree, 0},
      {200, 10, 0, 10},  // lv0 LE 10-19
      {210, 90, PvRun::kFree, 0},
      {300, 5, 2, 0},    // lv2 LE 0-4
      {305, 95, PvRun::kFree, 0},
      {400, 2, 3, 0},    // lv3 LE 0-1
      {402, 1, 3, 4},    // lv3 LE 4: same LV, PE-adjacent, not LE-contiguous
      {403, 597, PvRun::kFree, 0},
  };
  REQUIRE(b.size() == expect_b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    CAPTURE(i);
    CHECK(b[i].pe == expect_b[i].pe);
    CHECK(b[i].count == expect_b[i].count);
    CHECK(b[i].lv == expect_b[i].lv);
    if (!expect_b[i].free()) CHECK(b[i].le == expect_b[i].le);
  }
  check_pv_map_is_inverse(md, 0);
  check_pv_map_is_inverse(md, 1);
}

TEST_CASE("pv_map of an empty PV and a full PV") {
  VgMetadata md = fixture();
  md.pvs.push_back(make_pv("pvgamma", "/srv/disk-c.img", 50));
  md.pvs.push_back(make_pv("pvdelta", "/srv/disk-d.img", 4));
  LvInfo full = make_lv("full");
  full.map.append(3, 2, 2);
  full.map.append(3, 0, 2);
  md.lvs.push_back(full);
  REQUIRE(md.validate().ok());

  std::vector<PvRun> empty = md.pv_map(2);
  REQUIRE(empty.size() == 1);
  CHECK(empty[0].pe == 0);
  CHECK(empty[0].count == 50);
  CHECK(empty[0].free());
  CHECK(md.free_extents(2) == 50);
  CHECK(md.lvs_on_pv(2).empty());

  std::vector<PvRun> f = md.pv_map(3);
  REQUIRE(f.size() == 2);
  CHECK(f[0] == PvRun{0, 2, 4, 2});
  CHECK(f[1] == PvRun{2, 2, 4, 0});
  CHECK(md.free_extents(3) == 0);
}

TEST_CASE("free extents and LV/PV cross lists") {
  VgMetadata md = fixture();
  CHECK(md.free_extents(0) == 1000 - 10 - 2 - 500);
  CHECK(md.free_extents(1) == 1000 - 3 - 10 - 5 - 3);
  CHECK(md.total_free_extents() == 488 + 979);

  CHECK(md.lvs_on_pv(0) == std::vector<std::string>{"lv0", "lv_other", "lv3"});
  CHECK(md.lvs_on_pv(1) == std::vector<std::string>{"lv0", "lv_other", "lv2", "lv3"});
  CHECK(md.pvs_of_lv(0) == std::vector<std::string>{"pvalpha", "pvbeta"});
  CHECK(md.pvs_of_lv(1) == std::vector<std::string>{"pvalpha", "pvbeta"});
  CHECK(md.pvs_of_lv(2) == std::vector<std::string>{"pvbeta"});
  CHECK(md.pvs_of_lv(3) == std::vector<std::string>{"pvbeta", "pvalpha"});
}

TEST_CASE("encode/decode round trip") {
  VgMetadata md = fixture();
  REQUIRE(md.validate().ok());
  std::string text = encode_metadata(md);
  CHECK_FALSE(text.empty());
  Result<VgMetadata> back = decode_metadata(text, "round-trip");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  check_same(*back, md);
  CHECK(back->validate().ok());
  CHECK(encode_metadata(*back) == text);  // deterministic text
}

TEST_CASE("encode/decode keeps unusual PV paths and modes") {
  VgMetadata md = fixture();
  md.pvs[0].path = "/srv/my disk: \"a\"/x #1 {b} [c], 'd'.img";
  md.pvs[1].path = "/srv/\xc3\xa9t\xc3\xa9/- yes/no: ~";
  md.lvs[0].mode = 0;
  md.lvs[2].mode = 0777;
  REQUIRE(md.validate().ok());
  Result<VgMetadata> back = decode_metadata(encode_metadata(md), "paths");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  check_same(*back, md);
}

TEST_CASE("encode/decode round trip with thousands of runs") {
  VgMetadata md;
  md.name = "bigvg";
  md.uuid = new_uuid();
  md.extent_size = 64 * KiB;
  md.region_size = 64 * KiB;
  md.seqno = 123456789;
  md.pvs.push_back(make_pv("p0", "/dev/fake0", 100000));
  md.pvs.push_back(make_pv("p1", "/dev/fake1", 100000));
  LvInfo big = make_lv("big", 0644);
  for (uint64_t i = 0; i < 5000; ++i) big.map.append(static_cast<uint32_t>(i % 2), 2 * i, 1 + i % 2);
  REQUIRE(big.map.runs().size() == 5000);
  md.lvs.push_back(big);
  LvInfo small = make_lv("small");
  small.map.append(0, 50000, 7);
  md.lvs.push_back(small);
  Status valid = md.validate();
  REQUIRE_MESSAGE(valid.ok(), valid.message());

  Result<VgMetadata> back = decode_metadata(encode_metadata(md), "big");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  check_same(*back, md);
}

TEST_CASE("decode rejects garbage with a message naming the origin") {
  const char* garbage[] = {
      "",
      "this is not metadata",
      "{[}",
      "- 1\n- 2\n",
      "vg: [unclosed\n",
      "\x01\x02\x03\xff\xfe",
      "name: x\n",
  };
  for (const char* text : garbage) {
    CAPTURE(text);
    Result<VgMetadata> r = decode_metadata(text, "slot-origin-xyz");
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() != 0);
    CHECK_FALSE(r.status().message().empty());
    CHECK(r.status().message().find("slot-origin-xyz") != std::string::npos);
  }
}

TEST_CASE("decode rejects missing keys") {
  VgMetadata md = fixture();
  std::string text = encode_metadata(md);
  REQUIRE(decode_metadata(text, "ok").ok());

  size_t vg_name = check_removal_fails(text, [](const std::string&, const std::string& v) { return v == "vgtest"; });
  CHECK(vg_name >= 1);
  // The LV name may be a map key instead of a value; when it is a value,
  // removing it must fail too.
  check_removal_fails(text, [](const std::string&, const std::string& v) { return v == "lv_other"; });
  std::string pv_uuid = format_uuid(md.pvs[1].uuid);
  size_t uuid = check_removal_fails(text, [&](const std::string&, const std::string& v) { return v == pv_uuid; });
  CHECK(uuid >= 1);
  size_t extent = check_removal_fails(text, [](const std::string& k, const std::string& v) {
    return k.find("extent") != std::string::npos && (v == "2097152" || v == "2MiB");
  });
  CHECK(extent >= 1);
}

TEST_CASE("decode rejects a run naming an unknown PV") {
  std::string text = encode_metadata(fixture());
  const std::string name = "pvbeta";
  std::vector<size_t> at;
  for (size_t p = text.find(name); p != std::string::npos; p = text.find(name, p + 1)) at.push_back(p);
  // Named once as a PV and at least once by the runs that use it.
  REQUIRE(at.size() >= 2);
  for (size_t p : at) {
    std::string changed = text;
    changed.replace(p, name.size(), "pvzeta");
    CAPTURE(changed);
    Result<VgMetadata> r = decode_metadata(changed, "rename-test");
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("decode rejects well-formed text describing invalid metadata") {
  VgMetadata md = fixture();
  md.lvs[2].map.append(0, 505, 1);  // overlaps lv_other
  REQUIRE_FALSE(md.validate().ok());
  Result<VgMetadata> r = decode_metadata(encode_metadata(md), "overlap");
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.status().message().empty());

  VgMetadata md2 = fixture();
  md2.extent_size = 3 * MiB;
  Result<VgMetadata> r2 = decode_metadata(encode_metadata(md2), "extent");
  CHECK_FALSE(r2.ok());
}

namespace {

// A running job moving lv_other LE 500-502 (pvbeta PE 100-102) to pvalpha
// PE 30-32, and a finished one.
VgMetadata fixture_with_jobs() {
  VgMetadata md = fixture();
  md.next_job_id = 5;
  JobInfo run;
  run.id = 4;
  run.lv = "lv_other";
  run.le = 500;
  run.count = 3;
  run.src_pv = 1;
  run.src_pe = 100;
  run.dst_pv = 0;
  run.dst_pe = 30;
  run.state = JobState::kRunning;
  run.record_offset = 8192;
  run.record_size = 4096;
  JobInfo done;
  done.id = 2;
  done.lv = "lv0";
  done.le = 0;
  done.count = 1;
  done.src_pv = 1;
  done.src_pe = 600;
  done.dst_pv = 0;
  done.dst_pe = 0;
  done.state = JobState::kFailed;
  done.reason = "destination I/O error: EIO";
  md.jobs = {done, run};
  return md;
}

}  // namespace

TEST_CASE("running jobs reserve their destination PEs") {
  VgMetadata md = fixture_with_jobs();
  Status s = md.validate();
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(md.find_job(4) != nullptr);
  CHECK(md.find_job(3) == nullptr);
  CHECK(md.free_extents(0) == 488 - 3);
  CHECK(md.free_extents(1) == 979);  // the source stays mapped, nothing more
  CHECK(md.total_free_extents() == 488 - 3 + 979);

  std::vector<PvRun> a = md.pv_map(0);
  bool seen = false;
  for (const PvRun& r : a) {
    if (r.pe <= 30 && 30 < r.pe_end()) {
      CHECK(r.pe == 30);
      CHECK(r.count == 3);
      CHECK_FALSE(r.free());
      CHECK(r.job == 4);
      seen = true;
    }
    if (r.free()) CHECK(r.job == -1);
  }
  CHECK(seen);

  // The allocator does not hand out reserved PEs.
  Result<std::vector<MapRun>> all = allocate_extents(md, md.free_extents(0), std::vector<uint32_t>{0});
  REQUIRE(all.ok());
  for (const MapRun& r : *all) CHECK((r.pe + r.count <= 30 || r.pe >= 33));
}

TEST_CASE("validate rejects inconsistent jobs") {
  SUBCASE("destination overlapping an LV") {
    VgMetadata md = fixture_with_jobs();
    md.find_job(4)->dst_pe = 505;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("source not where the LV maps") {
    VgMetadata md = fixture_with_jobs();
    md.find_job(4)->src_pe = 101;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("unknown LV") {
    VgMetadata md = fixture_with_jobs();
    md.find_job(4)->lv = "nope";
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("repeated id") {
    VgMetadata md = fixture_with_jobs();
    md.jobs[0].id = 4;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("id not below next_job_id") {
    VgMetadata md = fixture_with_jobs();
    md.next_job_id = 4;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("destination past the PV end") {
    VgMetadata md = fixture_with_jobs();
    md.find_job(4)->dst_pe = 998;
    CHECK_FALSE(md.validate().ok());
  }
}

TEST_CASE("encode/decode round trip with jobs") {
  VgMetadata md = fixture_with_jobs();
  REQUIRE(md.validate().ok());
  std::string text = encode_metadata(md);
  Result<VgMetadata> back = decode_metadata(text, "jobs");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  check_same(*back, md);
  CHECK(encode_metadata(*back) == text);
}

// ---- Hostile metadata text (issue 8): everything read from disk is untrusted.

namespace {

std::string fixture_text() { return encode_metadata(fixture()); }

Result<VgMetadata> decode_with(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  text.replace(at, from.size(), to);
  return decode_metadata(text, "hostile");
}

void check_one_line_error(const Result<VgMetadata>& r) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() != 0);
  CHECK(r.status().message().find('\n') == std::string::npos);
  CHECK(r.status().message().find('\x1b') == std::string::npos);
}

}  // namespace

TEST_CASE("decode refuses YAML anchors and aliases (alias bomb)") {
  std::string text = fixture_text();
  // An anchor on the VG name and an alias as a PV path decode fine with a
  // YAML::Node loader; vgfs never writes either.
  Result<VgMetadata> r = decode_with(text, "name: vgtest", "name: &n vgtest");
  check_one_line_error(r);
  CHECK(r.status().message().find("anchor") != std::string::npos);
  r = decode_with(text, "path: \"/srv/disk-b.img\"", "path: *n");
  check_one_line_error(r);

  // The classic bomb: each level doubles the one before.
  std::string bomb = "a0: &a0 [x, x]\n";
  for (int i = 1; i < 40; ++i) bomb += fmt::format("a{}: &a{} [*a{}, *a{}]\n", i, i, i - 1, i - 1);
  Result<VgMetadata> b = decode_metadata(bomb, "bomb");
  check_one_line_error(b);
}

TEST_CASE("decode bounds its work by the text size") {
  // 2 bytes of text per node: more nodes than vgfs metadata ever has.
  std::string text = "vg: [";
  for (int i = 0; i < 200000; ++i) text += "0,";
  text += "0]\n";
  Result<VgMetadata> r = decode_metadata(text, "flat");
  check_one_line_error(r);
  CHECK(r.status().message().find("nodes") != std::string::npos);

  std::string deep(100, '[');
  deep += std::string(100, ']');
  check_one_line_error(decode_metadata("vg: " + deep + "\n", "deep"));
  check_one_line_error(decode_metadata(std::string(kMaxMetadataText + 1, ' '), "huge"));
  check_one_line_error(decode_metadata("", "empty"));
  check_one_line_error(decode_metadata(fixture_text() + "---\n" + fixture_text(), "two documents"));
}

TEST_CASE("decode refuses repeated and non-string keys and escapes what it quotes") {
  std::string text = fixture_text();
  check_one_line_error(decode_with(text, "  seqno: 7\n", "  seqno: 7\n  seqno: 8\n"));
  check_one_line_error(decode_with(text, "  seqno: 7\n", "  seqno: 7\n  ? [a]\n  : b\n"));
  Result<VgMetadata> r = decode_with(text, "  seqno: 7\n", "  seqno: 7\n  \"evil\\n\\e[31mkey\": 1\n");
  check_one_line_error(r);
  CHECK(r.status().message().find("\\x0a") != std::string::npos);
  check_one_line_error(decode_with(text, "name: lv0", "name: \"lv0\\nrm -rf\""));
  check_one_line_error(decode_with(text, "name: lv0", "name: ../../etc"));
}

TEST_CASE("a record place without a blank is refused (no pointer past npos)") {
  VgMetadata md = fixture_with_jobs();
  std::string text = encode_metadata(md);
  check_one_line_error(decode_with(text, "record: 8192 4096", "record: 8192"));
  check_one_line_error(decode_with(text, "record: 8192 4096", "record: \"8192 \""));
  check_one_line_error(decode_with(text, "record: 8192 4096", "record: \" 4096\""));
  check_one_line_error(decode_with(text, "record: 8192 4096", "record: 8192 18446744073709551616"));
}

TEST_CASE("paths and reasons that are not UTF-8 round trip byte-exact") {
  VgMetadata md = fixture_with_jobs();
  md.pvs[0].path = "/srv/d\xe9j\xe0-vu\xff.img";  // Latin-1, as a file name may be
  md.pvs[1].path = "/srv/caf\xc3\xa9 \"quoted\"\\\n\t.img";  // UTF-8 with escapes
  md.jobs[0].reason = std::string("bad\x80\x00\x1b[31m", 9);
  std::string text = encode_metadata(md);
  CHECK(text.find("\xef\xbf\xbd") == std::string::npos);  // no U+FFFD
  Result<VgMetadata> back = decode_metadata(text, "bytes");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->pvs[0].path == md.pvs[0].path);
  CHECK(back->pvs[1].path == md.pvs[1].path);
  CHECK(back->jobs[0].reason == md.jobs[0].reason);
  CHECK(encode_metadata(*back) == text);

  // Every single byte, alone and inside a path.
  for (int c = 1; c < 256; ++c) {
    CAPTURE(c);
    VgMetadata one = fixture();
    one.pvs[0].path = std::string("/p") + static_cast<char>(c) + "x";
    Result<VgMetadata> r = decode_metadata(encode_metadata(one), "byte");
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->pvs[0].path == one.pvs[0].path);
  }
  // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
  for (std::string bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xef\xbf\xbe",
                          "\xef\xb7\x90"}) {
    VgMetadata one = fixture();
    one.pvs[0].path = "/p" + bad;
    Result<VgMetadata> r = decode_metadata(encode_metadata(one), "bad utf-8");
    REQUIRE(r.ok());
    CHECK(r->pvs[0].path == one.pvs[0].path);
  }
  // A path holding a NUL byte would open a shorter one.
  VgMetadata nul = fixture();
  nul.pvs[0].path = std::string("/etc/shadow\0.img", 16);
  CHECK_FALSE(nul.validate().ok());
}

TEST_CASE("validate bounds seqno, next_job_id and job ids") {
  VgMetadata md = fixture_with_jobs();
  REQUIRE(md.validate().ok());
  SUBCASE("seqno at the wrap") {
    md.seqno = UINT64_MAX;
    CHECK_FALSE(md.validate().ok());
    md.seqno = kMaxSeqno;
    CHECK(md.validate().ok());
  }
  SUBCASE("next_job_id 0 with no jobs") {
    md.jobs.clear();
    md.next_job_id = 0;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("job ids near 2^64 (FUSE inodes would wrap)") {
    md.next_job_id = UINT64_MAX;
    md.jobs[0].id = UINT64_MAX - 1;
    CHECK_FALSE(md.validate().ok());
    md.next_job_id = kMaxJobId;
    md.jobs[0].id = kMaxJobId - 1;
    CHECK(md.validate().ok());
  }
  SUBCASE("a job of an ended LV keeps a valid LV name") {
    md.jobs[0].lv = "../x";
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("duplicate PV UUID") {
    md.pvs[1].uuid = md.pvs[0].uuid;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("an LV larger than a file can be") {
    VgMetadata big = fixture();
    big.extent_size = kMaxExtentSize;
    big.pvs[0].pe_count = (UINT64_MAX - big.pvs[0].pe_start) / big.extent_size;
    big.pvs[1].pe_count = big.pvs[0].pe_count;
    big.lvs[0].map = ExtentMap();
    big.lvs[0].map.append(0, 0, big.pvs[0].pe_count);
    big.lvs[0].map.append(1, 0, big.pvs[1].pe_count);
    big.lvs.resize(1);
    CHECK_FALSE(big.validate().ok());
  }
}

TEST_CASE("validate refuses unaligned, wrapping and overlapping job record places") {
  VgMetadata md = fixture_with_jobs();
  JobInfo* run = md.find_job(4);
  SUBCASE("unaligned") {
    run->record_offset = 100;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("zero size") {
    run->record_size = 0;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("wrapping") {
    run->record_offset = UINT64_MAX - 4095;
    run->record_size = 8192;
    CHECK_FALSE(md.validate().ok());
  }
  SUBCASE("two running jobs on one source PV sharing record bytes") {
    JobInfo second = *run;
    second.id = 3;
    second.le = 0;
    second.count = 10;
    second.src_pv = 0;
    second.src_pe = 500;  // lv_other LE 0-9 is on pvalpha PE 500-509
    second.dst_pv = 1;
    second.dst_pe = 700;
    run->src_pv = 1;
    md.jobs.push_back(second);
    md.jobs.back().record_offset = 8192;
    md.jobs.back().record_size = 16384;
    REQUIRE_MESSAGE(md.validate().ok(), md.validate().message());  // different source PVs
    // lv0 LE 10-19 is on pvbeta PE 200-209: same source PV as job 4.
    md.jobs.back().lv = "lv0";
    md.jobs.back().le = 10;
    md.jobs.back().src_pv = 1;
    md.jobs.back().src_pe = 200;
    md.jobs.back().dst_pv = 0;
    md.jobs.back().dst_pe = 40;
    CHECK_FALSE(md.validate().ok());
    md.jobs.back().record_offset = 12288;
    CHECK(md.validate().ok());
  }
}


TEST_CASE("every code point survives the text, whichever form it takes") {
  // U+0001..U+10FFFF as UTF-8 in one reason: yaml-cpp's emitter and parser
  // must agree with our idea of what can go double-quoted.
  auto utf8 = [](uint32_t cp) {
    std::string out;
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return out;
  };
  for (uint32_t from = 1; from <= 0x10FFFF; from += 0x8000) {
    CAPTURE(from);
    VgMetadata md = fixture_with_jobs();
    md.jobs[0].reason.clear();
    for (uint32_t cp = from; cp < from + 0x8000 && cp <= 0x10FFFF; ++cp)
      if (cp < 0xD800 || cp > 0xDFFF) md.jobs[0].reason += utf8(cp);
    Result<VgMetadata> back = decode_metadata(encode_metadata(md), "code points");
    REQUIRE_MESSAGE(back.ok(), back.status().message());
    CHECK(back->jobs[0].reason == md.jobs[0].reason);
  }
}
