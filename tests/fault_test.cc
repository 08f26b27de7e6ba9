// Unit tests of fault injection (the rules of include/vgfs/fault_injector.h
// applied by include/vgfs/fault_backend.h) and of the PV I/O under it: rule
// matching, PvDevice::zero() giving zeros where a punch does nothing, a PV
// that shrinks under the data path, and the FUSE handler guard
// (src/fuse/guarded.h). The copier and record paths under faults are in
// transfer_test.cc, the commit path in vg_store_test.cc; the backends
// themselves in pv_backend_test.cc.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>
#include <chrono>
#include <optional>
#include <thread>

#include "fuse/guarded.h"
#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/config.h"
#include "vgfs/fault_injector.h"
#include "vgfs/pv_device.h"
#include "vgfs/units.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "vgfs/volume_manager.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

bool all_zero(const std::string& s) { return s.find_first_not_of('\0') == std::string::npos; }

PvDevice open_dev(const std::string& path, const char* label = "PV t") {
  Result<PvDevice> d = PvDevice::open(path, true, label);
  REQUIRE_MESSAGE(d.ok(), d.status().message());
  return std::move(*d);
}

}  // namespace

TEST_CASE("fault injector: rules match by operation, path and range, skip then fire `times` times") {
  FaultInjector f;
  f.add({.op = FaultOp::kWrite, .path = "/a", .begin = 100, .end = 200, .skip = 1, .times = 2});
  auto fires = [&](FaultOp op, const char* path, uint64_t off, uint64_t len) { return f.check(op, path, off, len).fire; };
  CHECK_FALSE(fires(FaultOp::kRead, "/a", 150, 1));   // another operation
  CHECK_FALSE(fires(FaultOp::kWrite, "/b", 150, 1));  // another PV
  CHECK_FALSE(fires(FaultOp::kWrite, "/a", 0, 100));  // ends where the range begins
  CHECK_FALSE(fires(FaultOp::kWrite, "/a", 200, 5));  // starts at its end
  CHECK_FALSE(fires(FaultOp::kWrite, "/a", 99, 2));   // the skipped one
  CHECK(fires(FaultOp::kWrite, "/a", 199, 10));
  CHECK(fires(FaultOp::kWrite, "/a", 0, 1000));
  CHECK_FALSE(fires(FaultOp::kWrite, "/a", 150, 1));  // spent
  CHECK(f.fired(0) == 2);

  FaultInjector g;
  g.add({.op = FaultOp::kSync, .times = UINT64_MAX});  // every PV, forever
  for (int i = 0; i < 5; ++i) CHECK(g.check(FaultOp::kSync, "/any", 0, 0).fire);
  CHECK(FaultInjector::active() == nullptr);
  {
    FaultInjector::Scope scope(g);
    CHECK(FaultInjector::active() == &g);
  }
  CHECK(FaultInjector::active() == nullptr);
}

TEST_CASE("fault injector: PvDevice reports each injected fault with the PV and offset") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(64 * KiB, 'x'));
  PvDevice d = open_dev(path);
  FaultInjector f;
  f.add({.op = FaultOp::kRead, .error = EIO});
  f.add({.op = FaultOp::kWrite, .error = ENOSPC});
  f.add({.op = FaultOp::kWrite, .kind = FaultKind::kTear, .keep = 10});
  f.add({.op = FaultOp::kSync});
  FaultInjector::Scope scope(f);
  char buf[100];
  Status r = d.read_at(buf, sizeof buf, 4096);
  CHECK(r.code() == EIO);
  CHECK(r.message().find("PV t: read at byte 4096") != std::string::npos);
  const std::string data(100, 'y');
  Status w = d.write_at(data.data(), data.size(), 8192);
  CHECK(w.code() == EIO);
  CHECK(w.message().find(std::strerror(ENOSPC)) != std::string::npos);
  CHECK(vgfs_test::pread_file(path, 8192, 100) == std::string(100, 'x'));  // nothing written
  Status t = d.write_at(data.data(), data.size(), 8192);
  CHECK(t.code() == EIO);
  CHECK(vgfs_test::pread_file(path, 8192, 100) == std::string(10, 'y') + std::string(90, 'x'));  // torn
  CHECK(d.sync().code() == EIO);
  // Every rule is spent: the device works again.
  CHECK(d.read_at(buf, sizeof buf, 0).ok());
  CHECK(d.write_at(data.data(), data.size(), 0).ok());
  CHECK(d.sync().ok());
}

