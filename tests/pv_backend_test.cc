// Unit tests of the PV backends (include/vgfs/pv_backend.h): a local file,
// a window of one with hostile offsets, the fault wrapper with its own
// rules, copying with copy_file_range and through a buffer, extents of a
// sparse file, and the durability bookkeeping behind fsync of an LV.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "test_util.h"
#include "vgfs/fault_backend.h"
#include "vgfs/local_backend.h"
#include "vgfs/pv_backend.h"
#include "vgfs/pv_device.h"
#include "vgfs/units.h"
#include "vgfs/window_backend.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

std::unique_ptr<LocalBackend> open_local(const std::string& path, const char* label = "PV t") {
  Result<std::unique_ptr<LocalBackend>> b = LocalBackend::open(path, true, label);
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  return std::move(*b);
}

std::string read_back(const PvBackend& b, uint64_t offset, uint64_t length) {
  std::string s(length, '\0');
  Status st = b.read(s.data(), length, offset);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return s;
}

// Counts the flushes that reach the device under it.
class CountingBackend final : public PvBackend {
 public:
  explicit CountingBackend(std::unique_ptr<PvBackend> inner) : PvBackend(inner->label()), inner_(std::move(inner)) {}
  uint64_t size() const override { return inner_->size(); }
  PvCapabilities capabilities() const override {
    PvCapabilities c = inner_->capabilities();
    c.can_fua = false;  // do_write ignores it
    return c;
  }
  Status check_range(uint64_t o, uint64_t l) const override { return inner_->check_range(o, l); }
  mutable std::atomic<int> flushes{0};

 protected:
  Status do_read(void* b, uint64_t l, uint64_t o) const override { return inner_->read(b, l, o); }
  Status do_write(const void* b, uint64_t l, uint64_t o, bool) const override { return inner_->write(b, l, o); }
  Status do_flush() const override {
    ++flushes;
    return inner_->flush();
  }

 private:
  std::unique_ptr<PvBackend> inner_;
};

}  // namespace

TEST_CASE("local backend: full transfers, errors past the end name the PV and offset") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(64 * KiB, 'x'));
  auto b = open_local(path);
  CHECK(b->size() == 64 * KiB);
  const PvCapabilities caps = b->capabilities();
  CHECK(caps.local_fd >= 0);
  CHECK(caps.local_fd_offset == 0);
  CHECK_FALSE(caps.is_block_device);
  CHECK(caps.has_extents);

  const std::string data(1000, 'd');
  REQUIRE(b->write(data.data(), data.size(), 4096).ok());
  REQUIRE(b->write(data.data(), 10, 8192, WriteFlags::kFua).ok());
  CHECK(read_back(*b, 4096, 1000) == data);
  CHECK(vgfs_test::pread_file(path, 8192, 11) == std::string(10, 'd') + "x");

  char buf[100];
  Status past = b->read(buf, sizeof buf, 64 * KiB - 10);
  CHECK(past.code() == EIO);
  CHECK(past.message().find("PV t: read at byte 65536 is past the end") != std::string::npos);
  CHECK(b->check_range(0, 64 * KiB).ok());
  CHECK(b->check_range(64 * KiB, 1).code() == EIO);
  CHECK(b->check_range(1, UINT64_MAX).code() == EIO);  // no overflow into "fits"

  REQUIRE(b->zero(4096, 1000).ok());
  CHECK(read_back(*b, 4096, 1000) == std::string(1000, '\0'));
  CHECK(read_back(*b, 4095, 1) == "x");
  CHECK(vgfs_test::fs::file_size(path) == 64 * KiB);

  Result<std::unique_ptr<LocalBackend>> missing = LocalBackend::open(dir / "missing", true, "PV m");
  CHECK(missing.status().code() == ENOENT);
  CHECK(missing.status().message().find("PV m") != std::string::npos);
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  CHECK(LocalBackend::open(dir / "fifo", true, "PV f").status().code() == EINVAL);  // and did not block
}

