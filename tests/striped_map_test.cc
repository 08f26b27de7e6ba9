// Unit tests of VolumeSet::map() on striped runs (include/vgfs/volume.h,
// docs/format.md "Striped segments"): every piece against a reference that
// applies LVM2's formula byte by byte to the metadata, the kMaxPieces bound,
// data written through the volume found where LVM2 would look for it, and
// hidden LVs and owners as the volume publishes them.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/volume.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

constexpr uint64_t kEs = 64 * KiB;

const char* kConfig = R"(vg:
  name: vgst
  extent_size: 64KiB
  region_size: 64KiB
pvs:
  - {name: pv0, path: pv0.img, size: 32MiB}
  - {name: pv1, path: pv1.img, size: 32MiB}
  - {name: pv2, path: pv2.img, size: 32MiB}
lvs:
  - {name: lin, size: 128KiB}
)";

MapRun striped(uint64_t count, uint64_t stripe_size, std::vector<StripeLeg> legs) {
  MapRun r;
  r.count = count;
  r.pv = legs[0].pv;
  r.pe = legs[0].pe;
  r.stripe_size = stripe_size;
  r.more_legs.assign(legs.begin() + 1, legs.end());
  return r;
}

// LV "st", 43 extents: LE 0-1 linear on pv2 PE 100-101; LE 2-13 over 3
// legs in 16 KiB chunks; LE 14-33 over 2 legs in 4 KiB chunks (the
// smallest); LE 34-41 over 4 legs (two on pv0) in 64 KiB chunks (one
// extent); LE 42 linear on pv1 PE 200. Plus "ghost", hidden, owned by 4242:77.
struct Fixture {
  TempDir dir;
  std::unique_ptr<VgStore> store;

  Fixture() {
    store = vgfs_test::create_and_open(dir, kConfig);
    VgMetadata md = store->metadata();
    LvInfo st;
    st.name = "st";
    st.uuid = new_uuid();
    st.map.append(2, 100, 2);
    st.map.append_run(striped(12, 16 * KiB, {{0, 50}, {1, 50}, {2, 50}}));
    st.map.append_run(striped(20, 4 * KiB, {{1, 120}, {0, 130}}));
    st.map.append_run(striped(8, 64 * KiB, {{0, 10}, {1, 10}, {0, 20}, {2, 10}}));
    st.map.append(1, 200, 1);
    md.lvs.push_back(st);
    LvInfo ghost;
    ghost.name = "ghost";
    ghost.uuid = new_uuid();
    ghost.hidden = true;
    ghost.uid = 4242;
    ghost.gid = 77;
    ghost.mode = 0640;
    ghost.map.append(2, 250, 1);
    md.lvs.push_back(ghost);
    Status s = store->commit(std::move(md));
    REQUIRE_MESSAGE(s.ok(), s.message());
  }
  uint32_t lv(const char* name) const { return static_cast<uint32_t>(store->metadata().find_lv(name)); }
};

struct Place {
  uint32_t pv;
  uint64_t offset;
  bool operator==(const Place&) const = default;
};

// LVM2-FORMAT's formula, applied to LV byte x straight from the metadata:
// the run by a linear scan, then chunk = x / stripe_size, leg chunk % k,
// leg byte (chunk / k) * stripe_size + x % stripe_size.
Place reference(const VgMetadata& md, const LvInfo& lv, uint64_t x) {
  for (const MapRun& r : lv.map.runs()) {
    const uint64_t begin = r.le * md.extent_size, end = r.le_end() * md.extent_size;
    if (x < begin || x >= end) continue;
    const uint64_t rel = x - begin;
    if (r.more_legs.empty()) return {r.pv, md.pvs[r.pv].pe_start + r.pe * md.extent_size + rel};
    const uint64_t k = r.more_legs.size() + 1;
    const uint64_t chunk = rel / r.stripe_size;
    const uint64_t leg = chunk % k;
    const uint32_t pv = leg == 0 ? r.pv : r.more_legs[leg - 1].pv;
    const uint64_t pe = leg == 0 ? r.pe : r.more_legs[leg - 1].pe;
    return {pv, md.pvs[pv].pe_start + pe * md.extent_size + (chunk / k) * r.stripe_size + rel % r.stripe_size};
  }
  FAIL("byte past the LV");
  return {};
}

uint32_t pv_of(const VgStore& store, const PvPiece& p) {
  for (uint32_t i = 0; i < store.pv_count(); ++i)
    if (&store.pv(i) == p.dev) return i;
  FAIL("piece on a device that is no PV of the store");
  return UINT32_MAX;
}

// map() of [offset, offset+length) against the reference every 512 bytes
// and at each piece's last byte (a piece spanning two chunks is caught: the
// chunks are at least 4 KiB).
size_t check_map(const Fixture& f, VolumeSet& vs, uint32_t lv, uint64_t offset, uint64_t length) {
  CAPTURE(offset);
  CAPTURE(length);
  const VgMetadata& md = f.store->metadata();
  PvPiece pieces[kMaxPieces];
  const size_t n = vs.map(lv, offset, length, pieces);
  REQUIRE(n <= kMaxPieces);
  const uint64_t size = vs.lv_size(lv);
  uint64_t at = offset, total = 0;
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const PvPiece& p = pieces[i];
    REQUIRE(p.length > 0);
    const uint32_t pv = pv_of(*f.store, p);
    for (uint64_t k = 0; k < p.length; k += 512) REQUIRE(reference(md, md.lvs[lv], at + k) == Place{pv, p.offset + k});
    REQUIRE(reference(md, md.lvs[lv], at + p.length - 1) == Place{pv, p.offset + p.length - 1});
    at += p.length;
    total += p.length;
  }
  CHECK(total == (offset >= size ? 0 : std::min<uint64_t>({length, size - offset, kMaxIoSize})));
  return n;
}

}  // namespace

