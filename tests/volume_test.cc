// Unit tests of VolumeSet (include/vgfs/volume.h): the LV→PV mapping, reads
// and writes against an in-memory model and the PV files, and discard.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vgfs/config.h"
#include "vgfs/transfer.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

constexpr uint64_t kEs = 64 * KiB;

// lv: LE 0-1 -> pv0 PE 5-6, LE 2-4 -> pv1 PE 0-2, LE 5 -> pv0 PE 20,
// LE 6-7 -> pv1 PE 10-11 (8 extents, 512 KiB). other: 2 extents, allocated.
const char* kConfig = R"(vg:
  name: vgv
  extent_size: 64KiB
  region_size: 64KiB
pvs:
  - {name: pv0, path: pv0.img, size: 32MiB}
  - {name: pv1, path: pv1.img, size: 32MiB}
lvs:
  - name: lv
    extents:
      - {le: 0-1, pv: pv0, pe: 5-6}
      - {le: 2-4, pv: pv1, pe: 0-2}
      - {le: 5, pv: pv0, pe: 20}
      - {le: 6-7, pv: pv1, pe: 10-11}
  - {name: other, size: 128KiB}
)";

struct Fixture {
  TempDir dir;
  VgConfig cfg;
  std::unique_ptr<VgStore> store;
  uint32_t lv = 0;
  uint32_t other = 0;
  std::vector<MapRun> runs;

  Fixture() {
    std::string path = dir / "vg.yaml";
    vgfs_test::write_file(path, kConfig);
    Result<VgConfig> c = load_config(path);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    cfg = *c;
    std::vector<std::string> notes;
    Status s = VgStore::create(cfg, false, &notes);
    REQUIRE_MESSAGE(s.ok(), s.message());
    std::vector<std::string> warnings;
    Result<std::unique_ptr<VgStore>> r = VgStore::open(cfg, OpenMode::kReadWrite, &warnings);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    store = std::move(*r);
    int l = store->metadata().find_lv("lv");
    int o = store->metadata().find_lv("other");
    REQUIRE(l >= 0);
    REQUIRE(o >= 0);
    lv = static_cast<uint32_t>(l);
    other = static_cast<uint32_t>(o);
    runs = store->metadata().lvs[lv].map.runs();
    REQUIRE(runs.size() == 4);
  }

  uint32_t pv_index(const std::string& name) const {
    int i = store->metadata().find_pv(name);
    REQUIRE(i >= 0);
    return static_cast<uint32_t>(i);
  }
  uint64_t pe_start(uint32_t pv) const { return store->metadata().pvs[pv].pe_start; }
  const std::string& pv_path(uint32_t pv) const { return store->pv(pv).path(); }

  // Where LV byte `offset` lives: PV index and byte offset in it.
  std::pair<uint32_t, uint64_t> locate(uint32_t lv_index, uint64_t offset) const {
    const ExtentMap& map = store->metadata().lvs[lv_index].map;
    const MapRun* r = map.find(offset / kEs);
    REQUIRE(r != nullptr);
    uint64_t pe = r->pe + (offset / kEs - r->le);
    return {r->pv, pe_start(r->pv) + pe * kEs + offset % kEs};
  }
};

// The PV index of the device a piece lands on.
uint32_t pv_of(const Fixture& f, const PvPiece& p) {
  for (uint32_t i = 0; i < f.store->pv_count(); ++i)
    if (&f.store->pv(i) == p.dev) return i;
  FAIL("piece on a device that is no PV of the store");
  return UINT32_MAX;
}