TEST_CASE("local backend: extents of a sparse file are its data and holes") {
  TempDir dir;
  const std::string path = dir / "sparse.img";
  {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8 * MiB) == 0);
    const std::string data(64 * KiB, 'D');
    REQUIRE(::pwrite(fd, data.data(), data.size(), 2 * MiB) == static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  auto b = open_local(path);
  Result<PvExtent> first = b->extent_at(0, 8 * MiB);
  REQUIRE(first.ok());
  CHECK_FALSE(first->data);
  CHECK(first->offset == 0);
  CHECK(first->length == 2 * MiB);
  Result<PvExtent> data = b->extent_at(2 * MiB, 6 * MiB);
  REQUIRE(data.ok());
  CHECK(data->data);
  CHECK(data->length >= 64 * KiB);
  CHECK(data->length < 6 * MiB);
  Result<PvExtent> tail = b->extent_at(4 * MiB, 4 * MiB);
  REQUIRE(tail.ok());
  CHECK_FALSE(tail->data);
  CHECK(tail->length == 4 * MiB);
  // Capped at the length asked for.
  Result<PvExtent> capped = b->extent_at(0, 100);
  REQUIRE(capped.ok());
  CHECK(capped->length == 100);
  CHECK_FALSE(capped->data);

  // zero() of written data leaves a verified hole.
  REQUIRE(b->zero(2 * MiB, 64 * KiB).ok());
  Result<PvExtent> after = b->extent_at(0, 8 * MiB);
  REQUIRE(after.ok());
  CHECK_FALSE(after->data);
  CHECK(after->length == 8 * MiB);
  // keep_allocated zeroes without making a hole.
  const std::string more(64 * KiB, 'E');
  REQUIRE(b->write(more.data(), more.size(), 1 * MiB).ok());
  REQUIRE(b->zero(1 * MiB, 64 * KiB, true).ok());
  CHECK(read_back(*b, 1 * MiB, 64 * KiB) == std::string(64 * KiB, '\0'));
}

TEST_CASE("flush bookkeeping: flush_if_written flushes only after a write, zero or copy since the last flush") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(64 * KiB, 'x'));
  CountingBackend b(open_local(path));
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 0);  // nothing written since opening
  const std::string data(100, 'y');
  REQUIRE(b.write(data.data(), data.size(), 0).ok());
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 1);
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 1);  // the flush covered the write
  REQUIRE(b.zero(0, 512).ok());
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 2);
  REQUIRE(b.write(data.data(), data.size(), 0).ok());
  REQUIRE(b.flush().ok());  // an explicit flush counts too
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 3);
  b.note_written();  // a write around the backend (the FUSE splice path)
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 4);
  // Write with FUA where the backend has no FUA of its own: write + flush.
  REQUIRE(b.write(data.data(), data.size(), 0, WriteFlags::kFua).ok());
  CHECK(b.flushes == 5);
  REQUIRE(b.flush_if_written().ok());
  CHECK(b.flushes == 5);
  // A failed flush does not count.
  FaultInjector rules;
  rules.add({.op = FaultOp::kSync});
  FaultBackend faulty(open_local(path), path, &rules);
  REQUIRE(faulty.write(data.data(), data.size(), 0).ok());
  CHECK(faulty.flush_if_written().code() == EIO);
  CHECK(faulty.flush_if_written().ok());  // retried: the rule is spent
  CHECK(rules.fired(0) == 1);
}

