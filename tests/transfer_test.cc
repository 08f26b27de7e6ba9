// Unit tests of Transfer (include/vgfs/transfer.h, docs/migration.md rules 2-6 and 8)
// on real PvDevice objects over files in a temporary folder: the first
// pass, writes at every position relative to the progress pointer P, the
// persisted record (two copies, generation g in copy g % 2), recopy and
// checkpoint, holes, resume from the on-disk record, finish, and writers
// racing the copier. Also VolumeSet's IoGuard / quiesce() handshake.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vgfs/config.h"
#include "vgfs/fault_injector.h"
#include "vgfs/job_record.h"
#include "vgfs/pv_device.h"
#include "vgfs/transfer.h"
#include "vgfs/units.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"

using namespace vgfs;
using vgfs_test::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr char kDstFill = '\xEE';  // what the destination holds before any copy

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

struct RigOptions {
  uint64_t region_size = 64 * KiB;
  uint64_t regions = 16;
  uint64_t short_tail = 0;          // the range ends this many bytes before a whole region
  bool sparse_source = false;       // source file all holes, ending at the end of the range
  bool record_in_source = false;    // record area inside the source file, before the range
  bool record_read_only = false;    // record device opened read-only (every record write fails)
};

// A source file, a destination file and a record area, with a Transfer over
// them. The source range starts at 1 MiB of its file, the destination at
// 512 KiB of its file, so offsets that are ignored show up.
struct Rig {
  TempDir dir;
  RigOptions o;
  std::string src_path, dst_path, rec_path;
  PvDevice src, dst, rec;
  Transfer::Geometry g;
  uint64_t rs = 0, size = 0, regions = 0, copy_size = 0;
  std::string src_file_before, dst_file_before;  // whole files after set-up
  std::unique_ptr<Transfer> t;
  std::mt19937_64 rng{12345};

  explicit Rig(RigOptions opts = {}) : o(opts) {
    rs = o.region_size;
    size = o.regions * rs - o.short_tail;
    regions = o.regions;
    copy_size = job_record_copy_size(regions);
    src_path = dir / "src.img";
    dst_path = dir / "dst.img";
    rec_path = o.record_in_source ? src_path : dir / "rec.img";
    const uint64_t src_offset = 1 * MiB, dst_offset = 512 * KiB;

    if (o.sparse_source) {
      vgfs_test::make_sparse(src_path, src_offset + size);
    } else {
      vgfs_test::write_file(src_path, random_bytes(rng, 4 * MiB));
    }
    vgfs_test::write_file(dst_path, std::string(4 * MiB, kDstFill));
    if (!o.record_in_source) vgfs_test::make_sparse(rec_path, 1 * MiB);
    REQUIRE(src_offset + size <= vgfs_test::fs::file_size(src_path));
    REQUIRE(dst_offset + size + 4 * KiB <= 4 * MiB);

    Result<PvDevice> s = PvDevice::open(src_path, true, "PV src");
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    src = std::move(*s);
    Result<PvDevice> d = PvDevice::open(dst_path, true, "PV dst");
    REQUIRE_MESSAGE(d.ok(), d.status().message());
    dst = std::move(*d);
    Result<PvDevice> r = PvDevice::open(rec_path, !o.record_read_only, "PV rec");
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    rec = std::move(*r);

    g.job_id = 7;
    g.lv_begin = 3 * MiB;
    g.size = size;
    g.region_size = rs;
    g.source = {&src, src_offset};
    g.destination = {&dst, dst_offset};
    // In the source file the record sits in front of the range (64 KiB in).
    g.record = {&rec, o.record_in_source ? 64 * KiB : 8 * KiB};
    REQUIRE(g.record.offset + 2 * copy_size <= (o.record_in_source ? src_offset : 1 * MiB));

    src_file_before = vgfs_test::read_file(src_path);
    dst_file_before = vgfs_test::read_file(dst_path);
    t = std::make_unique<Transfer>(g, nullptr);
  }

  uint64_t region_len(uint64_t r) const { return std::min(rs, size - r * rs); }
  std::string src_at(uint64_t off, uint64_t len) const {
    return vgfs_test::pread_file(src_path, g.source.offset + off, len);
  }
  std::string dst_at(uint64_t off, uint64_t len) const {
    return vgfs_test::pread_file(dst_path, g.destination.offset + off, len);
  }
  std::string src_region(uint64_t r) const { return src_at(r * rs, region_len(r)); }
  std::string dst_region(uint64_t r) const { return dst_at(r * rs, region_len(r)); }
  bool region_equal(uint64_t r) const { return src_region(r) == dst_region(r); }
  // The destination region still holds what it held before the test.
  bool dst_untouched(uint64_t off, uint64_t len) const { return dst_at(off, len) == std::string(len, kDstFill); }

  // Writes random bytes through the transfer; returns them.
  std::string write(uint64_t off, uint64_t len, Status* st = nullptr) {
    std::string data = random_bytes(rng, len);
    Status s = t->write(off, data.data(), data.size());
    if (st) *st = s;
    else CHECK_MESSAGE(s.ok(), s.message());
    return data;
  }

  void copy_regions(uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
      Status s = t->copy_next();
      REQUIRE_MESSAGE(s.ok(), s.message());
    }
  }

  // One decoded record copy (0 or 1), if valid.
  std::optional<JobRecord> record_copy(int copy) const {
    std::string bytes = vgfs_test::pread_file(rec_path, g.record.offset + static_cast<uint64_t>(copy) * copy_size,
                                              copy_size);
    Result<JobRecord> r = decode_job_record(bytes, g.job_id, regions);
    if (!r.ok()) return std::nullopt;
    return *r;
  }
  // The valid copy with the highest generation, if any.
  std::optional<JobRecord> newest() const {
    std::optional<JobRecord> a = record_copy(0), b = record_copy(1);
    if (a && b) return a->generation > b->generation ? a : b;
    return a ? a : b;
  }
  uint64_t newest_generation() const {
    std::optional<JobRecord> n = newest();
    return n ? n->generation : 0;
  }
};

