// Unit tests of allocate_extents (include/vgfs/metadata.h): best fit for one
// contiguous run, fewest runs (largest first) otherwise, candidate PVs, ENOSPC.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "printers.h"
#include "vgfs/metadata.h"

using namespace vgfs;

namespace {

struct Used {
  uint64_t pe;
  uint64_t count;
};

// A VG with one PV per entry of `pvs` (pe_count, used ranges); each PV's used
// ranges belong to an LV "fill<i>".
VgMetadata make_vg(const std::vector<std::pair<uint64_t, std::vector<Used>>>& pvs) {
  VgMetadata md;
  md.name = "vga";
  md.uuid = new_uuid();
  md.extent_size = 4 * MiB;
  md.region_size = 256 * KiB;
  md.seqno = 1;
  for (size_t i = 0; i < pvs.size(); ++i) {
    PvInfo pv;
    pv.name = "pv" + std::to_string(i);
    pv.uuid = new_uuid();
    pv.path = "/dev/fake" + std::to_string(i);
    pv.pe_start = 1 * MiB;
    pv.pe_count = pvs[i].first;
    md.pvs.push_back(pv);
    if (pvs[i].second.empty()) continue;
    LvInfo lv;
    lv.name = "fill" + std::to_string(i);
    lv.uuid = new_uuid();
    for (const Used& u : pvs[i].second) lv.map.append(static_cast<uint32_t>(i), u.pe, u.count);
    md.lvs.push_back(lv);
  }
  Status s = md.validate();
  REQUIRE_MESSAGE(s.ok(), s.message());
  return md;
}

// Checks the shape every successful allocation has: runs start at first_le,
// are LE-contiguous, sum to `extents`, use only candidate PVs, and adding
// them as a new LV keeps the metadata valid (only free PEs were used).
void check_allocation(const VgMetadata& md, const std::vector<MapRun>& runs, uint64_t extents,
                      std::span<const uint32_t> candidates, uint64_t first_le) {
  uint64_t le = first_le;
  for (const MapRun& r : runs) {
    CHECK(r.le == le);
    CHECK(r.count >= 1);
    le += r.count;
    if (!candidates.empty()) CHECK(std::find(candidates.begin(), candidates.end(), r.pv) != candidates.end());
  }
  CHECK(le - first_le == extents);

  VgMetadata next = md;
  LvInfo lv;
  lv.name = "newlv";
  lv.uuid = new_uuid();
  for (const MapRun& r : runs) lv.map.append(r.pv, r.pe, r.count);
  next.lvs.push_back(lv);
  Status s = next.validate();
  CHECK_MESSAGE(s.ok(), s.message());
}

using Piece = std::tuple<uint32_t, uint64_t, uint64_t>;  // pv, pe, count

std::vector<Piece> pieces(const std::vector<MapRun>& runs) {
  std::vector<Piece> out;
  for (const MapRun& r : runs) out.emplace_back(r.pv, r.pe, r.count);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<MapRun>> alloc(const VgMetadata& md, uint64_t n, std::vector<uint32_t> cand = {},
                                  uint64_t first_le = 0) {
  Result<std::vector<MapRun>> r = allocate_extents(md, n, cand, first_le);
  if (r.ok()) check_allocation(md, *r, n, cand, first_le);
  return r;
}

// pv0: free PE 10-29 (20) and 40-44 (5); pv1: free PE 92-99 (8). 33 free.
VgMetadata vg_a() {
  return make_vg({{100, {{0, 10}, {30, 10}, {45, 55}}}, {100, {{0, 92}}}});
}

}  // namespace

TEST_CASE("single contiguous run: the smallest free run that fits") {
  VgMetadata md = vg_a();
  REQUIRE(md.total_free_extents() == 33);
  struct Case {
    uint64_t n;
    MapRun expect;
  };
  const Case cases[] = {
      {1, {0, 1, 0, 40}},  {5, {0, 5, 0, 40}},  {6, {0, 6, 1, 92}},
      {8, {0, 8, 1, 92}},  {9, {0, 9, 0, 10}},  {20, {0, 20, 0, 10}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.n);
    Result<std::vector<MapRun>> r = alloc(md, c.n);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0] == c.expect);
  }
}