TEST_CASE("zero() gives zeros even where a hole punch does nothing or fails") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(4 * MiB, '\x5a'));
  PvDevice d = open_dev(path);
  SUBCASE("a punch that is a no-op (advisory discard)") {
    FaultInjector f;
    f.add({.op = FaultOp::kPunch, .kind = FaultKind::kNoop, .times = UINT64_MAX});
    FaultInjector::Scope scope(f);
    REQUIRE(d.zero(1 * MiB, 1 * MiB).ok());
    CHECK(f.fired(0) >= 1);
  }
  SUBCASE("a punch that fails") {
    FaultInjector f;
    f.add({.op = FaultOp::kPunch, .times = UINT64_MAX, .error = EOPNOTSUPP});
    FaultInjector::Scope scope(f);
    REQUIRE(d.zero(1 * MiB, 1 * MiB).ok());
  }
  SUBCASE("keep_allocated never punches") {
    FaultInjector f;
    f.add({.op = FaultOp::kPunch, .kind = FaultKind::kNoop, .times = UINT64_MAX});
    FaultInjector::Scope scope(f);
    REQUIRE(d.zero(1 * MiB, 1 * MiB, true).ok());
    CHECK(f.fired(0) == 0);
  }
  SUBCASE("an unaligned range") {
    FaultInjector f;
    f.add({.op = FaultOp::kPunch, .kind = FaultKind::kNoop, .times = UINT64_MAX});
    FaultInjector::Scope scope(f);
    REQUIRE(d.zero(1 * MiB + 123, 1 * MiB - 1000).ok());
    CHECK(all_zero(vgfs_test::pread_file(path, 1 * MiB + 123, 1 * MiB - 1000)));
    CHECK(vgfs_test::pread_file(path, 1 * MiB + 122, 1) == "\x5a");
    CHECK(vgfs_test::pread_file(path, 2 * MiB - 877, 1) == "\x5a");
    return;
  }
  CHECK(all_zero(vgfs_test::pread_file(path, 1 * MiB, 1 * MiB)));
  CHECK(vgfs_test::pread_file(path, 0, 1 * MiB) == std::string(1 * MiB, '\x5a'));
  CHECK(vgfs_test::pread_file(path, 2 * MiB, 2 * MiB) == std::string(2 * MiB, '\x5a'));
  CHECK(vgfs_test::fs::file_size(path) == 4 * MiB);
}

TEST_CASE("lvremove then lvcreate shows zeros where the PV's hole punch does nothing") {
  TempDir dir;
  std::unique_ptr<VgStore> store = vgfs_test::create_and_open(dir, "vg: {name: vg0, extent_size: 1MiB}\n"
                                                                   "pvs:\n"
                                                                   "  - {name: pv0, path: pv0.img, size: 32MiB}\n");
  VolumeSet volume(*store);
  VolumeManager manager(*store, volume);
  // Every punch on the PV is advisory from here on, like NBD trim.
  FaultInjector f;
  f.add({.op = FaultOp::kPunch, .kind = FaultKind::kNoop, .times = UINT64_MAX});
  FaultInjector::Scope scope(f);

  REQUIRE(manager.lvcreate("secret", 4 * MiB, {}).ok());
  std::optional<uint32_t> s = volume.slot("secret");
  REQUIRE(s);
  const std::string secret(4 * MiB, 'S');
  REQUIRE(*volume.write(*s, 0, secret.data(), secret.size()) == secret.size());
  REQUIRE(volume.flush().ok());
  REQUIRE(manager.lvremove("secret").ok());
  REQUIRE(manager.lvcreate("fresh", 4 * MiB, {}).ok());
  std::optional<uint32_t> fresh = volume.slot("fresh");
  REQUIRE(fresh);
  std::string back(4 * MiB, 'x');
  REQUIRE(*volume.read(*fresh, 0, back.data(), back.size()) == back.size());
  CHECK(all_zero(back));
  CHECK(f.fired(0) >= 1);  // the punch was tried, and did nothing
}