bool bit_of(const JobRecord& rec, uint64_t r) { return (rec.bitmap[r / 64] >> (r % 64)) & 1; }
bool bit_of(const std::string& bitmap, uint64_t r) {
  return (static_cast<unsigned char>(bitmap[r / 8]) >> (r % 8)) & 1;
}
std::vector<uint64_t> bits_of(const JobRecord& rec) {
  std::vector<uint64_t> out;
  for (uint64_t r = 0; r < rec.region_count; ++r)
    if (bit_of(rec, r)) out.push_back(r);
  return out;
}
std::vector<uint64_t> bits_of(const std::string& bitmap, uint64_t regions) {
  std::vector<uint64_t> out;
  for (uint64_t r = 0; r < regions; ++r)
    if (bit_of(bitmap, r)) out.push_back(r);
  return out;
}
std::vector<uint64_t> dirty_list(const Transfer& t) {
  std::vector<uint64_t> out;
  for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) out.push_back(*r);
  return out;
}

// Rule 5 against the files now: every region below the persisted P is equal
// on both sides or has its bit set in the newest persisted record.
void check_rule5(const Rig& rig) {
  std::optional<JobRecord> rec = rig.newest();
  if (!rec) return;  // nothing persisted: P is 0
  REQUIRE(rec->progress_pointer <= rig.size);
  const uint64_t below = div_ceil(rec->progress_pointer, rig.rs);
  std::string src = rig.src_at(0, rig.size), dst = rig.dst_at(0, rig.size);
  for (uint64_t r = 0; r < below; ++r) {
    CAPTURE(r);
    const uint64_t len = rig.region_len(r);
    const bool equal = src.compare(r * rig.rs, len, dst, r * rig.rs, len) == 0;
    CHECK((equal || bit_of(*rec, r)));
  }
}

}  // namespace

TEST_CASE("transfer: a new transfer starts at P = 0, copying, clean") {
  Rig rig;
  Transfer& t = *rig.t;
  CHECK(t.region_count() == 16);
  CHECK(t.progress_pointer() == 0);
  CHECK(t.persisted_pointer() == 0);
  CHECK(t.sync_status() == SyncStatus::kCopying);
  CHECK(t.dirty_count() == 0);
  CHECK(t.pending_count() == 0);
  CHECK(t.copied_bytes() == 0);
  CHECK_FALSE(t.paused());
  CHECK(t.rate_limit() == 0);
  CHECK_FALSE(t.finished());
  CHECK(t.bitmap_bytes() == std::string(2, '\0'));
  CHECK_FALSE(t.next_dirty(0).has_value());
  CHECK(t.write_failure().empty());
  CHECK(t.lv_begin() == 3 * MiB);
  CHECK(t.lv_end() == 3 * MiB + 16 * 64 * KiB);
  CHECK_FALSE(rig.newest().has_value());  // nothing persisted yet
}

TEST_CASE("transfer: region count rounds up and the bitmap has one bit per region") {
  Rig rig(RigOptions{.region_size = 4 * KiB, .regions = 70, .short_tail = 1000});
  CHECK(rig.t->region_count() == 70);
  CHECK(rig.t->bitmap_bytes().size() == 9);
}

TEST_CASE("transfer: copy_next advances P by one region and copies it") {
  Rig rig;
  Transfer& t = *rig.t;
  for (uint64_t r = 0; r < rig.regions; ++r) {
    CAPTURE(r);
    REQUIRE(rig.dst_untouched(r * rig.rs, rig.rs));
    Status s = t.copy_next();
    REQUIRE_MESSAGE(s.ok(), s.message());
    CHECK(t.progress_pointer() == (r + 1) * rig.rs);
    CHECK(t.copied_bytes() == (r + 1) * rig.rs);
    CHECK(rig.region_equal(r));
    if (r + 1 < rig.regions) CHECK(rig.dst_untouched((r + 1) * rig.rs, rig.rs));
    CHECK(t.dirty_count() == 0);
    CHECK(t.persisted_pointer() == 0);  // only checkpoint() persists P
  }
  CHECK(t.progress_pointer() == rig.size);
  // Past the end it does nothing.
  CHECK(t.copy_next().ok());
  CHECK(t.progress_pointer() == rig.size);
  CHECK(t.copied_bytes() == rig.size);

  // The whole range is copied, nothing around it is touched, the source is unchanged.
  std::string dst = vgfs_test::read_file(rig.dst_path);
  CHECK(dst.compare(0, rig.g.destination.offset, rig.dst_file_before, 0, rig.g.destination.offset) == 0);
  CHECK(dst.compare(rig.g.destination.offset + rig.size, std::string::npos, rig.dst_file_before,
                    rig.g.destination.offset + rig.size, std::string::npos) == 0);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
  CHECK(vgfs_test::read_file(rig.src_path) == rig.src_file_before);
}

TEST_CASE("transfer: a short last region is copied up to the end of the range only") {
  Rig rig(RigOptions{.region_size = 64 * KiB, .regions = 8, .short_tail = 5000});
  Transfer& t = *rig.t;
  REQUIRE(t.region_count() == 8);
  rig.copy_regions(7);
  CHECK(t.progress_pointer() == 7 * rig.rs);
  rig.copy_regions(1);
  CHECK(t.progress_pointer() == rig.size);
  CHECK(t.copied_bytes() == rig.size);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
  // The 5000 bytes after the range's end stay as they were.
  CHECK(rig.dst_untouched(rig.size, 5000));
  // A write into the short last region after the pass: bit set, source only.
  std::string data = rig.write(rig.size - 100, 100);
  CHECK(bit_of(t.bitmap_bytes(), 7));
  CHECK(rig.src_at(rig.size - 100, 100) == data);
  CHECK(rig.dst_at(rig.size - 100, 100) != data);
  REQUIRE(t.recopy(7).ok());
  CHECK(rig.dst_at(rig.size - 100, 100) == data);
  CHECK(rig.dst_untouched(rig.size, 5000));
}

TEST_CASE("transfer: a write above P goes to the source only and dirties nothing") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(4);
  REQUIRE(t.checkpoint().ok());
  const uint64_t gen = rig.newest_generation();
  REQUIRE(gen > 0);

  // Inside region 10, across regions 12-13, and the region right at P (4).
  std::string a = rig.write(10 * rig.rs + 100, 5000);
  std::string b = rig.write(12 * rig.rs + rig.rs / 2, rig.rs);
  std::string c = rig.write(4 * rig.rs, 10);
  CHECK(rig.src_at(10 * rig.rs + 100, 5000) == a);
  CHECK(rig.src_at(12 * rig.rs + rig.rs / 2, rig.rs) == b);
  CHECK(rig.src_at(4 * rig.rs, 10) == c);
  CHECK(rig.dst_untouched(4 * rig.rs, 12 * rig.rs));
  CHECK(t.bitmap_bytes() == std::string(2, '\0'));
  CHECK(t.dirty_count() == 0);
  CHECK(t.pending_count() == 0);
  CHECK_FALSE(t.next_dirty(0).has_value());
  // No record flush was needed.
  CHECK(rig.newest_generation() == gen);

  // The first pass later copies the new data.
  rig.copy_regions(rig.regions - 4);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
}

