// Unit tests of ExtentMap (include/vgfs/extent_map.h): runs, merging, find,
// truncate and remap, checked against a per-extent brute-force model.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "printers.h"
#include "vgfs/extent_map.h"

using namespace vgfs;

namespace {

struct Pe {
  uint32_t pv;
  uint64_t pe;
  bool operator==(const Pe&) const = default;
};

// The map's invariant from the header: sorted, gap-free from LE 0, count >= 1,
// and no two neighbours contiguous on the same PV.
void check_invariant(const ExtentMap& m) {
  uint64_t next = 0;
  const auto& runs = m.runs();
  for (size_t i = 0; i < runs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(runs[i].le == next);
    REQUIRE(runs[i].count >= 1);
    next = runs[i].le_end();
    if (i > 0) {
      bool mergeable = runs[i - 1].pv == runs[i].pv && runs[i - 1].pe + runs[i - 1].count == runs[i].pe;
      REQUIRE_FALSE(mergeable);
    }
  }
  REQUIRE(m.extent_count() == next);
  REQUIRE(m.empty() == runs.empty());
}

// Expands the map into one entry per LE.
std::vector<Pe> expand(const ExtentMap& m) {
  std::vector<Pe> out;
  for (const MapRun& r : m.runs())
    for (uint64_t i = 0; i < r.count; ++i) out.push_back({r.pv, r.pe + i});
  return out;
}

// Builds the fewest-runs form of a per-LE model via append.
ExtentMap from_model(const std::vector<Pe>& model) {
  ExtentMap m;
  for (const Pe& p : model) m.append(p.pv, p.pe, 1);
  return m;
}

void check_find_matches(const ExtentMap& m, const std::vector<Pe>& model, uint64_t le) {
  CAPTURE(le);
  const MapRun* r = m.find(le);
  if (le >= model.size()) {
    CHECK(r == nullptr);
    return;
  }
  REQUIRE(r != nullptr);
  REQUIRE(r->le <= le);
  REQUIRE(le < r->le_end());
  CHECK(r->pv == model[le].pv);
  CHECK(r->pe + (le - r->le) == model[le].pe);
}

}  // namespace

TEST_CASE("empty map") {
  ExtentMap m;
  CHECK(m.empty());
  CHECK(m.extent_count() == 0);
  CHECK(m.runs().empty());
  CHECK(m.find(0) == nullptr);
  CHECK(m.find(12345) == nullptr);
}

TEST_CASE("append merges contiguous runs on the same PV") {
  ExtentMap m;
  m.append(0, 10, 5);
  m.append(0, 15, 3);
  REQUIRE(m.runs().size() == 1);
  CHECK(m.runs()[0] == MapRun{0, 8, 0, 10});
  m.append(0, 18, 1);
  REQUIRE(m.runs().size() == 1);
  CHECK(m.runs()[0] == MapRun{0, 9, 0, 10});
  CHECK(m.extent_count() == 9);
  check_invariant(m);
}

TEST_CASE("append does not merge across PVs, gaps or backwards") {
  SUBCASE("different PV, same PE numbers") {
    ExtentMap m;
    m.append(0, 10, 5);
    m.append(1, 15, 3);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[0] == MapRun{0, 5, 0, 10});
    CHECK(m.runs()[1] == MapRun{5, 3, 1, 15});
    check_invariant(m);
  }
  SUBCASE("gap on the same PV") {
    ExtentMap m;
    m.append(0, 0, 5);
    m.append(0, 6, 5);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[1] == MapRun{5, 5, 0, 6});
    CHECK(m.extent_count() == 10);
  }
  SUBCASE("backwards on the same PV") {
    ExtentMap m;
    m.append(0, 10, 5);
    m.append(0, 5, 5);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[1] == MapRun{5, 5, 0, 5});
  }
  SUBCASE("return to a PV after another one") {
    ExtentMap m;
    m.append(0, 0, 2);
    m.append(1, 2, 2);
    m.append(0, 2, 2);  // continues run 0 on pv0 physically, but not logically adjacent
    REQUIRE(m.runs().size() == 3);
    CHECK(m.runs()[2] == MapRun{4, 2, 0, 2});
    check_invariant(m);
  }
}

TEST_CASE("LE→PE map (docs/records.md): LE 0-499 on pv0 PE 500-999, LE 500-502 on pv1 PE 100-102") {
  ExtentMap m;
  for (uint64_t le = 0; le < 500; ++le) m.append(0, 500 + le, 1);
  for (uint64_t le = 0; le < 3; ++le) m.append(1, 100 + le, 1);
  REQUIRE(m.runs().size() == 2);
  CHECK(m.runs()[0] == MapRun{0, 500, 0, 500});
  CHECK(m.runs()[1] == MapRun{500, 3, 1, 100});
  CHECK(m.extent_count() == 503);
  CHECK(m.find(0) == &m.runs()[0]);
  CHECK(m.find(499) == &m.runs()[0]);
  CHECK(m.find(500) == &m.runs()[1]);
  CHECK(m.find(502) == &m.runs()[1]);
  CHECK(m.find(503) == nullptr);
}