TEST_CASE("map() on striped runs follows LVM2's formula") {
  Fixture f;
  VolumeSet vs(*f.store);
  const uint32_t st = f.lv("st");
  REQUIRE(vs.lv_size(st) == 43 * kEs);
  SUBCASE("chunk by chunk at the run boundaries") {
    PvPiece p[kMaxPieces];
    // LE 2 starts the 16 KiB run: chunk 0 on pv0 PE 50, chunk 1 on pv1 PE 50...
    REQUIRE(vs.map(st, 2 * kEs, 48 * KiB, p) == 3);
    const VgMetadata& md = f.store->metadata();
    CHECK(pv_of(*f.store, p[0]) == 0);
    CHECK(p[0].offset == md.pvs[0].pe_start + 50 * kEs);
    CHECK(pv_of(*f.store, p[1]) == 1);
    CHECK(p[1].offset == md.pvs[1].pe_start + 50 * kEs);
    CHECK(pv_of(*f.store, p[2]) == 2);
    CHECK(p[2].offset == md.pvs[2].pe_start + 50 * kEs);
    // ...and chunk 3 back on pv0, right after chunk 0.
    REQUIRE(vs.map(st, 2 * kEs + 48 * KiB + 100, 10, p) == 1);
    CHECK(pv_of(*f.store, p[0]) == 0);
    CHECK(p[0].offset == md.pvs[0].pe_start + 50 * kEs + 16 * KiB + 100);
    // The last byte of the linear head and the first of the striped run.
    REQUIRE(vs.map(st, 2 * kEs - 1, 2, p) == 2);
    CHECK(p[0].length == 1);
    CHECK(p[1].offset == md.pvs[0].pe_start + 50 * kEs);
  }
  SUBCASE("every offset and many lengths against the reference") {
    std::mt19937_64 rng(7);
    for (uint64_t off = 0; off <= 44 * kEs; off += 4 * KiB - 1) check_map(f, vs, st, off, 1 + rng() % (300 * KiB));
    for (int i = 0; i < 300; ++i) check_map(f, vs, st, rng() % (44 * kEs), 1 + rng() % kMaxIoSize);
  }
  SUBCASE("a 1 MiB request over 4 KiB chunks fills kMaxPieces exactly") {
    // LE 14-33 is 1.25 MiB in 4 KiB chunks; 1 MiB from an unaligned offset
    // touches 257 chunks, the bound.
    CHECK(kMaxPieces == 257);
    CHECK(check_map(f, vs, st, 14 * kEs + 100, kMaxIoSize) == kMaxPieces);
    CHECK(check_map(f, vs, st, 14 * kEs, kMaxIoSize) == kMaxPieces - 1);
    // Over 64 KiB chunks (LE 34-41 and the linear tail), 1 MiB is at most 17.
    CHECK(check_map(f, vs, st, 34 * kEs - kEs / 2, kMaxIoSize) <= kMaxIoSize / (64 * KiB) + 1);
  }
}

TEST_CASE("data written to a striped LV lands where LVM2 reads it") {
  Fixture f;
  VolumeSet vs(*f.store);
  const uint32_t st = f.lv("st");
  std::mt19937_64 rng(11);
  std::string data(43 * kEs, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  // Unaligned pieces, so writes split mid-chunk.
  for (uint64_t at = 0; at < data.size();) {
    const uint64_t n = std::min<uint64_t>(data.size() - at, 1 + rng() % (200 * KiB));
    Result<size_t> w = vs.write(st, at, data.data() + at, n);
    REQUIRE(w.ok());
    REQUIRE(*w == n);
    at += n;
  }
  REQUIRE(vs.flush().ok());
  std::string back(data.size(), '\0');
  Result<size_t> r = vs.read(st, 0, back.data(), back.size());
  REQUIRE(r.ok());
  CHECK(*r == data.size());
  CHECK(back == data);
  // Straight from the PV files, 4 KiB at a time (every chunk is a multiple).
  const VgMetadata& md = f.store->metadata();
  for (uint64_t x = 0; x < data.size(); x += 4 * KiB) {
    const Place p = reference(md, md.lvs[st], x);
    REQUIRE(vgfs_test::pread_file(f.store->pv(p.pv).path(), p.offset, 4 * KiB) == data.substr(x, 4 * KiB));
  }
}

TEST_CASE("hidden LVs are no LV files; owners are published") {
  Fixture f;
  VolumeSet vs(*f.store);
  std::vector<std::string> names;
  for (const auto& [name, slot] : vs.slots()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"lin", "st"});
  std::optional<uint32_t> ghost = vs.slot("ghost");
  REQUIRE(ghost);  // the manager still finds it (to move its extents)
  CHECK(vs.lv_hidden(*ghost));
  CHECK(vs.lv_uid(*ghost) == 4242u);
  CHECK(vs.lv_gid(*ghost) == 77u);
  CHECK(vs.lv_mode(*ghost) == 0640u);
  CHECK_FALSE(vs.lv_hidden(*vs.slot("st")));
  CHECK_FALSE(vs.lv_uid(*vs.slot("st")));
  // Its extents are used: pv2 PE 250 is not free.
  for (const PvRun& r : f.store->metadata().pv_map(2))
    if (r.pe <= 250 && 250 < r.pe_end()) CHECK_FALSE(r.free());
}