TEST_CASE("transfer: a write below P sets the bit and persists it before returning") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(8);
  const std::string old3 = rig.dst_region(3);
  REQUIRE(old3 == rig.src_region(3));
  REQUIRE_FALSE(rig.newest().has_value());

  std::string data = rig.write(3 * rig.rs + 1000, 2000);
  // In memory.
  CHECK(bits_of(t.bitmap_bytes(), rig.regions) == std::vector<uint64_t>{3});
  CHECK(t.dirty_count() == 1);
  CHECK(t.pending_count() == 1);
  CHECK(dirty_list(t) == std::vector<uint64_t>{3});
  // On disk, in the newest generation, at copy generation % 2.
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(rec->generation >= 1);
  CHECK(rig.record_copy(static_cast<int>(rec->generation % 2)).has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{3});
  CHECK(rec->progress_pointer == 0);  // a bit flush does not move the persisted P
  CHECK(t.persisted_pointer() == 0);
  CHECK(t.progress_pointer() == 8 * rig.rs);
  // Source has the data, destination still the old copy.
  CHECK(rig.src_at(3 * rig.rs + 1000, 2000) == data);
  CHECK(rig.dst_region(3) == old3);
  CHECK_FALSE(rig.region_equal(3));

  // The last byte below P is below P too.
  rig.write(8 * rig.rs - 1, 1);
  CHECK(bits_of(t.bitmap_bytes(), rig.regions) == std::vector<uint64_t>{3, 7});
  rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{3, 7});

  // Writing a region whose bit is already persisted needs no new flush.
  const uint64_t gen = rig.newest_generation();
  std::string again = rig.write(3 * rig.rs, 10);
  CHECK(rig.newest_generation() == gen);
  CHECK(rig.src_at(3 * rig.rs, 10) == again);
  CHECK(t.pending_count() == 2);
}

TEST_CASE("transfer: a write below P whose bit cannot be persisted does not reach the source") {
  Rig rig(RigOptions{.record_read_only = true});
  rig.copy_regions(6);
  REQUIRE(rig.t->progress_pointer() == 6 * rig.rs);
  const std::string before = rig.src_region(2);

  Status st;
  rig.write(2 * rig.rs + 10, 100, &st);
  CHECK_FALSE(st.ok());
  CHECK(st.code() == EIO);
  CHECK_FALSE(st.message().empty());
  CHECK(rig.src_region(2) == before);  // the bit comes first (rule 5)
  CHECK(rig.region_equal(2));

  // Above P no record is needed, so the write succeeds.
  Status above;
  std::string data = rig.write(10 * rig.rs, 100, &above);
  CHECK_MESSAGE(above.ok(), above.message());
  CHECK(rig.src_at(10 * rig.rs, 100) == data);
}

TEST_CASE("transfer: a write straddling P dirties only the part below") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(6);
  const std::string old5 = rig.dst_region(5);
  // From the middle of region 4 to the middle of region 7: regions 4 and 5 are
  // below P, 6 and 7 are not.
  const uint64_t off = 4 * rig.rs + rig.rs / 2, len = 3 * rig.rs;
  std::string data = rig.write(off, len);
  CHECK(bits_of(t.bitmap_bytes(), rig.regions) == std::vector<uint64_t>{4, 5});
  CHECK(t.pending_count() == 2);
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{4, 5});
  CHECK(rig.src_at(off, len) == data);
  CHECK(rig.dst_region(5) == old5);
  CHECK(rig.dst_untouched(6 * rig.rs, 2 * rig.rs));

  // The pass and the recopies bring the destination in line.
  rig.copy_regions(rig.regions - 6);
  REQUIRE(t.recopy(4).ok());
  REQUIRE(t.recopy(5).ok());
  CHECK(t.pending_count() == 0);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
}

TEST_CASE("transfer: a write over more regions than the lock list on the stack holds takes every lock once") {
  // 4 KiB regions: a 564 KiB write spans 141 regions, past the 64 the write
  // path keeps on its stack (Transfer::change), so its lock list is on the heap.
  RigOptions o;
  o.region_size = 4 * KiB;
  o.regions = 200;
  Rig rig(o);
  Transfer& t = *rig.t;
  rig.copy_regions(100);
  const uint64_t off = 10 * rig.rs, len = 141 * rig.rs;
  std::string data = rig.write(off, len);
  std::vector<uint64_t> below;
  for (uint64_t r = 10; r < 100; ++r) below.push_back(r);
  CHECK(bits_of(t.bitmap_bytes(), rig.regions) == below);
  CHECK(rig.src_at(off, len) == data);
  // No lock was left held: the copier and the recopies take them all again.
  rig.copy_regions(rig.regions - 100);
  for (uint64_t r : below) REQUIRE(t.recopy(r).ok());
  CHECK(t.pending_count() == 0);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
}

TEST_CASE("transfer: in the synchronized state writes go to both sides and are persisted as dirty") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(rig.regions);
  t.set_sync_status(SyncStatus::kResyncing);
  t.set_sync_status(SyncStatus::kSynchronized);
  REQUIRE(t.checkpoint().ok());
  CHECK(t.sync_status() == SyncStatus::kSynchronized);

  std::string a = rig.write(4 * rig.rs + 7, 3000);
  std::string b = rig.write(15 * rig.rs - 10, 20);  // regions 14 and 15
  CHECK(rig.src_at(4 * rig.rs + 7, 3000) == a);
  CHECK(rig.dst_at(4 * rig.rs + 7, 3000) == a);
  CHECK(rig.src_at(15 * rig.rs - 10, 20) == b);
  CHECK(rig.dst_at(15 * rig.rs - 10, 20) == b);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));

  CHECK(bits_of(t.bitmap_bytes(), rig.regions) == std::vector<uint64_t>{4, 14, 15});
  CHECK(t.dirty_count() == 3);
  CHECK(t.pending_count() == 0);  // nothing for the copier: both sides have it
  CHECK_FALSE(t.next_dirty(0).has_value());
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{4, 14, 15});
  CHECK(rec->sync_status == SyncStatus::kSynchronized);
  CHECK(t.write_failure().empty());

  // A checkpoint makes only the destination durable, so the dual-written bits
  // stay persisted (the header: they are cleared only by finish()).
  REQUIRE(t.checkpoint().ok());
  rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{4, 14, 15});
  CHECK(rec->progress_pointer == rig.size);
  CHECK(t.dirty_count() == 3);
  CHECK(t.pending_count() == 0);
}