TEST_CASE("find on 10,000 runs alternating PVs matches a brute-force model") {
  std::mt19937_64 rng(42);
  std::vector<Pe> model;
  ExtentMap m;
  uint64_t next_pe[2] = {0, 0};
  std::vector<uint64_t> boundaries;
  for (int i = 0; i < 10000; ++i) {
    uint32_t pv = static_cast<uint32_t>(i % 2);
    uint64_t count = 1 + rng() % 5;
    uint64_t pe = next_pe[pv] + rng() % 3;
    boundaries.push_back(model.size());
    m.append(pv, pe, count);
    for (uint64_t k = 0; k < count; ++k) model.push_back({pv, pe + k});
    next_pe[pv] = pe + count;
  }
  REQUIRE(m.runs().size() == 10000);
  REQUIRE(m.extent_count() == model.size());
  check_invariant(m);
  CHECK(expand(m) == model);

  for (size_t i = 0; i < boundaries.size(); ++i) {
    uint64_t b = boundaries[i];
    check_find_matches(m, model, b);
    CHECK(m.find(b) == &m.runs()[i]);
    if (b > 0) {
      check_find_matches(m, model, b - 1);
      CHECK(m.find(b - 1) == &m.runs()[i - 1]);
    }
  }
  check_find_matches(m, model, model.size() - 1);
  check_find_matches(m, model, model.size());
  check_find_matches(m, model, model.size() + 1);
  CHECK(m.find(UINT64_MAX) == nullptr);
  for (int i = 0; i < 20000; ++i) check_find_matches(m, model, rng() % (model.size() + 10));
}

TEST_CASE("truncate") {
  auto build = [] {
    ExtentMap m;
    m.append(0, 0, 10);    // LE 0-9
    m.append(1, 50, 10);   // LE 10-19
    m.append(0, 100, 10);  // LE 20-29
    return m;
  };
  SUBCASE("inside a run") {
    ExtentMap m = build();
    m.truncate(15);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[1] == MapRun{10, 5, 1, 50});
    CHECK(m.extent_count() == 15);
    CHECK(m.find(14) != nullptr);
    CHECK(m.find(15) == nullptr);
    check_invariant(m);
  }
  SUBCASE("at a run boundary") {
    ExtentMap m = build();
    m.truncate(20);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[1] == MapRun{10, 10, 1, 50});
    CHECK(m.extent_count() == 20);
  }
  SUBCASE("to one extent") {
    ExtentMap m = build();
    m.truncate(1);
    REQUIRE(m.runs().size() == 1);
    CHECK(m.runs()[0] == MapRun{0, 1, 0, 0});
  }
  SUBCASE("to zero") {
    ExtentMap m = build();
    m.truncate(0);
    CHECK(m.empty());
    CHECK(m.extent_count() == 0);
    CHECK(m.find(0) == nullptr);
  }
  SUBCASE("at or above the end changes nothing") {
    ExtentMap m = build();
    ExtentMap copy = m;
    m.truncate(30);
    CHECK(m == copy);
    m.truncate(1000);
    CHECK(m == copy);
  }
  SUBCASE("append after truncate merges with the cut run") {
    ExtentMap m = build();
    m.truncate(15);
    m.append(1, 55, 2);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[1] == MapRun{10, 7, 1, 50});
  }
}

