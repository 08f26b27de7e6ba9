// Unit tests of the asynchronous LV data path (VolumeSet::AsyncIo,
// include/vgfs/volume.h) over PVs whose backend completes submit()s later,
// in an order the test chooses (as an NBD server may reply), and of the
// fsync report of writes a PV lost (VolumeSet::flush).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vgfs/config.h"
#include "vgfs/fault_backend.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

constexpr uint64_t kEs = 64 * KiB;

// lv: LE 0-1 -> pv0, LE 2-4 -> pv1, LE 5 -> pv0, LE 6-7 -> pv1.
const char* kConfig = R"(vg:
  name: vga
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
  - name: other
    extents:
      - {le: 0-1, pv: pv0, pe: 30-31}
)";

// A backend that holds every submit()ted request until the test completes
// it (NBD's model: the reply comes later, from another thread, in any
// order), and whose write_losses() the test sets.
class HeldBackend final : public PvBackend {
 public:
  static inline std::mutex m;
  static inline std::vector<std::pair<const HeldBackend*, PvRequest*>> held;  // guarded by m
  std::atomic<uint64_t> losses{0};

  explicit HeldBackend(std::unique_ptr<PvBackend> inner) : PvBackend(inner->label()), inner_(std::move(inner)) {}
  static std::unique_ptr<PvBackend> wrap(const std::string& path, std::unique_ptr<PvBackend> inner) {
    return std::make_unique<HeldBackend>(FaultBackend::wrap_for_scope(path, std::move(inner)));
  }
  uint64_t size() const override { return inner_->size(); }
  PvCapabilities capabilities() const override {
    PvCapabilities c = inner_->capabilities();
    c.local_fd = -1;
    c.async_submit = true;
    return c;
  }
  Status check_range(uint64_t offset, uint64_t length) const override { return inner_->check_range(offset, length); }
  uint64_t write_losses() const override { return losses.load(); }
  void submit(PvRequest& r) const override {
    std::lock_guard lock(m);
    held.emplace_back(this, &r);
  }
  // Runs a held request now (the inner backend's synchronous path).
  void run(PvRequest& r) const { PvBackend::submit(r); }

 protected:
  Status do_read(void* buf, uint64_t length, uint64_t offset) const override {
    return inner_->read(buf, length, offset);
  }
  Status do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const override {
    return inner_->write(buf, length, offset, fua ? WriteFlags::kFua : WriteFlags::kNone);
  }
  Status do_flush() const override { return inner_->flush(); }

 private:
  std::unique_ptr<PvBackend> inner_;
};

std::vector<std::pair<const HeldBackend*, PvRequest*>> take_held() {
  std::lock_guard lock(HeldBackend::m);
  return std::exchange(HeldBackend::held, {});
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<VgStore> store;
  std::unique_ptr<VolumeSet> volume;
  uint32_t lv = 0;

  Fixture() {
    std::string path = dir / "vg.yaml";
    vgfs_test::write_file(path, kConfig);
    Result<VgConfig> c = load_config(path);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    std::vector<std::string> notes;
    Status s = VgStore::create(*c, false, &notes);
    REQUIRE_MESSAGE(s.ok(), s.message());
    std::vector<std::string> warnings;
    PvDevice::set_backend_wrapper(&HeldBackend::wrap);
    Result<std::unique_ptr<VgStore>> r = VgStore::open(*c, OpenMode::kReadWrite, &warnings);
    PvDevice::set_backend_wrapper(&FaultBackend::wrap_for_scope);  // the test binary's default (tests/main.cc)
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    store = std::move(*r);
    volume = std::make_unique<VolumeSet>(*store);
    lv = *volume->slot("lv");
    take_held();
  }
  const HeldBackend& pv(uint32_t i) const { return static_cast<const HeldBackend&>(store->pv(i).backend()); }
};

struct Outcome {
  std::atomic<int> calls{0};
  Status status;
  size_t bytes = 0;
};