TEST_CASE("transfer: recopy clears the bit and copies; the disk keeps the bit until checkpoint") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(8);
  rig.write(2 * rig.rs + 5, 50);
  rig.write(5 * rig.rs + 5, 50);
  rig.write(6 * rig.rs, rig.rs);
  REQUIRE(t.pending_count() == 3);
  REQUIRE(t.checkpoint().ok());
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{2, 5, 6});
  CHECK(rec->progress_pointer == 8 * rig.rs);

  const uint64_t copied = t.copied_bytes();
  REQUIRE(t.recopy(2).ok());
  CHECK(t.pending_count() == 2);
  CHECK(t.dirty_count() == 2);
  CHECK(dirty_list(t) == std::vector<uint64_t>{5, 6});
  CHECK_FALSE(bit_of(t.bitmap_bytes(), 2));
  CHECK(rig.region_equal(2));
  CHECK(t.copied_bytes() == copied + rig.rs);
  // Still set on disk: the recopied data is not known durable yet.
  rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{2, 5, 6});

  // Recopying a clean region does nothing.
  REQUIRE(t.recopy(3).ok());
  REQUIRE(t.recopy(2).ok());
  CHECK(t.copied_bytes() == copied + rig.rs);
  CHECK(t.pending_count() == 2);

  REQUIRE(t.checkpoint().ok());
  rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{5, 6});
  CHECK_FALSE(rig.region_equal(5));
  CHECK_FALSE(rig.region_equal(6));
  check_rule5(rig);

  REQUIRE(t.recopy(5).ok());
  REQUIRE(t.recopy(6).ok());
  CHECK(t.pending_count() == 0);
  REQUIRE(t.checkpoint().ok());
  rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec).empty());
  CHECK(rig.dst_at(0, 8 * rig.rs) == rig.src_at(0, 8 * rig.rs));
}

TEST_CASE("transfer: checkpoint persists P, the flags and the bitmap in alternating copies") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(5);
  CHECK(t.persisted_pointer() == 0);
  REQUIRE(t.checkpoint().ok());
  CHECK(t.persisted_pointer() == 5 * rig.rs);
  CHECK(t.persisted_pointer() == t.progress_pointer());
  std::optional<JobRecord> first = rig.newest();
  REQUIRE(first.has_value());
  CHECK(first->job_id == 7);
  CHECK(first->region_count == rig.regions);
  CHECK(first->progress_pointer == 5 * rig.rs);
  CHECK(first->sync_status == SyncStatus::kCopying);
  CHECK_FALSE(first->paused);
  CHECK(first->rate_limit == 0);
  const uint64_t g1 = first->generation;
  REQUIRE(rig.record_copy(static_cast<int>(g1 % 2)).has_value());
  CHECK(rig.record_copy(static_cast<int>(g1 % 2))->generation == g1);

  rig.copy_regions(3);
  t.set_paused(true);
  t.set_rate_limit(50 * MiB);
  t.set_sync_status(SyncStatus::kCopying);
  CHECK(t.persisted_pointer() == 5 * rig.rs);  // not before the checkpoint
  REQUIRE(t.checkpoint().ok());
  CHECK(t.persisted_pointer() == 8 * rig.rs);
  std::optional<JobRecord> second = rig.newest();
  REQUIRE(second.has_value());
  CHECK(second->generation == g1 + 1);
  CHECK(second->progress_pointer == 8 * rig.rs);
  CHECK(second->paused);
  CHECK(second->rate_limit == 50 * MiB);
  // Both copies valid: the previous generation survives in the other copy.
  std::optional<JobRecord> c0 = rig.record_copy(0), c1 = rig.record_copy(1);
  REQUIRE(c0.has_value());
  REQUIRE(c1.has_value());
  CHECK(rig.record_copy(static_cast<int>(second->generation % 2))->generation == second->generation);
  CHECK(rig.record_copy(static_cast<int>(g1 % 2))->generation == g1);
  CHECK(rig.record_copy(static_cast<int>(g1 % 2))->progress_pointer == 5 * rig.rs);

  // Rule 5 after the checkpoint: regions below P match the source.
  check_rule5(rig);
  CHECK(rig.dst_at(0, 8 * rig.rs) == rig.src_at(0, 8 * rig.rs));

  // After the full pass, P = size persists.
  rig.copy_regions(rig.regions - 8);
  t.set_sync_status(SyncStatus::kResyncing);
  REQUIRE(t.checkpoint().ok());
  CHECK(t.persisted_pointer() == rig.size);
  std::optional<JobRecord> last = rig.newest();
  REQUIRE(last.has_value());
  CHECK(last->progress_pointer == rig.size);
  CHECK(last->sync_status == SyncStatus::kResyncing);
}

TEST_CASE("transfer: after a checkpoint, regions below P equal the source except those with bits") {
  Rig rig(RigOptions{.region_size = 4 * KiB, .regions = 64, .record_in_source = true});
  Transfer& t = *rig.t;
  std::mt19937_64 pick(99);
  std::vector<uint64_t> written;
  // Interleave the pass with writes below P, recopies, and checkpoints.
  for (int round = 0; round < 8; ++round) {
    rig.copy_regions(8);
    const uint64_t below = t.progress_pointer() / rig.rs;
    for (int i = 0; i < 3; ++i) {
      uint64_t r = pick() % below;
      rig.write(r * rig.rs + pick() % 100, 1 + pick() % 3000);
      written.push_back(r);
    }
    if (round % 2 == 1) {
      std::optional<uint64_t> r = t.next_dirty(0);
      if (r) REQUIRE(t.recopy(*r).ok());
    }
    REQUIRE(t.checkpoint().ok());
    CAPTURE(round);
    CHECK(t.persisted_pointer() == t.progress_pointer());
    std::optional<JobRecord> rec = rig.newest();
    REQUIRE(rec.has_value());
    CHECK(rec->progress_pointer == t.progress_pointer());
    // The persisted bits are exactly the regions still to recopy.
    CHECK(bits_of(*rec) == dirty_list(t));
    check_rule5(rig);
    // Every region with a bit really differs (each write changed its data).
    for (uint64_t r : bits_of(*rec)) CHECK_FALSE(rig.region_equal(r));
  }
  CHECK(t.progress_pointer() == rig.size);
  for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) REQUIRE(t.recopy(*r).ok());
  REQUIRE(t.checkpoint().ok());
  CHECK(bits_of(*rig.newest()).empty());
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
  // The record lives in the source file in front of the range and did not
  // spill into it: the bytes between the record and the range are intact.
  const uint64_t end_of_records = rig.g.record.offset + 2 * rig.copy_size;
  std::string gap = vgfs_test::pread_file(rig.src_path, end_of_records, rig.g.source.offset - end_of_records);
  CHECK(gap == rig.src_file_before.substr(end_of_records, rig.g.source.offset - end_of_records));
}