TEST_CASE("remap splits and re-merges runs") {
  SUBCASE("middle of a run") {
    ExtentMap m;
    m.append(0, 0, 100);
    m.remap(40, 10, 1, 500);
    REQUIRE(m.runs().size() == 3);
    CHECK(m.runs()[0] == MapRun{0, 40, 0, 0});
    CHECK(m.runs()[1] == MapRun{40, 10, 1, 500});
    CHECK(m.runs()[2] == MapRun{50, 50, 0, 50});
    CHECK(m.extent_count() == 100);
    check_invariant(m);
  }
  SUBCASE("start of a run") {
    ExtentMap m;
    m.append(0, 0, 100);
    m.remap(0, 10, 1, 500);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[0] == MapRun{0, 10, 1, 500});
    CHECK(m.runs()[1] == MapRun{10, 90, 0, 10});
  }
  SUBCASE("end of a run") {
    ExtentMap m;
    m.append(0, 0, 100);
    m.remap(90, 10, 1, 500);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[0] == MapRun{0, 90, 0, 0});
    CHECK(m.runs()[1] == MapRun{90, 10, 1, 500});
  }
  SUBCASE("a whole run among others") {
    ExtentMap m;
    m.append(0, 0, 10);
    m.append(1, 0, 10);
    m.append(0, 100, 10);
    m.remap(10, 10, 2, 7);
    REQUIRE(m.runs().size() == 3);
    CHECK(m.runs()[1] == MapRun{10, 10, 2, 7});
  }
  SUBCASE("the whole map") {
    ExtentMap m;
    m.append(0, 0, 10);
    m.append(1, 0, 10);
    m.remap(0, 20, 2, 1000);
    REQUIRE(m.runs().size() == 1);
    CHECK(m.runs()[0] == MapRun{0, 20, 2, 1000});
  }
  SUBCASE("across several runs") {
    ExtentMap m;
    m.append(0, 0, 10);    // LE 0-9
    m.append(1, 0, 10);    // LE 10-19
    m.append(0, 100, 10);  // LE 20-29
    m.remap(5, 20, 1, 300);
    REQUIRE(m.runs().size() == 3);
    CHECK(m.runs()[0] == MapRun{0, 5, 0, 0});
    CHECK(m.runs()[1] == MapRun{5, 20, 1, 300});
    CHECK(m.runs()[2] == MapRun{25, 5, 0, 105});
    check_invariant(m);
  }
  SUBCASE("re-merges both neighbours") {
    ExtentMap m;
    m.append(0, 0, 10);
    m.append(1, 0, 10);
    m.append(0, 20, 10);
    m.remap(10, 10, 0, 10);
    REQUIRE(m.runs().size() == 1);
    CHECK(m.runs()[0] == MapRun{0, 30, 0, 0});
  }
  SUBCASE("re-merges the left neighbour only") {
    ExtentMap m;
    m.append(0, 0, 10);
    m.append(1, 50, 10);
    m.remap(10, 5, 0, 10);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[0] == MapRun{0, 15, 0, 0});
    CHECK(m.runs()[1] == MapRun{15, 5, 1, 55});
    check_invariant(m);
  }
  SUBCASE("re-merges the right neighbour only") {
    ExtentMap m;
    m.append(1, 50, 10);
    m.append(0, 10, 10);
    m.remap(5, 5, 0, 5);
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[0] == MapRun{0, 5, 1, 50});
    CHECK(m.runs()[1] == MapRun{5, 15, 0, 5});
    check_invariant(m);
  }
  SUBCASE("remap onto the same place changes nothing") {
    ExtentMap m;
    m.append(0, 0, 10);
    m.append(1, 50, 10);
    m.remap(3, 12, 0, 3);  // LE 3-9 already there; LE 10-14 move to pv0 PE 10-14
    REQUIRE(m.runs().size() == 2);
    CHECK(m.runs()[0] == MapRun{0, 15, 0, 0});
    CHECK(m.runs()[1] == MapRun{15, 5, 1, 55});
    m.remap(0, 15, 0, 0);
    CHECK(m.runs()[0] == MapRun{0, 15, 0, 0});
    CHECK(m.runs().size() == 2);
  }
}

TEST_CASE("random remaps match a brute-force model") {
  std::mt19937_64 rng(7);
  std::vector<Pe> model;
  for (uint64_t le = 0; le < 2000; ++le) model.push_back({static_cast<uint32_t>((le / 37) % 3), le * 2});
  ExtentMap m = from_model(model);
  check_invariant(m);
  for (int iter = 0; iter < 1000; ++iter) {
    CAPTURE(iter);
    uint64_t le = rng() % model.size();
    uint64_t count = 1 + rng() % std::min<uint64_t>(60, model.size() - le);
    uint32_t pv = static_cast<uint32_t>(rng() % 3);
    uint64_t pe = rng() % 5000;
    if (iter % 5 == 0 && le > 0) {
      // Continue the extent just before: must merge with it.
      pv = model[le - 1].pv;
      pe = model[le - 1].pe + 1;
    }
    m.remap(le, count, pv, pe);
    for (uint64_t k = 0; k < count; ++k) model[le + k] = {pv, pe + k};
    check_invariant(m);
    REQUIRE(expand(m) == model);
    REQUIRE(m.runs() == from_model(model).runs());  // fewest runs
  }
  for (uint64_t le = 0; le <= model.size(); ++le) check_find_matches(m, model, le);
}

TEST_CASE("extent_count follows append, truncate and remap") {
  ExtentMap m;
  CHECK(m.extent_count() == 0);
  m.append(0, 0, 3);
  CHECK(m.extent_count() == 3);
  m.append(1, 0, 4);
  CHECK(m.extent_count() == 7);
  m.append(1, 4, 1);
  CHECK(m.extent_count() == 8);
  m.remap(2, 4, 2, 0);
  CHECK(m.extent_count() == 8);
  m.truncate(5);
  CHECK(m.extent_count() == 5);
  ExtentMap other;
  other.append(0, 0, 2);
  other.append(2, 0, 3);
  CHECK(m == other);
}