void record(VolumeSet::AsyncIo& io, Result<size_t> r) {
  auto& o = *static_cast<Outcome*>(io.context);
  if (r.ok()) o.bytes = *r;
  else o.status = r.status();
  o.calls.fetch_add(1);
}

std::vector<char> pattern(size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return v;
}

}  // namespace

TEST_CASE("async io: a read over three PV pieces completes once, after its last piece, whatever the reply order") {
  Fixture f;
  REQUIRE(f.volume->has_async_pvs());
  const uint64_t off = kEs + 32 * KiB, len = 4 * kEs;  // LE 1 (pv0), LE 2-4 (pv1), LE 5 (pv0)
  std::vector<char> data = pattern(len, 1);
  REQUIRE(f.volume->write(f.lv, off, data.data(), len).ok());
  REQUIRE(take_held().empty());  // write() waits for its pieces itself: nothing submitted

  std::vector<char> got(len, 0);
  Outcome o;
  VolumeSet::AsyncIo io;
  io.done = record;
  io.context = &o;
  REQUIRE(f.volume->start_read(io, f.lv, off, got.data(), len));
  auto held = take_held();
  REQUIRE(held.size() == 3);
  // Replies in reverse order: nothing is reported before the last.
  std::reverse(held.begin(), held.end());
  for (size_t i = 0; i < held.size(); ++i) {
    CHECK(o.calls.load() == 0);
    held[i].first->run(*held[i].second);
  }
  CHECK(o.calls.load() == 1);
  CHECK(o.status.ok());
  CHECK(o.bytes == len);
  CHECK(got == data);
}

TEST_CASE("async io: writes completed out of order land where the map says; a read past the end is clipped") {
  Fixture f;
  const uint64_t off = 3 * kEs + 100, len = 3 * kEs;  // LE 3-4 (pv1), LE 5 (pv0), LE 6 (pv1)
  std::vector<char> data = pattern(len, 2);
  Outcome o;
  VolumeSet::AsyncIo io;
  io.done = record;
  io.context = &o;
  REQUIRE(f.volume->start_write(io, f.lv, off, data.data(), len));
  auto held = take_held();
  REQUIRE(held.size() == 3);
  held[1].first->run(*held[1].second);
  held[2].first->run(*held[2].second);
  CHECK(o.calls.load() == 0);
  held[0].first->run(*held[0].second);
  REQUIRE(o.calls.load() == 1);
  CHECK(o.bytes == len);
  std::vector<char> back(len);
  REQUIRE(f.volume->read(f.lv, off, back.data(), len).ok());
  CHECK(back == data);

  // The LV is 8 extents: a request crossing its end does what reaches it.
  Outcome tail;
  VolumeSet::AsyncIo io2;
  io2.done = record;
  io2.context = &tail;
  std::vector<char> buf(kEs);
  REQUIRE(f.volume->start_read(io2, f.lv, 8 * kEs - 4096, buf.data(), kEs));
  for (auto& [b, r] : take_held()) b->run(*r);
  CHECK(tail.bytes == 4096);
  // Past the end: nothing to send, the synchronous path answers.
  CHECK_FALSE(f.volume->start_read(io2, f.lv, 8 * kEs, buf.data(), kEs));
  CHECK(take_held().empty());
}

TEST_CASE("async io: one failing piece fails the request once, after every piece is back") {
  Fixture f;
  std::vector<char> buf(3 * kEs);
  Outcome o;
  VolumeSet::AsyncIo io;
  io.done = record;
  io.context = &o;
  REQUIRE(f.volume->start_read(io, f.lv, kEs, buf.data(), 3 * kEs));  // LE 1 (pv0), LE 2-3 (pv1)
  auto held = take_held();
  REQUIRE(held.size() == 2);
  held[1].second->done(*held[1].second, Status::Error(EIO, "PV pv1: NBD read failed: Input/output error"));
  CHECK(o.calls.load() == 0);
  held[0].first->run(*held[0].second);
  CHECK(o.calls.load() == 1);
  CHECK(o.status.code() == EIO);
  CHECK(o.status.message().find("pv1") != std::string::npos);
  // The op is reusable from its callback's return: a second read works.
  Outcome o2;
  io.context = &o2;
  REQUIRE(f.volume->start_read(io, f.lv, 0, buf.data(), kEs));
  for (auto& [b, r] : take_held()) b->run(*r);
  CHECK(o2.calls.load() == 1);
  CHECK(o2.status.ok());
}