TEST_CASE("transfer: source holes end as holes on the destination") {
  Rig rig(RigOptions{.region_size = 64 * KiB, .regions = 8, .sparse_source = true});
  Transfer& t = *rig.t;
  // Data in regions 1 and 3 (whole) and one byte in the middle of region 5;
  // regions 0, 2, 4, 6, 7 are holes (6 and 7 up to the end of the file).
  std::string r1 = random_bytes(rig.rng, rig.rs), r3 = random_bytes(rig.rng, rig.rs);
  vgfs_test::pwrite_file(rig.src_path, rig.g.source.offset + 1 * rig.rs, r1);
  vgfs_test::pwrite_file(rig.src_path, rig.g.source.offset + 3 * rig.rs, r3);
  vgfs_test::pwrite_file(rig.src_path, rig.g.source.offset + 5 * rig.rs + rig.rs / 2, "x");

  rig.copy_regions(rig.regions);
  CHECK(t.progress_pointer() == rig.size);
  const std::string zeros(rig.rs, '\0');
  for (uint64_t r : {0, 2, 4, 6, 7}) {
    CAPTURE(r);
    CHECK(rig.dst_region(r) == zeros);
  }
  CHECK(rig.dst_region(1) == r1);
  CHECK(rig.dst_region(3) == r3);
  CHECK(rig.region_equal(5));
  CHECK(rig.dst_region(5)[rig.rs / 2] == 'x');
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
  // Outside the range the destination is untouched.
  CHECK(vgfs_test::pread_file(rig.dst_path, rig.g.destination.offset - 4096, 4096) == std::string(4096, kDstFill));
  CHECK(vgfs_test::pread_file(rig.dst_path, rig.g.destination.offset + rig.size, 4096) ==
        std::string(4096, kDstFill));

  // The holes are holes: where the filesystem shows the source's holes to
  // SEEK_DATA, it must show the destination's too.
  auto seek_data = [](const std::string& path, uint64_t from) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    off_t at = lseek(fd, static_cast<off_t>(from), SEEK_DATA);
    ::close(fd);
    return at;
  };
  const off_t src0 = seek_data(rig.src_path, rig.g.source.offset);
  if (src0 == static_cast<off_t>(rig.g.source.offset + rig.rs)) {
    const uint64_t d = rig.g.destination.offset;
    CHECK(seek_data(rig.dst_path, d) == static_cast<off_t>(d + rig.rs));
    CHECK(seek_data(rig.dst_path, d + 2 * rig.rs) == static_cast<off_t>(d + 3 * rig.rs));
    CHECK(seek_data(rig.dst_path, d + 4 * rig.rs) > static_cast<off_t>(d + 4 * rig.rs));
    CHECK(seek_data(rig.dst_path, d + 6 * rig.rs) == static_cast<off_t>(d + rig.size));
  } else {
    MESSAGE("this filesystem does not report holes through SEEK_DATA; checked zeros only");
  }
}

TEST_CASE("transfer: resume from the on-disk record") {
  Rig rig;
  {
    Transfer& t = *rig.t;
    rig.copy_regions(10);
    rig.write(2 * rig.rs, 100);
    rig.write(7 * rig.rs + 50, 100);
    t.set_rate_limit(1 * MiB);
    REQUIRE(t.checkpoint().ok());
    REQUIRE(t.persisted_pointer() == 10 * rig.rs);
    REQUIRE(t.recopy(2).ok());   // not checkpointed: bit 2 stays on disk
    rig.copy_regions(3);         // P = 13 regions in memory only
    rig.write(11 * rig.rs, 100);  // below the in-memory P: bit 11 persisted
    rig.write(14 * rig.rs, 100);  // above P: nothing persisted
    rig.t.reset();                // "crash": no final checkpoint
  }
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(rec->progress_pointer == 10 * rig.rs);
  CHECK(bits_of(*rec) == std::vector<uint64_t>{2, 7, 11});
  CHECK(rec->rate_limit == 1 * MiB);
  const uint64_t gen = rec->generation;

  // Rule 5 holds for what is on disk now.
  check_rule5(rig);

  Transfer t2(rig.g, &*rec);
  CHECK(t2.progress_pointer() == 10 * rig.rs);
  CHECK(t2.persisted_pointer() == 10 * rig.rs);
  CHECK(t2.sync_status() == SyncStatus::kCopying);
  CHECK(t2.pending_count() == 3);
  CHECK(dirty_list(t2) == std::vector<uint64_t>{2, 7, 11});
  CHECK(bits_of(t2.bitmap_bytes(), rig.regions) == std::vector<uint64_t>{2, 7, 11});
  CHECK(t2.rate_limit() == 1 * MiB);
  CHECK_FALSE(t2.paused());

  // The next record continues the generations, in the other copy.
  REQUIRE(t2.checkpoint().ok());
  std::optional<JobRecord> next = rig.newest();
  REQUIRE(next.has_value());
  CHECK(next->generation == gen + 1);
  CHECK(rig.record_copy(static_cast<int>((gen + 1) % 2))->generation == gen + 1);
  CHECK(next->progress_pointer == 10 * rig.rs);
  CHECK(bits_of(*next) == std::vector<uint64_t>{2, 7, 11});

  // Finishing from there makes the destination equal the source.
  while (t2.progress_pointer() < rig.size) REQUIRE(t2.copy_next().ok());
  for (std::optional<uint64_t> r = t2.next_dirty(0); r; r = t2.next_dirty(*r + 1)) REQUIRE(t2.recopy(*r).ok());
  CHECK(t2.pending_count() == 0);
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
}