TEST_CASE("a PV that shrank under the data path fails reads and writes with EIO and does not grow") {
  TempDir dir;
  std::unique_ptr<VgStore> store = vgfs_test::create_and_open(dir, "vg: {name: vg0, extent_size: 1MiB}\n"
                                                                   "pvs:\n"
                                                                   "  - {name: pv0, path: pv0.img, size: 32MiB}\n"
                                                                   "lvs:\n"
                                                                   "  - {name: a, size: 8MiB}\n");
  VolumeSet volume(*store);
  std::optional<uint32_t> a = volume.slot("a");
  REQUIRE(a);
  const MapRun run = store->metadata().lvs[0].map.runs().at(0);
  const uint64_t lv_start = store->metadata().pvs[0].pe_start + run.pe * MiB;
  // Cut the image in the middle of the LV's fourth extent.
  const uint64_t cut = lv_start + 3 * MiB + 4096;
  REQUIRE(::truncate((dir / "pv0.img").c_str(), static_cast<off_t>(cut)) == 0);

  const PvDevice& dev = store->pv(0);
  CHECK(dev.check_range(lv_start, 3 * MiB).ok());
  Status past = dev.check_range(lv_start, 4 * MiB);
  CHECK(past.code() == EIO);
  CHECK(past.message().find("past its end") != std::string::npos);

  std::string buf(MiB, '\0');
  CHECK(*volume.read(*a, 0, buf.data(), buf.size()) == buf.size());  // before the cut: fine
  Result<size_t> r = volume.read(*a, 3 * MiB, buf.data(), buf.size());
  CHECK(r.status().code() == EIO);
  Result<size_t> w = volume.write(*a, 5 * MiB, buf.data(), buf.size());
  CHECK(w.status().code() == EIO);
  CHECK(volume.discard(*a, 5 * MiB, MiB, true).code() == EIO);
  CHECK(vgfs_test::fs::file_size(dir / "pv0.img") == cut);  // nothing grew it back
}

// ---- src/fuse/guarded.h ----

namespace {
struct FakeReq {
  int replies = 0;
  int err = -1;
};
void fake_reply_err(FakeReq* r, int err) {
  ++r->replies;
  r->err = err;
}
}  // namespace

TEST_CASE("guarded(): an exception answers the request once with EIO or ENOMEM and goes no further") {
  FakeReq req;
  guarded("read", &req, fake_reply_err, [] { throw std::bad_alloc(); });
  CHECK(req.replies == 1);
  CHECK(req.err == ENOMEM);

  req = {};
  guarded("read", &req, fake_reply_err, [] { throw std::runtime_error("[json.exception.type_error.316] invalid UTF-8"); });
  CHECK(req.replies == 1);
  CHECK(req.err == EIO);

  req = {};
  guarded("read", &req, fake_reply_err, [] { throw 42; });
  CHECK(req.replies == 1);
  CHECK(req.err == EIO);

  // A handler that replies itself and returns is left alone.
  req = {};
  guarded("read", &req, fake_reply_err, [&] { fake_reply_err(&req, 0); });
  CHECK(req.replies == 1);
  CHECK(req.err == 0);
}

TEST_CASE("a move whose destination writes fail ends failed with the PV named; the LV stays on its source") {
  TempDir dir;
  std::unique_ptr<VgStore> store = vgfs_test::create_and_open(dir, "vg: {name: vg0, extent_size: 1MiB}\n"
                                                                   "pvs:\n"
                                                                   "  - {name: pv0, path: pv0.img, size: 32MiB}\n"
                                                                   "  - {name: pv1, path: pv1.img, size: 32MiB}\n"
                                                                   "lvs:\n"
                                                                   "  - name: a\n"
                                                                   "    extents:\n"
                                                                   "      - {le: 0-3, pv: pv0, pe: 0-3}\n");
  VolumeSet volume(*store);
  VolumeManager manager(*store, volume);
  REQUIRE(manager.start().ok());
  std::optional<uint32_t> a = volume.slot("a");
  REQUIRE(a);
  const std::string data(4 * MiB, 'D');  // data, not holes: the copier must write
  REQUIRE(*volume.write(*a, 0, data.data(), data.size()) == data.size());
  const ExtentMap map_before = store->metadata().lvs[0].map;

  FaultInjector f;
  f.add({.op = FaultOp::kWrite, .path = store->pv(1).path(), .times = UINT64_MAX, .error = ENOSPC});
  FaultInjector::Scope scope(f);
  Result<JobsStarted> ids = manager.move("a", std::nullopt, "pv1", std::nullopt);
  REQUIRE_MESSAGE(ids.ok(), ids.status().message());
  REQUIRE(ids->jobs.size() == 1);
  Result<JobStatus> st = manager.job(ids->jobs.at(0));
  for (int i = 0; i < 6000 && st.ok() && st->sync_status != "failed" && st->sync_status != "completed"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st = manager.job(ids->jobs.at(0));
  }
  REQUIRE(st.ok());
  CHECK(st->sync_status == "failed");
  CHECK(st->reason.find(store->pv(1).label()) != std::string::npos);
  CHECK(f.fired(0) >= 1);
  CHECK(store->metadata().lvs[0].map == map_before);
  std::string back(4 * MiB, 'x');
  REQUIRE(*volume.read(*a, 0, back.data(), back.size()) == back.size());
  CHECK(back == data);
  manager.shutdown();
}