bool same_file(int fd, const std::string& path) {
  struct stat a {}, b {};
  if (fstat(fd, &a) != 0 || stat(path.c_str(), &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Checks map() of [offset, offset+length) against the extent map, byte
// range by byte range.
void check_map(const Fixture& f, VolumeSet& vs, uint32_t lv, uint64_t offset, uint64_t length) {
  CAPTURE(offset);
  CAPTURE(length);
  PvPiece pieces[kMaxPieces];
  size_t n = vs.map(lv, offset, length, pieces);
  uint64_t size = vs.lv_size(lv);
  uint64_t expect_total = offset >= size ? 0 : std::min(length, size - offset);
  uint64_t total = 0;
  uint64_t at = offset;
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const PvPiece& p = pieces[i];
    REQUIRE(p.length > 0);
    auto [pv, off] = f.locate(lv, at);
    CHECK(pv_of(f, p) == pv);
    CHECK(p.offset == off);
    CHECK(same_file(p.dev->capabilities().local_fd, f.pv_path(pv)));
    // The piece is physically contiguous: its last byte is where the model says.
    auto [pv_last, off_last] = f.locate(lv, at + p.length - 1);
    CHECK(pv_last == pv);
    CHECK(off_last == off + p.length - 1);
    at += p.length;
    total += p.length;
  }
  CHECK(total == expect_total);
  // Pieces are maximal: consecutive pieces are not contiguous on one PV.
  for (size_t i = 1; i < n; ++i)
    CHECK_FALSE((pv_of(f, pieces[i]) == pv_of(f, pieces[i - 1]) && pieces[i].offset == pieces[i - 1].offset + pieces[i - 1].length));
}

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

}  // namespace

TEST_CASE("VolumeSet sizes") {
  Fixture f;
  VolumeSet vs(*f.store);
  CHECK(vs.slots().size() == 2);
  CHECK(vs.lv_size(f.lv) == 8 * kEs);
  CHECK(vs.lv_size(f.other) == 2 * kEs);
}

TEST_CASE("map splits at run boundaries with PV offsets") {
  Fixture f;
  VolumeSet vs(*f.store);
  uint32_t pv0 = f.pv_index("pv0");
  uint32_t pv1 = f.pv_index("pv1");
  PvPiece p[kMaxPieces];

  SUBCASE("the whole LV") {
    size_t n = vs.map(f.lv, 0, 8 * kEs, p);
    REQUIRE(n == 4);
    CHECK(pv_of(f, p[0]) == pv0);
    CHECK(p[0].offset == f.pe_start(pv0) + 5 * kEs);
    CHECK(p[0].length == 2 * kEs);
    CHECK(pv_of(f, p[1]) == pv1);
    CHECK(p[1].offset == f.pe_start(pv1) + 0 * kEs);
    CHECK(p[1].length == 3 * kEs);
    CHECK(pv_of(f, p[2]) == pv0);
    CHECK(p[2].offset == f.pe_start(pv0) + 20 * kEs);
    CHECK(p[2].length == kEs);
    CHECK(pv_of(f, p[3]) == pv1);
    CHECK(p[3].offset == f.pe_start(pv1) + 10 * kEs);
    CHECK(p[3].length == 2 * kEs);
    for (size_t i = 0; i < n; ++i) CHECK(same_file(p[i].dev->capabilities().local_fd, f.pv_path(pv_of(f, p[i]))));
  }
  SUBCASE("a range crossing one boundary") {
    size_t n = vs.map(f.lv, 100 * KiB, 100 * KiB, p);
    REQUIRE(n == 2);
    CHECK(pv_of(f, p[0]) == pv0);
    CHECK(p[0].offset == f.pe_start(pv0) + 5 * kEs + 100 * KiB);
    CHECK(p[0].length == 28 * KiB);
    CHECK(pv_of(f, p[1]) == pv1);
    CHECK(p[1].offset == f.pe_start(pv1));
    CHECK(p[1].length == 72 * KiB);
  }
  SUBCASE("inside one extent") {
    size_t n = vs.map(f.lv, 5 * kEs + 1000, 3000, p);
    REQUIRE(n == 1);
    CHECK(pv_of(f, p[0]) == pv0);
    CHECK(p[0].offset == f.pe_start(pv0) + 20 * kEs + 1000);
    CHECK(p[0].length == 3000);
  }
  SUBCASE("clipped at the LV end") {
    size_t n = vs.map(f.lv, 8 * kEs - 10, 100, p);
    REQUIRE(n == 1);
    CHECK(pv_of(f, p[0]) == pv1);
    CHECK(p[0].offset == f.pe_start(pv1) + 12 * kEs - 10);
    CHECK(p[0].length == 10);
    CHECK(vs.map(f.lv, 7 * kEs, kMaxIoSize, p) == 1);
    CHECK(p[0].length == kEs);
  }
  SUBCASE("nothing at or past the end") {
    CHECK(vs.map(f.lv, 8 * kEs, 100, p) == 0);
    CHECK(vs.map(f.lv, 8 * kEs + 1, 1, p) == 0);
    CHECK(vs.map(f.lv, UINT64_MAX - 10, 5, p) == 0);
    CHECK(vs.map(f.other, 2 * kEs, 1, p) == 0);
  }
  SUBCASE("every offset and many lengths against the model") {
    std::mt19937_64 rng(1);
    for (uint64_t off = 0; off <= 8 * kEs + kEs; off += 4 * KiB - 1) check_map(f, vs, f.lv, off, 1 + rng() % (300 * KiB));
    for (int i = 0; i < 500; ++i) check_map(f, vs, f.lv, rng() % (9 * kEs), 1 + rng() % kMaxIoSize);
    for (int i = 0; i < 100; ++i) check_map(f, vs, f.other, rng() % (3 * kEs), 1 + rng() % kMaxIoSize);
  }
}

TEST_CASE("write then read matches an in-memory model and the PV files") {
  Fixture f;
  VolumeSet vs(*f.store);
  const uint64_t size = vs.lv_size(f.lv);
  std::string model(size, '\0');
  std::mt19937_64 rng(99);

  for (int iter = 0; iter < 300; ++iter) {
    CAPTURE(iter);
    uint64_t off = rng() % size;
    size_t len = 1 + rng() % (iter % 10 == 0 ? 300 * KiB : 9000);
    std::string data = random_bytes(rng, len);
    Result<size_t> w = vs.write(f.lv, off, data.data(), len);
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    size_t expect = static_cast<size_t>(std::min<uint64_t>(len, size - off));
    REQUIRE(*w == expect);
    std::memcpy(model.data() + off, data.data(), expect);

    uint64_t roff = rng() % size;
    size_t rlen = 1 + rng() % (100 * KiB);
    std::string buf(rlen, '\x77');
    Result<size_t> r = vs.read(f.lv, roff, buf.data(), rlen);
    REQUIRE(r.ok());
    size_t rexpect = static_cast<size_t>(std::min<uint64_t>(rlen, size - roff));
    REQUIRE(*r == rexpect);
    REQUIRE(buf.compare(0, rexpect, model, roff, rexpect) == 0);
  }

  std::string all(size, '\0');
  Result<size_t> r = vs.read(f.lv, 0, all.data(), size);
  REQUIRE(r.ok());
  CHECK(*r == size);
  CHECK(all == model);

  // Reads at or past the end return 0 bytes.
  char c = 0;
  Result<size_t> end = vs.read(f.lv, size, &c, 1);
  REQUIRE(end.ok());
  CHECK(*end == 0);
  Result<size_t> past = vs.read(f.lv, size + 12345, &c, 1);
  REQUIRE(past.ok());
  CHECK(*past == 0);

  // The other LV was not touched.
  std::string other(vs.lv_size(f.other), '\x55');
  Result<size_t> ro = vs.read(f.other, 0, other.data(), other.size());
  REQUIRE(ro.ok());
  CHECK(other == std::string(other.size(), '\0'));

  // The bytes are in the PV files at pe_start + PE * extent_size.
  REQUIRE(vs.flush().ok());
  for (const MapRun& run : f.runs) {
    CAPTURE(run.le);
    std::string on_disk =
        vgfs_test::pread_file(f.pv_path(run.pv), f.pe_start(run.pv) + run.pe * kEs, run.count * kEs);
    CHECK(on_disk == model.substr(run.le * kEs, run.count * kEs));
  }
}

TEST_CASE("a write crossing the LV end is cut at the end") {
  Fixture f;
  VolumeSet vs(*f.store);
  const uint64_t size = vs.lv_size(f.lv);
  std::string data(3000, 'x');
  Result<size_t> w = vs.write(f.lv, size - 1000, data.data(), data.size());
  REQUIRE(w.ok());
  CHECK(*w == 1000);
  // The bytes after the LV's last extent on its PV stay zero.
  uint32_t pv1 = f.pv_index("pv1");
  REQUIRE(vs.flush().ok());
  CHECK(vgfs_test::pread_file(f.pv_path(pv1), f.pe_start(pv1) + 12 * kEs - 1000, 1000) == std::string(1000, 'x'));
  CHECK(vgfs_test::pread_file(f.pv_path(pv1), f.pe_start(pv1) + 12 * kEs, 2000) == std::string(2000, '\0'));
}

TEST_CASE("writes to two LVs stay apart") {
  Fixture f;
  VolumeSet vs(*f.store);
  std::string a(vs.lv_size(f.lv), 'a');
  std::string b(vs.lv_size(f.other), 'b');
  REQUIRE(*vs.write(f.lv, 0, a.data(), a.size()) == a.size());
  REQUIRE(*vs.write(f.other, 0, b.data(), b.size()) == b.size());
  std::string ra(a.size(), '\0'), rb(b.size(), '\0');
  REQUIRE(*vs.read(f.lv, 0, ra.data(), ra.size()) == ra.size());
  REQUIRE(*vs.read(f.other, 0, rb.data(), rb.size()) == rb.size());
  CHECK(ra == a);
  CHECK(rb == b);
}

TEST_CASE("discard punches and zeroes the PV ranges") {
  Fixture f;
  VolumeSet vs(*f.store);
  const uint64_t size = vs.lv_size(f.lv);
  std::string model(size, '\0');
  std::mt19937_64 rng(5);
  model = random_bytes(rng, size);
  for (char& c : model)
    if (c == 0) c = 1;  // so zeroes can only come from discard
  REQUIRE(*vs.write(f.lv, 0, model.data(), size) == size);
  const std::string other(vs.lv_size(f.other), 'o');
  REQUIRE(*vs.write(f.other, 0, other.data(), other.size()) == other.size());

  SUBCASE("punch across a run boundary") {
    Status s = vs.discard(f.lv, kEs, 2 * kEs, false);
    REQUIRE_MESSAGE(s.ok(), s.message());
    std::fill(model.begin() + static_cast<ptrdiff_t>(kEs), model.begin() + static_cast<ptrdiff_t>(3 * kEs), '\0');
  }
  SUBCASE("zero an unaligned range") {
    Status s = vs.discard(f.lv, 300 * KiB + 123, 10 * KiB + 7, true);
    REQUIRE_MESSAGE(s.ok(), s.message());
    std::fill(model.begin() + static_cast<ptrdiff_t>(300 * KiB + 123),
              model.begin() + static_cast<ptrdiff_t>(310 * KiB + 130), '\0');
  }
  SUBCASE("punch an unaligned range") {
    Status s = vs.discard(f.lv, 5000, 70 * KiB, false);
    REQUIRE_MESSAGE(s.ok(), s.message());
    std::fill(model.begin() + 5000, model.begin() + static_cast<ptrdiff_t>(5000 + 70 * KiB), '\0');
  }
  SUBCASE("punch past the end is clipped") {
    Status s = vs.discard(f.lv, size - kEs, 4 * kEs, false);
    REQUIRE_MESSAGE(s.ok(), s.message());
    std::fill(model.begin() + static_cast<ptrdiff_t>(size - kEs), model.end(), '\0');
  }

  std::string all(size, '\x33');
  REQUIRE(*vs.read(f.lv, 0, all.data(), size) == size);
  CHECK(all == model);
  REQUIRE(vs.flush().ok());
  for (const MapRun& run : f.runs) {
    std::string on_disk =
        vgfs_test::pread_file(f.pv_path(run.pv), f.pe_start(run.pv) + run.pe * kEs, run.count * kEs);
    CHECK(on_disk == model.substr(run.le * kEs, run.count * kEs));
  }
  // The other LV is untouched.
  std::string other_back(other.size(), '\0');
  REQUIRE(*vs.read(f.other, 0, other_back.data(), other_back.size()) == other.size());
  CHECK(other_back == other);
}

TEST_CASE("concurrent writers and readers on disjoint ranges") {
  Fixture f;
  VolumeSet vs(*f.store);
  const uint64_t size = vs.lv_size(f.lv);
  const int kThreads = 4;
  const uint64_t slice = size / kThreads;  // each thread owns one slice, crossing run boundaries
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1000);
      std::string model(slice, '\0');
      const uint64_t base = static_cast<uint64_t>(t) * slice;
      for (int i = 0; i < 200 && failures[t].empty(); ++i) {
        uint64_t off = rng() % slice;
        size_t len = 1 + static_cast<size_t>(rng() % std::min<uint64_t>(slice - off, 40 * KiB));
        std::string data = random_bytes(rng, len);
        Result<size_t> w = vs.write(f.lv, base + off, data.data(), len);
        if (!w.ok() || *w != len) failures[t] = "write failed";
        std::memcpy(model.data() + off, data.data(), len);
        if (i % 20 == 0 && !vs.flush().ok()) failures[t] = "flush failed";
        std::string back(slice, '\0');
        Result<size_t> r = vs.read(f.lv, base, back.data(), slice);
        if (!r.ok() || *r != slice || back != model) failures[t] = "read back differs at iteration " + std::to_string(i);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    CAPTURE(t);
    CHECK(failures[t] == "");
  }
}

