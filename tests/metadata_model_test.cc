// Unit tests of what the metadata model holds for LVM2 VGs
// (include/vgfs/metadata.h, docs/format.md "Striped segments", "Kept keys"):
// striped runs, hidden LVs, kept keys and LV owners, through validate(),
// pv_map() and the YAML codec; and that texts without the new keys decode
// as before.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "printers.h"
#include "vgfs/metadata.h"

using namespace vgfs;

namespace {

PvInfo make_pv(std::string name, uint64_t pe_count) {
  PvInfo pv;
  pv.name = std::move(name);
  pv.uuid = new_uuid();
  pv.path = "/srv/" + pv.name + ".img";
  pv.pe_start = 10 * MiB;
  pv.pe_count = pe_count;
  return pv;
}

MapRun striped(uint64_t count, uint64_t stripe_size, std::vector<StripeLeg> legs) {
  MapRun r;
  r.count = count;
  r.pv = legs[0].pv;
  r.pe = legs[0].pe;
  r.stripe_size = stripe_size;
  r.more_legs.assign(legs.begin() + 1, legs.end());
  return r;
}

// Three PVs of 100 PEs of 1 MiB. "data": LE 0-9 linear on pv0 PE 0-9, then
// LE 10-39 striped over pv0 PE 10-19, pv1 PE 0-9, pv2 PE 0-9 (64 KiB
// chunks). "meta": hidden, LE 0-3 on pv1 PE 50-53, owned by 1000:100.
VgMetadata fixture() {
  VgMetadata md;
  md.name = "vgs";
  md.uuid = new_uuid();
  md.extent_size = 1 * MiB;
  md.region_size = 64 * KiB;
  md.seqno = 3;
  for (const char* n : {"pv0", "pv1", "pv2"}) md.pvs.push_back(make_pv(n, 100));
  LvInfo data;
  data.name = "data";
  data.uuid = new_uuid();
  data.map.append(0, 0, 10);
  data.map.append_run(striped(30, 64 * KiB, {{0, 10}, {1, 0}, {2, 0}}));
  md.lvs.push_back(data);
  LvInfo meta;
  meta.name = "meta";
  meta.uuid = new_uuid();
  meta.hidden = true;
  meta.uid = 1000;
  meta.gid = 100;
  meta.map.append(1, 50, 4);
  md.lvs.push_back(meta);
  return md;
}

void check_invalid(const VgMetadata& md, const std::string& needle) {
  Status s = md.validate();
  CAPTURE(s.message());
  CHECK(s.code() == EINVAL);
  CHECK(s.message().find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("a striped run: its legs, and the map does not merge it") {
  VgMetadata md = fixture();
  REQUIRE(md.validate().ok());
  const ExtentMap& map = md.lvs[0].map;
  REQUIRE(map.runs().size() == 2);
  const MapRun& r = map.runs()[1];
  CHECK(r.le == 10);
  CHECK(r.striped());
  CHECK(r.stripe_count() == 3);
  CHECK(r.leg_extents() == 10);
  CHECK(r.leg(0) == StripeLeg{0, 10});
  CHECK(r.leg(2) == StripeLeg{2, 0});
  CHECK(map.extent_count() == 40);
  // A linear run right after it, contiguous with leg 0, is a run of its own.
  ExtentMap m = map;
  m.append(0, 20, 5);
  CHECK(m.runs().size() == 3);
  // And a plain run contiguous with a run that keeps keys does not merge either.
  ExtentMap k;
  MapRun kept_run{0, 4, 0, 0};
  kept_run.kept = {{"tags", "[\"a\"]"}};
  k.append_run(kept_run);
  k.append(0, 4, 4);
  REQUIRE(k.runs().size() == 2);
  CHECK(k.runs()[1] == MapRun{4, 4, 0, 4});
}

TEST_CASE("striped legs count as used: pv_map, free extents, cross lists") {
  VgMetadata md = fixture();
  CHECK(md.free_extents(0) == 80);
  CHECK(md.free_extents(1) == 86);  // one leg and the hidden LV
  CHECK(md.free_extents(2) == 90);
  CHECK(md.total_free_extents() == 300 - 44);
  std::vector<PvRun> p0 = md.pv_map(0);
  // PE 0-9 linear LE 0-9, PE 10-19 leg 0 of the striped run: not merged.
  REQUIRE(p0.size() == 3);
  CHECK(p0[0] == PvRun{0, 10, 0, 0, -1, 0, 1});
  CHECK(p0[1] == PvRun{10, 10, 0, 10, -1, 0, 3});
  CHECK(p0[2].free());
  std::vector<PvRun> p1 = md.pv_map(1);
  REQUIRE(p1.size() == 4);
  CHECK(p1[0] == PvRun{0, 10, 0, 10, -1, 1, 3});
  CHECK(p1[2] == PvRun{50, 4, 1, 0, -1, 0, 1});  // the hidden LV's
  CHECK(md.lvs_on_pv(2) == std::vector<std::string>{"data"});
  CHECK(md.pvs_of_lv(0) == std::vector<std::string>{"pv0", "pv1", "pv2"});
  // The allocator never hands out a leg's PEs.
  Result<std::vector<MapRun>> got = allocate_extents(md, 90, std::vector<uint32_t>{2});
  REQUIRE(got.ok());
  REQUIRE(got->size() == 1);
  CHECK((*got)[0].pe == 10);
  CHECK_FALSE(allocate_extents(md, 91, std::vector<uint32_t>{2}).ok());
}

TEST_CASE("validate refuses hostile striped runs, owners and kept keys") {
  auto with_run = [](MapRun r) {
    VgMetadata md = fixture();
    md.lvs[0].map.append_run(std::move(r));
    return md;
  };
  SUBCASE("stripe size not a power of two") { check_invalid(with_run(striped(4, 96 * KiB, {{0, 50}, {1, 20}})), "stripe size"); }
  SUBCASE("stripe size below 4 KiB") { check_invalid(with_run(striped(4, 2 * KiB, {{0, 50}, {1, 20}})), "stripe size"); }
  SUBCASE("stripe size above the extent size") { check_invalid(with_run(striped(4, 2 * MiB, {{0, 50}, {1, 20}})), "stripe size"); }
  SUBCASE("stripe size zero") { check_invalid(with_run(striped(4, 0, {{0, 50}, {1, 20}})), "stripe size"); }
  SUBCASE("count not a multiple of the legs") { check_invalid(with_run(striped(5, 64 * KiB, {{0, 50}, {1, 20}})), "not a whole number"); }
  SUBCASE("leg on a PV that does not exist") { check_invalid(with_run(striped(4, 64 * KiB, {{0, 50}, {7, 20}})), "PV #7"); }
  SUBCASE("leg past its PV's end") { check_invalid(with_run(striped(4, 64 * KiB, {{0, 50}, {1, 99}})), "stripe 1"); }
  SUBCASE("leg wrapping around 2^64") { check_invalid(with_run(striped(4, 64 * KiB, {{0, 50}, {1, UINT64_MAX}})), "stripe 1"); }
  SUBCASE("leg over another LV's PEs") { check_invalid(with_run(striped(4, 64 * KiB, {{0, 50}, {1, 51}})), "mapped twice"); }
  SUBCASE("two legs of one run on the same PEs") { check_invalid(with_run(striped(4, 64 * KiB, {{0, 50}, {0, 51}})), "mapped twice"); }
  SUBCASE("leg over a linear run of the same LV") { check_invalid(with_run(striped(4, 64 * KiB, {{0, 8}, {1, 20}})), "mapped twice"); }
  SUBCASE("too many legs") {
    std::vector<StripeLeg> legs;
    for (uint32_t i = 0; i <= kMaxStripes; ++i) legs.push_back({0, 50 + i});
    check_invalid(with_run(striped(kMaxStripes + 1, 64 * KiB, legs)), "stripes, more than");
  }
  SUBCASE("a linear run with a stripe size") {
    MapRun r{0, 2, 2, 50};
    r.stripe_size = 64 * KiB;
    check_invalid(with_run(r), "linear but has a stripe size");
  }
  SUBCASE("uid -1") {
    VgMetadata md = fixture();
    md.lvs[1].uid = UINT32_MAX;
    check_invalid(md, "uid");
  }
  SUBCASE("gid -1") {
    VgMetadata md = fixture();
    md.lvs[0].gid = UINT32_MAX;
    check_invalid(md, "gid");
  }
  SUBCASE("kept key twice") {
    VgMetadata md = fixture();
    md.kept = {{"a", "1"}, {"a", "2"}};
    check_invalid(md, "appears twice");
  }
  SUBCASE("kept key that is no key name") {
    VgMetadata md = fixture();
    md.pvs[0].kept = {{"a b", "1"}};
    check_invalid(md, "is not a key name");
    md.pvs[0].kept = {{"", "1"}};
    check_invalid(md, "is not a key name");
  }
  SUBCASE("kept key of a run") {
    MapRun r{0, 2, 2, 50};
    r.kept = {{"x\n", "1"}};
    check_invalid(with_run(r), "is not a key name");
  }
  SUBCASE("a running job on a striped run") {
    VgMetadata md = fixture();
    JobInfo j;
    j.id = 1;
    j.lv = "data";
    j.le = 10;
    j.count = 3;
    j.src_pv = 0;
    j.src_pe = 10;
    j.dst_pv = 2;
    j.dst_pe = 50;
    j.record_offset = 0;
    j.record_size = 16 * KiB;
    md.jobs.push_back(j);
    md.next_job_id = 2;
    check_invalid(md, "striped run");
  }
}

TEST_CASE("validate accepts striped boundary values") {
  VgMetadata md = fixture();
  std::vector<StripeLeg> legs;
  for (uint32_t i = 0; i < 80; ++i) legs.push_back({0, 20 + i});  // pv0 PE 20-99
  for (uint32_t i = 0; i < 48; ++i) legs.push_back({2, 10 + i});  // pv2 PE 10-57
  REQUIRE(legs.size() == kMaxStripes);
  md.lvs[0].map.append_run(striped(kMaxStripes, kMinStripeSize, legs));        // the most legs, the smallest chunks
  md.lvs[0].map.append_run(striped(2, md.extent_size, {{1, 60}, {2, 60}}));    // chunks of a whole extent
  md.lvs[1].uid = kMaxOwnerId;
  md.lvs[1].gid = 0;
  Status s = md.validate();
  CHECK_MESSAGE(s.ok(), s.message());
}

TEST_CASE("the YAML text round-trips stripes, hidden LVs, owners and kept keys") {
  VgMetadata md = fixture();
  md.kept = {{"status", "[\"RESIZEABLE\", \"READ\", \"WRITE\"]"}, {"max_lv", "0"}};
  md.pvs[1].kept = {{"device", "\"/dev/sdb\""}, {"latin1", std::string("caf\xe9")}};
  md.lvs[0].kept = {{"creation_host", "\"host\""}};
  MapRun kept_run{0, 2, 2, 70};
  kept_run.kept = {{"reshape_count", "0"}};
  md.lvs[0].map.append_run(kept_run);
  md.lvs[0].map.append(2, 72, 2);  // contiguous with the run above, kept apart by its keys
  REQUIRE(md.validate().ok());
  const std::string text = encode_metadata(md);
  CAPTURE(text);
  CHECK(text.find("10-39 striped 65536 pv0 10-19 pv1 0-9 pv2 0-9") != std::string::npos);
  CHECK(text.find("hidden: true") != std::string::npos);
  Result<VgMetadata> back = decode_metadata(text, "test");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->kept == md.kept);
  CHECK(back->pvs[1].kept == md.pvs[1].kept);
  REQUIRE(back->lvs.size() == 2);
  CHECK(back->lvs[0].kept == md.lvs[0].kept);
  CHECK(back->lvs[0].map == md.lvs[0].map);
  CHECK(back->lvs[0].map.runs().size() == 4);
  CHECK_FALSE(back->lvs[0].hidden);
  CHECK_FALSE(back->lvs[0].uid);
  CHECK(back->lvs[1].hidden);
  CHECK(back->lvs[1].uid == 1000u);
  CHECK(back->lvs[1].gid == 100u);
  CHECK(encode_metadata(*back) == text);
}

TEST_CASE("texts without the new keys decode as before, and such metadata encodes without them") {
  VgMetadata md = fixture();
  md.lvs.pop_back();
  md.lvs[0].map.truncate(10);  // linear only
  const std::string text = encode_metadata(md);
  for (const char* key : {"kept:", "hidden:", " uid:", " gid:", " striped ", "run_kept:"}) {
    CAPTURE(key);
    CHECK(text.find(key) == std::string::npos);
  }
  // A text as vgfs wrote it before these keys existed.
  const std::string old = R"(vg: {name: vg0, uuid: 3f0d2a57-4a4b-4bd0-9a0e-0a4d5a8b1c11, extent_size: 4194304, region_size: 262144, seqno: 7, next_job_id: 1}
pvs:
  - {name: pv0, uuid: 7c2b0d6e-38f1-4c43-a7a1-2e85b0f3c9a2, path: "/srv/pv0.img", pe_start: 13631488, pe_count: 1020}
lvs:
  - name: lv_other
    uuid: 0e9b1d92-6d0e-4e43-9c55-8e3c1c0a5d71
    mode: "0640"
    extents: |
      0-499 pv0 500-999
      500-502 pv0 100-102
)";
  Result<VgMetadata> got = decode_metadata(old, "old");
  REQUIRE_MESSAGE(got.ok(), got.status().message());
  const LvInfo& lv = got->lvs[0];
  CHECK_FALSE(lv.hidden);
  CHECK_FALSE(lv.uid);
  CHECK_FALSE(lv.gid);
  CHECK(lv.kept.empty());
  CHECK(got->kept.empty());
  REQUIRE(lv.map.runs().size() == 2);
  CHECK(lv.map.runs()[0] == MapRun{0, 500, 0, 500});
  CHECK(lv.map.runs()[1] == MapRun{500, 3, 0, 100});
}

TEST_CASE("decode refuses malformed striped lines, owners, hidden flags and kept keys") {
  const std::string good = encode_metadata(fixture());
  auto refused = [&](const std::string& from, const std::string& to, const std::string& needle) {
    std::string text = good;
    size_t at = text.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, from);
    text.replace(at, from.size(), to);
    Result<VgMetadata> r = decode_metadata(text, "hostile");
    CAPTURE(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK(r.status().message().find("hostile") == 0);
    CHECK_MESSAGE(r.status().message().find(needle) != std::string::npos, r.status().message());
  };
  const std::string line = "10-39 striped 65536 pv0 10-19 pv1 0-9 pv2 0-9";
  SUBCASE("leg of the wrong length") { refused(line, "10-39 striped 65536 pv0 10-19 pv1 0-8 pv2 0-9", "not 10 extents"); }
  SUBCASE("count not a multiple of legs") { refused(line, "10-38 striped 65536 pv0 10-19 pv1 0-9 pv2 0-9", "whole number"); }
  SUBCASE("stripe size not a number") { refused(line, "10-39 striped 64k pv0 10-19 pv1 0-9 pv2 0-9", "stripe size"); }
  SUBCASE("stripe size not a power of two") { refused(line, "10-39 striped 65535 pv0 10-19 pv1 0-9 pv2 0-9", "stripe size"); }
  SUBCASE("leg without a PE range") { refused(line, "10-39 striped 65536 pv0 10-19 pv1 0-9 pv2", "is not"); }
  SUBCASE("unknown keyword") { refused(line, "10-39 stripey 65536 pv0 10-19 pv1 0-9 pv2 0-9", "is not"); }
  SUBCASE("a single leg") { refused(line, "10-39 striped 65536 pv0 10-39", "is not"); }
  SUBCASE("unknown PV in a leg") { refused(line, "10-39 striped 65536 pv0 10-19 pvx 0-9 pv2 0-9", "unknown PV"); }
  SUBCASE("doubled blank") { refused(line, "10-39 striped 65536 pv0 10-19  pv1 0-9 pv2 0-9", "is not"); }
  SUBCASE("uid not a number") { refused("uid: 1000", "uid: root", "uid"); }
  SUBCASE("uid -1") { refused("uid: 1000", "uid: 4294967295", "not an owner id"); }
  SUBCASE("uid past 32 bits") { refused("uid: 1000", "uid: 4294967296", "not an owner id"); }
  SUBCASE("hidden not a boolean") { refused("hidden: true", "hidden: yes", "hidden"); }
  SUBCASE("kept not a mapping") { refused("hidden: true", "hidden: true\n    kept: [a, b]", "not a mapping"); }
  SUBCASE("kept key repeated") { refused("hidden: true", "hidden: true\n    kept: {a: \"1\", a: \"2\"}", "repeats key"); }
  SUBCASE("kept value not a string") { refused("hidden: true", "hidden: true\n    kept: {a: [1]}", "other than strings"); }
  SUBCASE("kept key not a key name") { refused("hidden: true", "hidden: true\n    kept: {\"a b\": \"1\"}", "not a key name"); }
  SUBCASE("run_kept naming no run start") {
    refused("hidden: true", "hidden: true\n    run_kept: [{le: 1, kept: {a: \"1\"}}]", "where no run starts");
  }
  SUBCASE("run_kept keeping nothing") { refused("hidden: true", "hidden: true\n    run_kept: [{le: 0}]", "keeps no keys"); }
  SUBCASE("unknown key at the top of an LV is still an error") { refused("hidden: true", "hidden: true\n    bogus: 1", "unknown key"); }
}