TEST_CASE("transfer: a resumed record's flags come back, and P never exceeds the range") {
  Rig rig;
  JobRecord rec;
  rec.job_id = 7;
  rec.generation = 41;
  rec.progress_pointer = rig.size + 12345;  // damaged beyond the range
  rec.sync_status = SyncStatus::kResyncing;
  rec.paused = true;
  rec.rate_limit = 5 * MiB;
  rec.region_count = rig.regions;
  rec.bitmap = {uint64_t{1} << 15};
  Transfer t(rig.g, &rec);
  CHECK(t.progress_pointer() <= rig.size);
  CHECK(t.paused());
  CHECK(t.rate_limit() == 5 * MiB);
  CHECK(dirty_list(t) == std::vector<uint64_t>{15});
  REQUIRE(t.checkpoint().ok());
  std::optional<JobRecord> on_disk = rig.newest();
  REQUIRE(on_disk.has_value());
  CHECK(on_disk->generation == 42);
  CHECK(on_disk->paused);
  CHECK(on_disk->progress_pointer <= rig.size);
}

TEST_CASE("transfer: finish() makes writes fail with EAGAIN; writers held by block_writes() retry") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(rig.regions);
  t.set_sync_status(SyncStatus::kSynchronized);
  rig.write(3 * rig.rs, 100);
  REQUIRE(t.dirty_count() == 1);
  const std::string before = rig.src_region(9);

  t.block_writes();
  std::atomic<bool> done{false};
  Status held;
  std::thread writer([&] {
    std::string data(100, 'w');
    held = t.write(9 * rig.rs, data.data(), data.size());
    done.store(true);
  });
  std::this_thread::sleep_for(150ms);
  CHECK_FALSE(done.load());  // held while writes are blocked
  t.finish();
  writer.join();
  CHECK(done.load());
  CHECK(held.code() == EAGAIN);
  CHECK(t.finished());
  CHECK(rig.src_region(9) == before);

  std::string data(10, 'z');
  Status late = t.write(0, data.data(), data.size());
  CHECK(late.code() == EAGAIN);
  CHECK(rig.src_at(0, 10) != data);
  CHECK(rig.dst_at(0, 10) != data);
  CHECK(t.dirty_count() == 0);  // finish clears the dual-written bits
}

TEST_CASE("transfer: unblock_writes() lets held writers through without finishing") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(4);
  t.block_writes();
  std::atomic<bool> done{false};
  Status held;
  std::string data(100, 'u');
  std::thread writer([&] {
    held = t.write(10 * rig.rs, data.data(), data.size());
    done.store(true);
  });
  std::this_thread::sleep_for(150ms);
  CHECK_FALSE(done.load());
  t.unblock_writes();
  writer.join();
  CHECK(held.ok());
  CHECK_FALSE(t.finished());
  CHECK(rig.src_at(10 * rig.rs, 100) == data);
  // block_writes() returns at once when no write is in progress, and again after.
  t.block_writes();
  t.unblock_writes();
  CHECK(rig.write(11 * rig.rs, 10).size() == 10);
}

TEST_CASE("transfer: writers racing the copier; the destination ends equal to the source") {
  Rig rig(RigOptions{.region_size = 64 * KiB, .regions = 48});
  Transfer& t = *rig.t;
  const uint64_t size = rig.size;

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0}, failures{0}, eagain{0};
  std::shared_mutex gate;  // writers shared; the checker takes it to see no write in flight
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + static_cast<uint64_t>(w));
      while (!stop.load()) {
        const uint64_t len = 1 + rng() % (96 * KiB);
        const uint64_t off = rng() % (size - len + 1);
        std::string data = random_bytes(rng, len);
        Status st;
        {
          std::shared_lock lock(gate);
          st = t.write(off, data.data(), data.size());
        }
        if (st.code() == EAGAIN) {
          eagain.fetch_add(1);
          return;
        }
        if (!st.ok()) failures.fetch_add(1);
        writes.fetch_add(1);
      }
    });
  }

  auto check_now = [&] {
    std::unique_lock lock(gate);
    check_rule5(rig);
  };

  // First pass with periodic checkpoints.
  while (t.progress_pointer() < size) {
    REQUIRE(t.copy_next().ok());
    if ((t.progress_pointer() / rig.rs) % 8 == 0) {
      REQUIRE(t.checkpoint().ok());
      check_now();
    }
    std::this_thread::sleep_for(200us);
  }
  REQUIRE(t.checkpoint().ok());
  check_now();
  // Resync passes.
  t.set_sync_status(SyncStatus::kResyncing);
  for (int pass = 0; pass < 3; ++pass) {
    for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) REQUIRE(t.recopy(*r).ok());
    REQUIRE(t.checkpoint().ok());
    check_now();
  }
  // Synchronized: recopy the rest until nothing is pending with writes held.
  t.set_sync_status(SyncStatus::kSynchronized);
  REQUIRE(t.checkpoint().ok());
  bool switched = false;
  for (int attempt = 0; attempt < 1000 && !switched; ++attempt) {
    for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) REQUIRE(t.recopy(*r).ok());
    std::this_thread::sleep_for(1ms);  // let writers write in the synchronized state
    if (t.pending_count() != 0) continue;
    t.block_writes();
    if (t.pending_count() != 0) {
      t.unblock_writes();
      continue;
    }
    // No write in progress, none can start: the two sides must be equal.
    CHECK(t.write_failure().empty());
    CHECK(rig.dst_at(0, size) == rig.src_at(0, size));
    check_rule5(rig);
    t.finish();
    switched = true;
  }
  CHECK(switched);
  if (!switched) {
    stop.store(true);
    t.block_writes();
    t.finish();
  }
  stop.store(true);
  for (std::thread& th : writers) th.join();

  CHECK(failures.load() == 0);
  CHECK(writes.load() > 20);
  CHECK(rig.dst_at(0, size) == rig.src_at(0, size));
  CHECK(eagain.load() <= 4);
}

// ---- VolumeSet: IoGuard and quiesce() ----

namespace {

const char* kVgConfig = R"(vg:
  name: vgq
  extent_size: 64KiB
  region_size: 64KiB
pvs:
  - {name: pv0, path: pv0.img, size: 32MiB}
lvs:
  - {name: lv, size: 256KiB}
)";