TEST_CASE("window backend: reads and writes land inside the window only") {
  TempDir dir;
  const std::string path = dir / "disk.img";
  vgfs_test::write_file(path, std::string(1 * MiB, '.'));
  std::shared_ptr<const PvBackend> disk = open_local(path, "disk");
  Result<std::unique_ptr<WindowBackend>> w = WindowBackend::open(disk, 64 * KiB, 128 * KiB, "PV w");
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  const PvBackend& win = **w;
  CHECK(win.size() == 128 * KiB);
  CHECK(win.label() == "PV w");
  CHECK(win.capabilities().local_fd == disk->capabilities().local_fd);
  CHECK(win.capabilities().local_fd_offset == 64 * KiB);

  const std::string data(100, 'W');
  REQUIRE(win.write(data.data(), data.size(), 0).ok());
  REQUIRE(win.write(data.data(), data.size(), 128 * KiB - 100).ok());
  CHECK(vgfs_test::pread_file(path, 64 * KiB - 1, 102) == "." + data + ".");
  CHECK(vgfs_test::pread_file(path, 192 * KiB - 100, 101) == data + ".");
  CHECK(read_back(win, 0, 100) == data);
  REQUIRE(win.zero(0, 50).ok());
  CHECK(vgfs_test::pread_file(path, 64 * KiB - 1, 52) == "." + std::string(50, '\0') + "W");
  REQUIRE(win.flush().ok());
  CHECK(win.check_range(0, 128 * KiB).ok());

  // Everything that does not fit fails with EIO naming the window, and
  // leaves the image alone.
  const std::string before = vgfs_test::pread_file(path, 0, 1 * MiB);
  char buf[200];
  struct Hostile {
    uint64_t offset, length;
  };
  for (Hostile h : {Hostile{128 * KiB - 99, 100}, Hostile{128 * KiB, 1}, Hostile{UINT64_MAX, 1},
                    Hostile{UINT64_MAX - 64 * KiB + 1, 100}, Hostile{1, UINT64_MAX}, Hostile{200 * KiB, 100}}) {
    CAPTURE(h.offset);
    CAPTURE(h.length);
    const uint64_t n = std::min<uint64_t>(h.length, sizeof buf);
    Status r = win.read(buf, h.length == UINT64_MAX ? h.length : n, h.offset);
    CHECK(r.code() == EIO);
    CHECK(r.message().find("PV w: read") != std::string::npos);
    Status wr = win.write(data.data(), h.length == UINT64_MAX ? h.length : std::min<uint64_t>(n, data.size()), h.offset);
    CHECK(wr.code() == EIO);
    CHECK(win.zero(h.offset, h.length).code() == EIO);
    CHECK(win.discard(h.offset, h.length).code() == EIO);
    CHECK(win.write_zeroes(h.offset, h.length).code() == EIO);
    CHECK(win.check_range(h.offset, h.length).code() == EIO);
    CHECK(win.extent_at(h.offset, h.length).status().code() == EIO);
  }
  CHECK(vgfs_test::pread_file(path, 0, 1 * MiB) == before);

  // A window that does not fit its device, by overflow too, is refused.
  CHECK(WindowBackend::open(disk, 1 * MiB - 10, 11, "PV x").status().code() == EINVAL);
  CHECK(WindowBackend::open(disk, UINT64_MAX - 10, 100, "PV x").status().code() == EINVAL);
  CHECK(WindowBackend::open(disk, 10, UINT64_MAX, "PV x").status().code() == EINVAL);
  CHECK(WindowBackend::open(nullptr, 0, 0, "PV x").status().code() == EINVAL);
  CHECK(WindowBackend::open(disk, 1 * MiB, 0, "PV x").ok());  // empty, at the very end
}

TEST_CASE("window backend: extents are clipped to the window and its offsets") {
  TempDir dir;
  const std::string path = dir / "disk.img";
  {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8 * MiB) == 0);
    const std::string data(1 * MiB, 'D');
    REQUIRE(::pwrite(fd, data.data(), data.size(), 4 * MiB) == static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  std::shared_ptr<const PvBackend> disk = open_local(path, "disk");
  auto w = WindowBackend::open(disk, 2 * MiB, 4 * MiB, "PV w");
  REQUIRE(w.ok());
  Result<PvExtent> hole = (*w)->extent_at(0, 4 * MiB);
  REQUIRE(hole.ok());
  CHECK_FALSE(hole->data);
  CHECK(hole->offset == 0);
  CHECK(hole->length == 2 * MiB);
  Result<PvExtent> data = (*w)->extent_at(2 * MiB, 2 * MiB);
  REQUIRE(data.ok());
  CHECK(data->data);
  CHECK(data->offset == 2 * MiB);
  CHECK(data->length <= 2 * MiB);
  CHECK(data->length >= 1 * MiB);
}