TEST_CASE("async io: quiesce() waits for a request still on the wire") {
  Fixture f;
  std::vector<char> buf(kEs);
  Outcome o;
  VolumeSet::AsyncIo io;
  io.done = record;
  io.context = &o;
  REQUIRE(f.volume->start_read(io, f.lv, 0, buf.data(), kEs));
  std::atomic<bool> quiesced{false};
  std::thread t([&] {
    f.volume->quiesce();
    quiesced = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(quiesced.load());  // the old map's PEs may not be handed out yet
  for (auto& [b, r] : take_held()) b->run(*r);
  t.join();
  CHECK(quiesced.load());
  CHECK(o.calls.load() == 1);
}

TEST_CASE("async io: a request longer than one FUSE request goes the synchronous way") {
  Fixture f;
  std::vector<char> buf(2 * kMaxIoSize);
  VolumeSet::AsyncIo io;
  CHECK_FALSE(f.volume->start_read(io, f.lv, 0, buf.data(), kMaxIoSize + 1));
  CHECK(take_held().empty());
}

TEST_CASE("fsync reports writes a PV lost once, even after another flush of that PV saw it first") {
  Fixture f;
  std::vector<char> data = pattern(4096, 3);
  REQUIRE(f.volume->write(f.lv, 0, data.data(), data.size()).ok());
  CHECK(f.volume->flush().ok());
  // pv0's server restarted holding acknowledged writes; a job's checkpoint
  // flushes pv0 first (its own flush succeeds).
  const_cast<HeldBackend&>(f.pv(0)).losses = 1;
  CHECK(f.store->pv(0).sync().ok());
  Status st = f.volume->flush();
  CHECK(st.code() == EIO);
  CHECK(st.message().find("pv0") != std::string::npos);
  CHECK(f.volume->flush().ok());  // once
  // A PV published again (another LV's change) keeps what was reported.
  f.volume->republish_all(f.store->metadata());
  CHECK(f.volume->flush().ok());
  const_cast<HeldBackend&>(f.pv(1)).losses = 2;
  CHECK(f.volume->flush().code() == EIO);
  CHECK(f.volume->flush().ok());
}

TEST_CASE("fsync of an LV reports the loss to that LV, not to another LV's fsync first") {
  Fixture f;
  const uint32_t other = *f.volume->slot("other");
  std::vector<char> data = pattern(4096, 4);
  REQUIRE(f.volume->write(other, 0, data.data(), data.size()).ok());
  CHECK(f.volume->flush(other).ok());  // other's writes are durable
  REQUIRE(f.volume->write(f.lv, 0, data.data(), data.size()).ok());
  const_cast<HeldBackend&>(f.pv(0)).losses = 1;  // lv's unflushed write went with pv0's server
  CHECK(f.volume->flush(other).ok());            // other wrote nothing since: nothing of it was lost
  Status st = f.volume->flush(f.lv);
  CHECK(st.code() == EIO);
  CHECK(st.message().find("LV lv") != std::string::npos);
  CHECK(f.volume->flush(f.lv).ok());  // once
  // Both written, one loss: both fsyncs report it (conservative, per LV).
  REQUIRE(f.volume->write(f.lv, 0, data.data(), data.size()).ok());
  REQUIRE(f.volume->write(other, 0, data.data(), data.size()).ok());
  const_cast<HeldBackend&>(f.pv(1)).losses = 1;
  CHECK(f.volume->flush(other).code() == EIO);
  CHECK(f.volume->flush(f.lv).code() == EIO);
  CHECK(f.volume->flush(f.lv).ok());
  // The mount-wide flush() (unmount) keeps its own count: it saw neither.
  CHECK(f.volume->flush().code() == EIO);
}