TEST_CASE("best fit beats lower PV; ties go to the lowest PV, then PE") {
  SUBCASE("equal sizes on two PVs") {
    // pv0: free 10-19 and 70-79; pv1: free 50-59.
    VgMetadata md = make_vg({{100, {{0, 10}, {20, 50}, {80, 20}}}, {100, {{0, 50}, {60, 40}}}});
    for (uint64_t n : {1u, 7u, 10u}) {
      CAPTURE(n);
      Result<std::vector<MapRun>> r = alloc(md, n);
      REQUIRE(r.ok());
      REQUIRE(r->size() == 1);
      CHECK((*r)[0] == MapRun{0, n, 0, 10});
    }
    Result<std::vector<MapRun>> only1 = alloc(md, 10, {1});
    REQUIRE(only1.ok());
    REQUIRE(only1->size() == 1);
    CHECK((*only1)[0] == MapRun{0, 10, 1, 50});
  }
  SUBCASE("a smaller fitting run on a later PV wins") {
    // pv0: free 80-91 (12); pv1: free 0-9 (10).
    VgMetadata md = make_vg({{100, {{0, 80}, {92, 8}}}, {100, {{10, 90}}}});
    Result<std::vector<MapRun>> r = alloc(md, 10);
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0] == MapRun{0, 10, 1, 0});
    Result<std::vector<MapRun>> r11 = alloc(md, 11);
    REQUIRE(r11.ok());
    REQUIRE(r11->size() == 1);
    CHECK((*r11)[0] == MapRun{0, 11, 0, 80});
  }
  SUBCASE("an empty PV is one big free run") {
    VgMetadata md = make_vg({{100, {{0, 50}}}, {1000, {}}});
    Result<std::vector<MapRun>> r = alloc(md, 60);
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0] == MapRun{0, 60, 1, 0});
    Result<std::vector<MapRun>> small = alloc(md, 50);
    REQUIRE(small.ok());
    REQUIRE(small->size() == 1);
    CHECK((*small)[0] == MapRun{0, 50, 0, 50});
  }
}

TEST_CASE("no single run fits: fewest runs, largest first") {
  VgMetadata md = vg_a();
  SUBCASE("two whole runs") {
    Result<std::vector<MapRun>> r = alloc(md, 28);
    REQUIRE(r.ok());
    CHECK(r->size() == 2);
    CHECK(pieces(*r) == std::vector<Piece>{{0, 10, 20}, {1, 92, 8}});
    CHECK((*r)[0] == MapRun{0, 20, 0, 10});  // the largest run comes first
  }
  SUBCASE("everything") {
    Result<std::vector<MapRun>> r = alloc(md, 33);
    REQUIRE(r.ok());
    CHECK(r->size() == 3);
    CHECK(pieces(*r) == std::vector<Piece>{{0, 10, 20}, {0, 40, 5}, {1, 92, 8}});
  }
  SUBCASE("largest run plus a piece of another") {
    Result<std::vector<MapRun>> r = alloc(md, 21);
    REQUIRE(r.ok());
    REQUIRE(r->size() == 2);
    std::vector<Piece> p = pieces(*r);
    CHECK(std::find(p.begin(), p.end(), Piece{0, 10, 20}) != p.end());
  }
}

TEST_CASE("fragmented free space") {
  SUBCASE("only single-extent holes") {
    std::vector<Used> used;
    for (uint64_t pe = 0; pe < 200; pe += 2) used.push_back({pe, 1});
    VgMetadata md = make_vg({{200, used}});
    REQUIRE(md.free_extents(0) == 100);
    Result<std::vector<MapRun>> r = alloc(md, 10);
    REQUIRE(r.ok());
    CHECK(r->size() == 10);
    for (const MapRun& run : *r) {
      CHECK(run.count == 1);
      CHECK(run.pe % 2 == 1);
    }
    Result<std::vector<MapRun>> all = alloc(md, 100);
    REQUIRE(all.ok());
    CHECK(all->size() == 100);
    Result<std::vector<MapRun>> too_many = alloc(md, 101);
    CHECK_FALSE(too_many.ok());
    CHECK(too_many.status().code() == ENOSPC);
  }
  SUBCASE("holes plus one larger run on another PV") {
    std::vector<Used> used;
    for (uint64_t pe = 0; pe < 200; pe += 2) used.push_back({pe, 1});
    // pv1: free PE 5-7 only.
    VgMetadata md = make_vg({{200, used}, {50, {{0, 5}, {8, 42}}}});
    Result<std::vector<MapRun>> r = alloc(md, 10);
    REQUIRE(r.ok());
    CHECK(r->size() == 8);
    std::vector<Piece> p = pieces(*r);
    CHECK(std::find(p.begin(), p.end(), Piece{1, 5, 3}) != p.end());
  }
  SUBCASE("mixed run sizes") {
    // pv0: free 0-6 (7) and 20-22 (3); pv1: free 0-2 (3), 10-12 (3), 20-21 (2).
    VgMetadata md = make_vg({{30, {{7, 13}, {23, 7}}}, {30, {{3, 7}, {13, 7}, {22, 8}}}});
    REQUIRE(md.total_free_extents() == 18);
    Result<std::vector<MapRun>> r = alloc(md, 12);
    REQUIRE(r.ok());
    CHECK(r->size() == 3);
    std::vector<Piece> p = pieces(*r);
    CHECK(std::find(p.begin(), p.end(), Piece{0, 0, 7}) != p.end());
    Result<std::vector<MapRun>> r10 = alloc(md, 10);
    REQUIRE(r10.ok());
    CHECK(r10->size() == 2);
    Result<std::vector<MapRun>> all = alloc(md, 18);
    REQUIRE(all.ok());
    CHECK(all->size() == 5);
  }
}