TEST_CASE("fault backend: its own rules fire on its PV only, with errors naming PV and offset") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(64 * KiB, 'x'));
  FaultInjector rules;
  rules.add({.op = FaultOp::kRead, .kind = FaultKind::kShort, .keep = 10});
  rules.add({.op = FaultOp::kWrite, .kind = FaultKind::kTear, .begin = 4096, .end = 8192, .keep = 3});
  rules.add({.op = FaultOp::kPunch, .kind = FaultKind::kNoop, .times = UINT64_MAX});
  FaultBackend f(open_local(path), path, &rules);
  CHECK(f.label() == "PV t");
  CHECK(f.capabilities().local_fd == -1);  // no byte goes around the rules
  CHECK(f.size() == 64 * KiB);

  char buf[100];
  Status r = f.read(buf, sizeof buf, 100);
  CHECK(r.code() == EIO);
  CHECK(r.message().find("PV t: read at byte 110") != std::string::npos);
  CHECK(std::string(buf, 10) == std::string(10, 'x'));
  CHECK(f.read(buf, sizeof buf, 100).ok());  // spent

  const std::string data(100, 'y');
  CHECK(f.write(data.data(), data.size(), 0).ok());  // outside the range
  Status t = f.write(data.data(), data.size(), 4000);
  CHECK(t.code() == EIO);
  CHECK(t.message().find("PV t: write at byte 4000") != std::string::npos);
  CHECK(vgfs_test::pread_file(path, 4000, 4) == "yyyx");

  // The punch does nothing, so zero() must still give zeros.
  REQUIRE(f.zero(16 * KiB, 16 * KiB).ok());
  CHECK(rules.fired(2) >= 1);
  CHECK(vgfs_test::pread_file(path, 16 * KiB, 16 * KiB) == std::string(16 * KiB, '\0'));
  CHECK(f.discard(0, 4096).ok());
  CHECK(vgfs_test::pread_file(path, 0, 1) == "y");  // advisory: kept

  // A FaultBackend following the scope passes through while none is installed.
  FaultBackend scoped(open_local(path), path, nullptr);
  CHECK(scoped.capabilities().local_fd >= 0);
  CHECK(scoped.read(buf, sizeof buf, 0).ok());
  FaultInjector all;
  all.add({.op = FaultOp::kRead, .times = UINT64_MAX});
  {
    FaultInjector::Scope scope(all);
    CHECK(scoped.capabilities().local_fd == -1);
    CHECK(scoped.read(buf, sizeof buf, 0).code() == EIO);
  }
  CHECK(scoped.read(buf, sizeof buf, 0).ok());
}