struct VgFixture {
  TempDir dir;
  std::unique_ptr<VgStore> store;
  VgFixture() {
    std::string path = dir / "vg.yaml";
    vgfs_test::write_file(path, kVgConfig);
    Result<VgConfig> c = load_config(path);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    std::vector<std::string> notes, warnings;
    Status s = VgStore::create(*c, false, &notes);
    REQUIRE_MESSAGE(s.ok(), s.message());
    Result<std::unique_ptr<VgStore>> r = VgStore::open(*c, OpenMode::kReadWrite, &warnings);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    store = std::move(*r);
  }
};

}  // namespace

TEST_CASE("volume: quiesce() returns when no IoGuard is held") {
  VgFixture f;
  VolumeSet v(*f.store);
  auto q = std::async(std::launch::async, [&] { v.quiesce(); });
  CHECK(q.wait_for(5s) == std::future_status::ready);
  { VolumeSet::IoGuard done(v); }  // a guard that has ended does not count
  auto q2 = std::async(std::launch::async, [&] { v.quiesce(); });
  CHECK(q2.wait_for(5s) == std::future_status::ready);
}

TEST_CASE("volume: quiesce() waits for the IoGuards taken before it, not for later ones") {
  VgFixture f;
  VolumeSet v(*f.store);
  auto early = std::make_unique<VolumeSet::IoGuard>(v);
  std::atomic<bool> returned{false};
  auto q = std::async(std::launch::async, [&] {
    v.quiesce();
    returned.store(true);
  });
  CHECK(q.wait_for(200ms) == std::future_status::timeout);
  CHECK_FALSE(returned.load());

  // A request that begins after quiesce() started is not waited for.
  auto late = std::make_unique<VolumeSet::IoGuard>(v);
  early.reset();
  CHECK(q.wait_for(5s) == std::future_status::ready);
  CHECK(returned.load());

  // The next quiesce() waits for that later request.
  auto q2 = std::async(std::launch::async, [&] { v.quiesce(); });
  CHECK(q2.wait_for(200ms) == std::future_status::timeout);
  late.reset();
  CHECK(q2.wait_for(5s) == std::future_status::ready);

  // Guards held in several threads are all waited for.
  std::atomic<int> holding{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> holders;
  for (int i = 0; i < 4; ++i)
    holders.emplace_back([&] {
      VolumeSet::IoGuard g(v);
      holding.fetch_add(1);
      while (!release.load()) std::this_thread::sleep_for(1ms);
    });
  while (holding.load() < 4) std::this_thread::sleep_for(1ms);
  auto q3 = std::async(std::launch::async, [&] { v.quiesce(); });
  CHECK(q3.wait_for(200ms) == std::future_status::timeout);
  release.store(true);
  for (std::thread& th : holders) th.join();
  CHECK(q3.wait_for(5s) == std::future_status::ready);
}

// ---- discard and zero-range follow the write rules: docs/migration.md rules 2-5,
// "Discard and zero-range are writes" ----

namespace {
bool all_zero(const std::string& s) { return s.find_first_not_of('\0') == std::string::npos; }
}  // namespace

TEST_CASE("transfer: a discard below P sets the bit, persists it first, and the recopy zeroes the destination") {
  for (bool zero : {false, true}) {
    CAPTURE(zero);
    Rig rig;
    Transfer& t = *rig.t;
    rig.copy_regions(8);
    REQUIRE(rig.region_equal(3));
    const std::string old3 = rig.dst_region(3);
    REQUIRE_FALSE(all_zero(old3));
    REQUIRE_FALSE(rig.newest().has_value());

    Status st = t.discard(3 * rig.rs, rig.rs, zero);
    REQUIRE_MESSAGE(st.ok(), st.message());
    // Dirty in memory and in the persisted record before the source changed.
    CHECK(dirty_list(t) == std::vector<uint64_t>{3});
    std::optional<JobRecord> rec = rig.newest();
    REQUIRE(rec.has_value());
    CHECK(bits_of(*rec) == std::vector<uint64_t>{3});
    CHECK(all_zero(rig.src_region(3)));
    CHECK(rig.dst_region(3) == old3);  // the destination waits for the recopy

    // The recopy (a hole or zeros in the source) makes the destination read zeros.
    REQUIRE(t.recopy(3).ok());
    CHECK(all_zero(rig.dst_region(3)));
    rig.copy_regions(rig.regions - 8);
    CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
  }
}

TEST_CASE("transfer: a discard above P touches the source only; the first pass carries the zeros over") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(2);
  REQUIRE(t.discard(10 * rig.rs + 100, 3 * rig.rs, false).ok());
  CHECK(dirty_list(t).empty());
  CHECK(all_zero(rig.src_at(10 * rig.rs + 100, 3 * rig.rs)));
  CHECK(rig.dst_untouched(10 * rig.rs, 4 * rig.rs));
  rig.copy_regions(rig.regions - 2);
  CHECK(all_zero(rig.dst_at(10 * rig.rs + 100, 3 * rig.rs)));
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
}

TEST_CASE("transfer: in the synchronized state a discard zeroes both sides and is persisted as dirty") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(rig.regions);
  t.set_sync_status(SyncStatus::kSynchronized);
  REQUIRE(t.checkpoint().ok());
  REQUIRE(t.discard(4 * rig.rs + 7, 3000, true).ok());    // zero-range, unaligned
  REQUIRE(t.discard(14 * rig.rs, 2 * rig.rs, false).ok());  // punch, whole regions
  CHECK(all_zero(rig.src_at(4 * rig.rs + 7, 3000)));
  CHECK(all_zero(rig.dst_at(4 * rig.rs + 7, 3000)));
  CHECK(all_zero(rig.dst_at(14 * rig.rs, 2 * rig.rs)));
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
  CHECK(bits_of(t.bitmap_bytes(), rig.regions) == std::vector<uint64_t>{4, 14, 15});
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(bits_of(*rec) == std::vector<uint64_t>{4, 14, 15});
}

TEST_CASE("transfer: a discard whose bit cannot be persisted leaves the source as it was") {
  Rig rig(RigOptions{.record_read_only = true});
  rig.copy_regions(6);
  const std::string before = rig.src_region(2);
  Status st = rig.t->discard(2 * rig.rs, rig.rs, false);
  CHECK(st.code() == EIO);
  CHECK(rig.src_region(2) == before);
  CHECK(rig.region_equal(2));
}