TEST_CASE("candidate PVs restrict placement") {
  VgMetadata md = vg_a();
  SUBCASE("only pv1") {
    Result<std::vector<MapRun>> r = alloc(md, 5, {1});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0] == MapRun{0, 5, 1, 92});
    Result<std::vector<MapRun>> full = alloc(md, 8, {1});
    REQUIRE(full.ok());
    CHECK((*full)[0] == MapRun{0, 8, 1, 92});
  }
  SUBCASE("only pv0") {
    Result<std::vector<MapRun>> r = alloc(md, 6, {0});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0] == MapRun{0, 6, 0, 10});
    Result<std::vector<MapRun>> two = alloc(md, 25, {0});
    REQUIRE(two.ok());
    CHECK(pieces(*two) == std::vector<Piece>{{0, 10, 20}, {0, 40, 5}});
  }
  SUBCASE("ENOSPC on the candidates although other PVs have room") {
    Result<std::vector<MapRun>> r = alloc(md, 9, {1});
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == ENOSPC);
    CHECK_FALSE(r.status().message().empty());
    Result<std::vector<MapRun>> r0 = alloc(md, 26, {0});
    CHECK_FALSE(r0.ok());
    CHECK(r0.status().code() == ENOSPC);
  }
  SUBCASE("both candidates listed") {
    Result<std::vector<MapRun>> r = alloc(md, 33, {0, 1});
    REQUIRE(r.ok());
    CHECK(r->size() == 3);
  }
}

TEST_CASE("ENOSPC when the VG has too few free extents") {
  VgMetadata md = vg_a();
  Result<std::vector<MapRun>> r = alloc(md, 34);
  CHECK_FALSE(r.ok());
  CHECK(r.status().code() == ENOSPC);
  CHECK_FALSE(r.status().message().empty());

  VgMetadata full = make_vg({{10, {{0, 10}}}});
  Result<std::vector<MapRun>> none = alloc(full, 1);
  CHECK_FALSE(none.ok());
  CHECK(none.status().code() == ENOSPC);
}

TEST_CASE("first_le offsets the returned runs") {
  VgMetadata md = vg_a();
  Result<std::vector<MapRun>> r = alloc(md, 6, {}, 100);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 1);
  CHECK((*r)[0] == MapRun{100, 6, 1, 92});

  Result<std::vector<MapRun>> multi = alloc(md, 28, {}, 7);
  REQUIRE(multi.ok());
  REQUIRE(multi->size() == 2);
  CHECK((*multi)[0].le == 7);
  CHECK((*multi)[1].le == 7 + (*multi)[0].count);
  CHECK((*multi)[1].le_end() == 35);
}

TEST_CASE("ties go to the lowest PV whatever the candidate order") {
  // pv0: free 10-19; pv1: free 50-59 (equal sizes).
  VgMetadata md = make_vg({{100, {{0, 10}, {20, 80}}}, {100, {{0, 50}, {60, 40}}}});
  Result<std::vector<MapRun>> r = alloc(md, 10, {1, 0});
  REQUIRE(r.ok());
  REQUIRE(r->size() == 1);
  CHECK((*r)[0] == MapRun{0, 10, 0, 10});
}

TEST_CASE("a PV listed twice among the candidates is not used twice") {
  VgMetadata md = vg_a();
  // pv1 has 8 free extents; listing it twice must not double them.
  Result<std::vector<MapRun>> r = alloc(md, 12, {1, 1});
  CHECK_FALSE(r.ok());
  CHECK(r.status().code() == ENOSPC);
  Result<std::vector<MapRun>> ok = alloc(md, 30, {0, 1, 0});
  REQUIRE(ok.ok());  // 20 + 8 + 2: check_allocation proves no PE is used twice
  CHECK(ok->size() == 3);
}

TEST_CASE("zero extents allocate no run") {
  VgMetadata md = vg_a();
  Result<std::vector<MapRun>> r = allocate_extents(md, 0, {}, 0);
  if (r.ok()) {
    for (const MapRun& run : *r) CHECK(run.count >= 1);
    CHECK(r->empty());
  }
}