TEST_CASE("copy_between: copy_file_range between local files, read and write otherwise") {
  TempDir dir;
  const std::string a = dir / "a.img", b = dir / "b.img";
  std::string pattern(512 * KiB, '\0');
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>('a' + i % 23);
  vgfs_test::write_file(a, pattern);
  vgfs_test::write_file(b, std::string(512 * KiB, '-'));
  SUBCASE("both local") {
    auto src = open_local(a, "PV a");
    CountingBackend dst(open_local(b, "PV b"));
    REQUIRE(copy_between(*src, 1000, dst, 5000, 300 * KiB).ok());
    CHECK(vgfs_test::pread_file(b, 5000, 300 * KiB) == pattern.substr(1000, 300 * KiB));
    CHECK(vgfs_test::pread_file(b, 4999, 1) == "-");
    CHECK(vgfs_test::pread_file(b, 5000 + 300 * KiB, 1) == "-");
    REQUIRE(dst.flush_if_written().ok());  // the copy counts as a write
    CHECK(dst.flushes == 1);
  }
  SUBCASE("no local descriptor: through a buffer, errors name the failing side") {
    FaultInjector none;
    FaultBackend src(open_local(a, "PV a"), a, &none);
    FaultInjector dst_rules;
    FaultBackend dst(open_local(b, "PV b"), b, &dst_rules);
    REQUIRE(copy_between(src, 0, dst, 0, 200 * KiB).ok());
    CHECK(vgfs_test::pread_file(b, 0, 200 * KiB) == pattern.substr(0, 200 * KiB));
    dst_rules.add({.op = FaultOp::kWrite, .error = ENOSPC});
    Status st = copy_between(src, 0, dst, 0, 4096);
    CHECK(st.code() == EIO);
    CHECK(st.message().find("PV b") != std::string::npos);
    none.add({.op = FaultOp::kRead});
    st = copy_between(src, 0, dst, 0, 4096);
    CHECK(st.code() == EIO);
    CHECK(st.message().find("PV a") != std::string::npos);
  }
  SUBCASE("a window of a local file copies with its offset") {
    std::shared_ptr<const PvBackend> disk = open_local(a, "disk");
    auto win = WindowBackend::open(disk, 64 * KiB, 256 * KiB, "PV w");
    REQUIRE(win.ok());
    auto dst = open_local(b, "PV b");
    REQUIRE(copy_between(**win, 10, *dst, 0, 100 * KiB).ok());
    CHECK(vgfs_test::pread_file(b, 0, 100 * KiB) == pattern.substr(64 * KiB + 10, 100 * KiB));
  }
}

TEST_CASE("submit: the default completes synchronously through read, write and flush") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(4 * KiB, 'x'));
  auto b = open_local(path);
  struct Outcome {
    int calls = 0;
    Status st;
  } out;
  std::string data(10, 'q');
  PvRequest w{.op = PvRequest::Op::kWrite, .buf = data.data(), .length = data.size(), .offset = 100,
              .done = [](PvRequest& r, Status st) {
                auto* o = static_cast<Outcome*>(r.context);
                ++o->calls;
                o->st = std::move(st);
              },
              .context = &out};
  b->submit(w);
  CHECK(out.calls == 1);
  CHECK(out.st.ok());
  CHECK(vgfs_test::pread_file(path, 100, 10) == data);
  PvRequest r = w;
  r.op = PvRequest::Op::kRead;
  r.offset = 4 * KiB - 5;
  b->submit(r);
  CHECK(out.calls == 2);
  CHECK(out.st.code() == EIO);
  PvRequest f = w;
  f.op = PvRequest::Op::kFlush;
  b->submit(f);
  CHECK(out.calls == 3);
  CHECK(out.st.ok());
}

TEST_CASE("PvDevice: a handle over any backend, moved without moving the backend") {
  TempDir dir;
  const std::string path = dir / "pv.img";
  vgfs_test::write_file(path, std::string(64 * KiB, 'x'));
  Result<PvDevice> d = PvDevice::open(path, true, "PV d");
  REQUIRE(d.ok());
  const PvBackend* backend = &d->backend();
  PvDevice moved = std::move(*d);
  CHECK(&moved.backend() == backend);
  CHECK(moved.label() == "PV d");
  CHECK(moved.path() == path);
  CHECK(moved.size() == 64 * KiB);
  std::shared_ptr<const PvBackend> disk = open_local(path, "disk");
  auto win = WindowBackend::open(disk, 4096, 8192, "PV w");
  REQUIRE(win.ok());
  PvDevice w = PvDevice::from_backend(std::move(*win), path, true);
  CHECK(w.size() == 8192);
  CHECK(w.capabilities().local_fd_offset == 4096);
  const std::string data(10, 'z');
  REQUIRE(w.write_at(data.data(), data.size(), 0).ok());
  CHECK(vgfs_test::pread_file(path, 4096, 10) == data);
}