TEST_CASE("transfer: a discard after finish() is told to look the map up again (EAGAIN)") {
  Rig rig;
  rig.copy_regions(rig.regions);
  rig.t->block_writes();
  rig.t->finish();
  const std::string before = rig.src_region(1);
  CHECK(rig.t->discard(rig.rs, rig.rs, false).code() == EAGAIN);
  CHECK(rig.src_region(1) == before);
}

// ---- the copier and the record against injected PV faults ----

TEST_CASE("faults: a destination write failure fails the copy with the PV named; P stays, nothing is lost") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(3);
  FaultInjector faults;
  faults.add({.op = FaultOp::kWrite, .kind = FaultKind::kError, .path = rig.dst_path, .error = ENOSPC});
  FaultInjector::Scope scope(faults);
  Status st = t.copy_next();
  CHECK(st.code() == EIO);
  CHECK(st.message().find("PV dst") != std::string::npos);
  CHECK(st.message().find(std::strerror(ENOSPC)) != std::string::npos);
  CHECK(faults.fired(0) == 1);
  CHECK(t.progress_pointer() == 3 * rig.rs);  // the region is not counted copied
  CHECK(t.pending_count() == 1);              // and is dirty, so a retry recopies it
  // The next attempt goes through and the range ends equal.
  rig.copy_regions(rig.regions - 3);
  for (std::optional<uint64_t> r = t.next_dirty(0); r; r = t.next_dirty(*r + 1)) REQUIRE(t.recopy(*r).ok());
  CHECK(rig.dst_at(0, rig.size) == rig.src_at(0, rig.size));
}

TEST_CASE("faults: a short read of the source fails the copy instead of copying a part") {
  Rig rig;
  FaultInjector faults;
  faults.add({.op = FaultOp::kRead, .kind = FaultKind::kShort, .path = rig.src_path, .keep = 1000});
  FaultInjector::Scope scope(faults);
  Status st = rig.t->copy_next();
  CHECK(st.code() == EIO);
  CHECK(st.message().find("PV src") != std::string::npos);
  CHECK(rig.t->progress_pointer() == 0);
  CHECK(rig.dst_untouched(0, rig.rs));
}

TEST_CASE("faults: a failing destination fdatasync keeps the persisted P where it was") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(4);
  REQUIRE(t.checkpoint().ok());
  REQUIRE(rig.newest()->progress_pointer == 4 * rig.rs);
  rig.copy_regions(4);
  FaultInjector faults;
  faults.add({.op = FaultOp::kSync, .path = rig.dst_path});
  {
    FaultInjector::Scope scope(faults);
    CHECK(t.checkpoint().code() == EIO);
  }
  CHECK(t.persisted_pointer() == 4 * rig.rs);
  CHECK(rig.newest()->progress_pointer == 4 * rig.rs);
  REQUIRE(t.checkpoint().ok());
  CHECK(rig.newest()->progress_pointer == 8 * rig.rs);
}

TEST_CASE("faults: a record write failure returns EIO to the writer and nothing is lost") {
  for (FaultOp op : {FaultOp::kWrite, FaultOp::kSync}) {
    CAPTURE(static_cast<int>(op));
    Rig rig;
    rig.copy_regions(6);
    const std::string before = rig.src_region(2);
    FaultInjector faults;
    faults.add({.op = op, .path = rig.rec_path});
    {
      FaultInjector::Scope scope(faults);
      Status st;
      rig.write(2 * rig.rs + 10, 100, &st);
      CHECK(st.code() == EIO);
      CHECK(st.message().find("PV rec") != std::string::npos);
      CHECK(faults.fired(0) == 1);
    }
    // The source never saw the write, so the destination copy is still true.
    CHECK(rig.src_region(2) == before);
    CHECK(rig.region_equal(2));
    check_rule5(rig);
    // Once the record can be written again, so can the region.
    std::string data = rig.write(2 * rig.rs + 10, 100);
    CHECK(rig.src_at(2 * rig.rs + 10, 100) == data);
    REQUIRE(rig.newest().has_value());
    CHECK(bits_of(*rig.newest()) == std::vector<uint64_t>{2});
  }
}

TEST_CASE("faults: a torn record write leaves the previous generation readable") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(2);
  REQUIRE(t.checkpoint().ok());  // generation 1, copy 1
  rig.copy_regions(2);
  REQUIRE(t.checkpoint().ok());  // generation 2, copy 0
  REQUIRE(rig.newest_generation() == 2);
  rig.copy_regions(2);
  FaultInjector faults;
  // Generation 3 goes to copy 1: only its first 100 bytes arrive.
  faults.add({.op = FaultOp::kWrite, .kind = FaultKind::kTear, .path = rig.rec_path,
              .begin = rig.g.record.offset + rig.copy_size, .end = rig.g.record.offset + 2 * rig.copy_size,
              .keep = 100});
  {
    FaultInjector::Scope scope(faults);
    CHECK(t.checkpoint().code() == EIO);
  }
  CHECK(faults.fired(0) == 1);
  CHECK_FALSE(rig.record_copy(1).has_value());  // torn: its checksum fails
  std::optional<JobRecord> rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(rec->generation == 2);
  CHECK(rec->progress_pointer == 4 * rig.rs);
  CHECK(t.persisted_pointer() == 4 * rig.rs);
  check_rule5(rig);
  // The next checkpoint writes generation 3 whole.
  REQUIRE(t.checkpoint().ok());
  rec = rig.newest();
  REQUIRE(rec.has_value());
  CHECK(rec->generation == 3);
  CHECK(rec->progress_pointer == 6 * rig.rs);
}

TEST_CASE("faults: in the synchronized state a destination write failure is kept for the job, the source write stands") {
  Rig rig;
  Transfer& t = *rig.t;
  rig.copy_regions(rig.regions);
  t.set_sync_status(SyncStatus::kSynchronized);
  REQUIRE(t.checkpoint().ok());
  FaultInjector faults;
  faults.add({.op = FaultOp::kWrite, .path = rig.dst_path});
  FaultInjector::Scope scope(faults);
  std::string data = rig.write(5 * rig.rs, 100);
  CHECK(rig.src_at(5 * rig.rs, 100) == data);
  CHECK(t.write_failure().find("PV dst") != std::string::npos);
}