// ---- discard during a migration (docs/migration.md "Discard and zero-range are writes") ----

TEST_CASE("discard and zero-range of a moving range go through the transfer: dirty, then zeros on the destination") {
  for (bool zero : {false, true}) {
    CAPTURE(zero);
    Fixture f;
    VolumeSet vs(*f.store);
    const uint64_t size = vs.lv_size(f.lv);
    std::mt19937_64 rng(9);
    std::string model = random_bytes(rng, size);
    for (char& c : model)
      if (c == 0) c = 1;
    REQUIRE(*vs.write(f.lv, 0, model.data(), size) == size);

    // A job moving LE 2-4 (pv1 PE 0-2) to pv0 PE 24-26; record in pv0 PE 30.
    const uint32_t pv0 = f.pv_index("pv0"), pv1 = f.pv_index("pv1");
    Transfer::Geometry g;
    g.job_id = 1;
    g.lv_begin = 2 * kEs;
    g.size = 3 * kEs;
    g.region_size = kEs;
    g.source = {&f.store->pv(pv1), f.pe_start(pv1)};
    g.destination = {&f.store->pv(pv0), f.pe_start(pv0) + 24 * kEs};
    g.record = {&f.store->pv(pv0), f.pe_start(pv0) + 30 * kEs};
    Transfer t(g, nullptr);
    vs.publish_transfers(f.lv, {&t});
    for (int i = 0; i < 3; ++i) REQUIRE(t.copy_next().ok());
    const std::string dst_path = f.pv_path(pv0);
    auto dst_range = [&] { return vgfs_test::pread_file(dst_path, g.destination.offset, g.size); };
    REQUIRE(dst_range() == model.substr(2 * kEs, 3 * kEs));

    // LV bytes from the middle of LE 1 to the middle of LE 4: half outside
    // the transfer, regions 0-2 inside.
    const uint64_t off = kEs + kEs / 2, len = 3 * kEs;
    Status st = vs.discard(f.lv, off, len, zero);
    REQUIRE_MESSAGE(st.ok(), st.message());
    std::fill(model.begin() + static_cast<ptrdiff_t>(off), model.begin() + static_cast<ptrdiff_t>(off + len), '\0');
    std::string all(size, '\x33');
    REQUIRE(*vs.read(f.lv, 0, all.data(), size) == size);
    CHECK(all == model);
    // Every region the discard touched is dirty: the copier recopies it.
    std::vector<uint64_t> dirty;
    for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) dirty.push_back(*r);
    CHECK(dirty == std::vector<uint64_t>{0, 1, 2});
    for (uint64_t r : dirty) REQUIRE(t.recopy(r).ok());
    // What the switch would serve from now on: the destination.
    CHECK(dst_range() == model.substr(2 * kEs, 3 * kEs));
    t.block_writes();
    t.finish();
    vs.publish_transfers(f.lv, {});
  }
}
