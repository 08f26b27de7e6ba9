// Unit tests of the NBD PV backend (include/vgfs/nbd_backend.h) against real
// nbdkit servers on unix sockets, started and stopped by PID: data both ways
// in pieces, capabilities and refusals, holes from block status, zeroing,
// the per-host lock, many requests in flight through submit(), and the
// faults: a stopped server (deadline), a server killed and restarted inside
// and outside the reconnect window, unflushed writes lost with it.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vgfs/nbd_backend.h"
#include "vgfs/pv_lease.h"
#include "vgfs/pv_device.h"
#include "vgfs/sizes.h"

using namespace vgfs;
using vgfs_test::TempDir;

namespace {

// One nbdkit in the foreground on a unix socket; killed (SIGKILL, then
// waited for) when the object goes away.
class Nbdkit {
 public:
  Nbdkit(std::string socket, std::vector<std::string> args) : socket_(std::move(socket)), args_(std::move(args)) {
    start();
  }
  ~Nbdkit() { kill_now(); }
  void start() {
    ::unlink(socket_.c_str());
    // nbdkit -f ends with the thread that started it (PR_SET_PDEATHSIG):
    // tests start servers from their main thread only.
    std::vector<std::string> argv = {"nbdkit", "-f", "-U", socket_};
    argv.insert(argv.end(), args_.begin(), args_.end());
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      std::vector<char*> a;
      for (std::string& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      ::execvp("nbdkit", a.data());
      ::_exit(127);
    }
    // Ready when it accepts a connection: the socket file exists a moment
    // before nbdkit listens on it.
    for (int i = 0; i < 1000; ++i) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
      const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      ::close(fd);
      if (up) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("nbdkit did not start");
  }
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  std::string uri() const { return "nbd+unix:///?socket=" + socket_; }

 private:
  std::string socket_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
};

// Options for one test, put back afterwards.
struct OptionsScope {
  NbdOptions saved = NbdBackend::options();
  explicit OptionsScope(NbdOptions o) { NbdBackend::set_options(o); }
  ~OptionsScope() { NbdBackend::set_options(saved); }
};

std::unique_ptr<NbdBackend> open_nbd(const std::string& uri, bool writable = true) {
  Result<std::unique_ptr<NbdBackend>> b = NbdBackend::open(uri, writable, "PV n (" + uri + ")");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  return std::move(*b);
}

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return s;
}

std::string read_back(const PvBackend& b, uint64_t offset, uint64_t length) {
  std::string s(length, '\0');
  Status st = b.read(s.data(), length, offset);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("nbd: data, capabilities, holes and zeroing on nbdkit memory") {
  TempDir dir;
  Nbdkit server(dir / "s", {"memory", "64M"});
  auto b = open_nbd(server.uri());
  CHECK(b->size() == 64 * MiB);
  CHECK(b->connection_count() == 4);  // memory allows multi-conn
  PvCapabilities c = b->capabilities();
  CHECK(c.local_fd == -1);
  CHECK(c.can_fua);
  CHECK(c.can_zero);
  CHECK(c.has_extents);

  // A fresh export is one hole; written bytes are data.
  Result<PvExtent> e = b->extent_at(0, 8 * MiB);
  REQUIRE(e.ok());
  CHECK_FALSE(e->data);
  const std::string data = pattern(3 * MiB + 123, 1);
  REQUIRE(b->write(data.data(), data.size(), 5 * MiB + 7).ok());
  CHECK(read_back(*b, 5 * MiB + 7, data.size()) == data);
  e = b->extent_at(5 * MiB, MiB);
  REQUIRE(e.ok());
  CHECK(e->data);
  e = b->extent_at(0, 8 * MiB);
  REQUIRE(e.ok());
  CHECK_FALSE(e->data);
  CHECK(e->length <= 5 * MiB);
  REQUIRE(b->write(data.data(), 4096, 0, WriteFlags::kFua).ok());
  REQUIRE(b->flush_if_written().ok());

  // Zeroing: both kinds read back as zeros.
  REQUIRE(b->zero(5 * MiB + 7, MiB).ok());
  CHECK(read_back(*b, 5 * MiB + 7, MiB) == std::string(MiB, '\0'));
  REQUIRE(b->zero(6 * MiB + 7, 4096, true).ok());
  CHECK(read_back(*b, 6 * MiB + 7, 4096) == std::string(4096, '\0'));
  CHECK(read_back(*b, 6 * MiB + 7 + 4096, 100) == data.substr(MiB + 4096, 100));

  // Past the end: an error naming the PV, never a short read.
  std::string buf(8192, '\0');
  Status st = b->read(buf.data(), buf.size(), 64 * MiB - 4096);
  CHECK(st.code() == EIO);
  CHECK(st.message().find("PV n") != std::string::npos);
  CHECK_FALSE(b->write(buf.data(), buf.size(), 64 * MiB).ok());
}

TEST_CASE("nbd: a PV device opens an NBD URI, and one vgfs per export on this host") {
  TempDir dir;
  Nbdkit server(dir / "s", {"memory", "16M"});
  Result<PvDevice> d = PvDevice::open(server.uri(), true, "PV a");
  REQUIRE_MESSAGE(d.ok(), d.status().message());
  REQUIRE(d->lock(true).ok());
  Result<PvDevice> other = PvDevice::open(server.uri(), false, "PV b");
  REQUIRE(other.ok());
  Status st = other->lock(false);
  CHECK(st.code() == EBUSY);
  CHECK(st.message().find("another vgfs") != std::string::npos);
  d = PvDevice();  // released with the device
  CHECK(other->lock(false).ok());
  Result<PvDevice> reader = PvDevice::open(server.uri(), false, "PV c");
  REQUIRE(reader.ok());
  CHECK(reader->lock(false).ok());  // shared with the other reader
  CHECK(reader->lock(true).code() == EBUSY);
}

TEST_CASE("nbd: refusals: a read-only export, one that cannot flush or FUA, no server") {
  TempDir dir;
  {
    Nbdkit ro(dir / "ro", {"-r", "memory", "16M"});
    Result<std::unique_ptr<NbdBackend>> b = NbdBackend::open(ro.uri(), true, "PV r");
    REQUIRE_FALSE(b.ok());
    CHECK(b.status().code() == EROFS);
    CHECK(b.status().message().find("read-only") != std::string::npos);
    CHECK(NbdBackend::open(ro.uri(), false, "PV r").ok());
  }
  {
    Nbdkit volatile_export(dir / "nf", {"eval", "get_size=echo 1048576",
                                        "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
                                        "pwrite=cat >/dev/null", "can_write=exit 0", "can_flush=exit 3",
                                        "can_fua=echo none"});
    Result<std::unique_ptr<NbdBackend>> b = NbdBackend::open(volatile_export.uri(), true, "PV f");
    REQUIRE_FALSE(b.ok());
    CHECK(b.status().message().find("neither flush nor FUA") != std::string::npos);
    CHECK(NbdBackend::open(volatile_export.uri(), false, "PV f").ok());
  }
  Result<std::unique_ptr<NbdBackend>> none = NbdBackend::open("nbd+unix:///?socket=" + dir / "nothing", true, "PV x");
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("cannot connect") != std::string::npos);
}

TEST_CASE("nbd: one connection without multi-conn; an export without flush gets FUA writes") {
  TempDir dir;
  Nbdkit server(dir / "s", {"--filter=multi-conn", "memory", "16M", "multi-conn-mode=disable"});
  auto b = open_nbd(server.uri());
  CHECK(b->connection_count() == 1);
  const std::string data = pattern(MiB, 3);
  REQUIRE(b->write(data.data(), data.size(), 0).ok());
  CHECK(read_back(*b, 0, data.size()) == data);
  REQUIRE(b->flush().ok());
}

TEST_CASE("nbd: submit() keeps many requests in flight") {
  TempDir dir;
  Nbdkit server(dir / "s", {"memory", "64M"});
  auto b = open_nbd(server.uri());
  constexpr int kRequests = 256;
  std::vector<std::string> bufs(kRequests);
  std::vector<PvRequest> reqs(kRequests);
  std::mutex m;
  std::condition_variable cv;
  int done = 0, failed = 0;
  struct Ctx {
    std::mutex* m;
    std::condition_variable* cv;
    int* done;
    int* failed;
  } ctx{&m, &cv, &done, &failed};
  auto on_done = [](PvRequest& r, Status st) {
    auto* c = static_cast<Ctx*>(r.context);
    std::lock_guard lock(*c->m);
    ++*c->done;
    if (!st.ok()) ++*c->failed;
    c->cv->notify_all();
  };
  for (int i = 0; i < kRequests; ++i) {
    bufs[i] = pattern(4096, static_cast<unsigned>(i));
    reqs[i] = PvRequest{PvRequest::Op::kWrite, bufs[i].data(), 4096, static_cast<uint64_t>(i) * 65536,
                        WriteFlags::kNone, on_done, &ctx};
    b->submit(reqs[i]);
  }
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done == kRequests; });
  }
  CHECK(failed == 0);
  REQUIRE(b->flush_if_written().ok());
  done = 0;
  for (int i = 0; i < kRequests; ++i) {
    bufs[i].assign(4096, 'x');
    reqs[i].op = PvRequest::Op::kRead;
    b->submit(reqs[i]);
  }
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done == kRequests; });
  }
  CHECK(failed == 0);
  for (int i = 0; i < kRequests; ++i) CHECK(bufs[i] == pattern(4096, static_cast<unsigned>(i)));
}

TEST_CASE("nbd: many synchronous callers share the connections (one leads, the others get their replies)") {
  TempDir dir;
  OptionsScope options(NbdOptions{2, 30.0, 30.0});
  Nbdkit server(dir / "s", {"memory", "64M"});
  auto b = open_nbd(server.uri());
  REQUIRE(b->connection_count() == 2);
  constexpr int kThreads = 8, kRounds = 300;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const size_t n = 512 + static_cast<size_t>((i * 977 + t * 131) % 70000);
        const uint64_t at = static_cast<uint64_t>(t) * 4 * MiB + static_cast<uint64_t>(i % 7) * 300000;
        const std::string data = pattern(n, static_cast<unsigned>(t * 1000 + i));
        std::string got(n, '\0');
        if (!b->write(data.data(), n, at).ok() || !b->read(got.data(), n, at).ok() || got != data) ++bad;
        if (i % 50 == 0 && !b->flush_if_written().ok()) ++bad;
      }
    });
  for (std::thread& th : threads) th.join();
  CHECK(bad == 0);
}

TEST_CASE("nbd: a stopped server fails requests after the deadline and the reconnect window, not never") {
  TempDir dir;
  OptionsScope options(NbdOptions{2, 1.0, 1.0});
  Nbdkit server(dir / "s", {"memory", "16M"});
  auto b = open_nbd(server.uri());
  const std::string data = pattern(4096, 9);
  REQUIRE(b->write(data.data(), data.size(), 0).ok());
  REQUIRE(b->flush().ok());
  server.signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // kill() returns before the stop takes
  const auto t0 = std::chrono::steady_clock::now();
  std::string buf(4096, '\0');
  Status st = b->read(buf.data(), buf.size(), 0);
  const double took = seconds_since(t0);
  server.signal(SIGCONT);
  CHECK(st.code() == EIO);
  CHECK(took >= 0.9);
  CHECK(took < 6.0);  // deadline 1 s + window 1 s + one connect attempt of 1 s, with slack
}

TEST_CASE("nbd: a server restarted inside the window: I/O goes on; unflushed writes make one flush fail") {
  TempDir dir;
  OptionsScope options(NbdOptions{2, 2.0, 10.0});
  const std::string image = dir / "img";
  vgfs_test::make_sparse(image, 16 * MiB);
  Nbdkit server(dir / "s", {"file", image});
  auto b = open_nbd(server.uri());
  const std::string data = pattern(MiB, 4);
  REQUIRE(b->write(data.data(), data.size(), 0).ok());
  REQUIRE(b->flush().ok());

  // Killed with nothing unflushed, back within the window: a read waits and succeeds.
  server.kill_now();
  std::string got(data.size(), '\0');
  Status read_status;
  std::thread reader([&] { read_status = b->read(got.data(), got.size(), 0); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  server.start();
  reader.join();
  CHECK_MESSAGE(read_status.ok(), read_status.message());
  CHECK(got == data);
  CHECK(b->reconnects() >= 1);

  // A write acknowledged but not flushed when the server dies may be lost:
  // the next flush says so once, then flushes work again.
  REQUIRE(b->write(data.data(), 4096, MiB).ok());
  server.kill_now();
  server.start();
  std::string buf(4096, '\0');
  REQUIRE(b->read(buf.data(), buf.size(), 0).ok());  // notices the loss, reconnects
  Status st = b->flush_if_written();
  CHECK(st.code() == EIO);
  CHECK(st.message().find("not yet flushed") != std::string::npos);
  // Counted when the connection was found dead (by the read, or at the
  // latest by the flush, which looks at every connection).
  const uint64_t losses = b->write_losses();
  CHECK(losses >= 1);
  CHECK(b->flush_if_written().ok());
  CHECK(b->flush().ok());
  CHECK(b->write_losses() == losses);  // flushes do not move it; only losses do
}

TEST_CASE("nbd: block status is asked once per window; a write inside it drops the window") {
  TempDir dir;
  Nbdkit server(dir / "s", {"--filter=stats", "memory", "64M", "statsfile=" + std::string(dir / "stats"),
                            "statsappend=true"});
  auto b = open_nbd(server.uri());
  const std::string data = pattern(MiB, 9);
  REQUIRE(b->write(data.data(), data.size(), 8 * MiB).ok());
  // Region by region over 16 MiB as a copier asks: hole, data, hole.
  int holes = 0, datas = 0;
  for (uint64_t at = 0; at < 16 * MiB; at += 256 * KiB) {
    Result<PvExtent> e = b->extent_at(at, 256 * KiB);
    REQUIRE(e.ok());
    (e->data ? datas : holes)++;
    CHECK(e->length == 256 * KiB);
  }
  CHECK(datas == 4);
  CHECK(holes == 60);
  // A write that completes inside the window is seen at once.
  REQUIRE(b->write(data.data(), 4096, 2 * MiB).ok());
  Result<PvExtent> e = b->extent_at(2 * MiB, 256 * KiB);
  REQUIRE(e.ok());
  CHECK(e->data);
  e = b->extent_at(3 * MiB, 256 * KiB);
  REQUIRE(e.ok());
  CHECK_FALSE(e->data);
  // A trim (zero without NO_HOLE) too: the range reads as a hole again.
  REQUIRE(b->zero(8 * MiB, MiB).ok());
  e = b->extent_at(8 * MiB, 256 * KiB);
  REQUIRE(e.ok());
  CHECK_FALSE(e->data);
  b.reset();
  server.signal(SIGTERM);  // nbdkit writes its statistics as it exits
  std::string stats;
  for (int i = 0; i < 500 && stats.find("extents") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    struct stat st {};
    if (::stat((dir / "stats").c_str(), &st) == 0) stats = vgfs_test::read_file(dir / "stats");
  }
  server.kill_now();
  // "extents: N ops": the 64 regions cost one request, the two windows
  // after the changes one each, and the zero's own check at most one more.
  const size_t at = stats.find("extents:");
  REQUIRE_MESSAGE(at != std::string::npos, stats);
  const int asked = std::stoi(stats.substr(at + 8));
  CHECK_MESSAGE(asked <= 4, stats);
}

TEST_CASE("nbd: the lease on the export: a second holder is refused naming the first, until it is released") {
  TempDir dir;
  Nbdkit server(dir / "s", {"memory", "64M"});
  auto first = open_nbd(server.uri());
  auto second = open_nbd(server.uri());
  REQUIRE(first->take_lease(8 * KiB).ok());
  Status st = second->take_lease(8 * KiB);
  CHECK(st.code() == EBUSY);
  CHECK_MESSAGE(st.message().find(fmt::format("vgfs pid {} on host {}", ::getpid(), lease_host_name())) !=
                    std::string::npos,
                st.message());
  CHECK(st.message().find("its process is running") != std::string::npos);
  // The record: held, this process, renewed by the thread.
  std::string block = read_back(*first, 8 * KiB, kLeaseSize);
  std::optional<LeaseRecord> l = decode_lease(block);
  REQUIRE(l.has_value());
  CHECK(l->held);
  CHECK(l->pid == static_cast<uint64_t>(::getpid()));
  const uint64_t counter = l->counter;
  std::this_thread::sleep_for(std::chrono::seconds(NbdBackend::kLeasePeriodSeconds) + std::chrono::milliseconds(500));
  l = decode_lease(read_back(*first, 8 * KiB, kLeaseSize));
  REQUIRE(l.has_value());
  CHECK(l->counter > counter);
  // Released when the holder goes: the next one takes it.
  first.reset();
  l = decode_lease(read_back(*second, 8 * KiB, kLeaseSize));
  REQUIRE(l.has_value());
  CHECK_FALSE(l->held);
  REQUIRE(second->take_lease(8 * KiB).ok());
  // A read-only open neither takes nor checks it.
  auto reader = open_nbd(server.uri(), false);
  CHECK(reader->take_lease(8 * KiB).ok());
}

TEST_CASE("nbd: a lease held on another host counts until its expiry; one of a dead process here does not") {
  TempDir dir;
  Nbdkit server(dir / "s", {"memory", "64M"});
  auto b = open_nbd(server.uri());
  const uint64_t now_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  LeaseRecord other;
  other.held = true;
  other.holder = new_uuid();
  other.counter = 7;
  other.renewed_ms = now_ms - 3000;
  other.period_s = 2;
  other.expiry_s = 10;
  other.pid = 4242;
  other.host = "otherhost";
  other.boot_id = "x";
  std::string image = encode_lease(other);
  REQUIRE(b->write(image.data(), image.size(), 8 * KiB).ok());
  Status st = b->take_lease(8 * KiB);
  CHECK(st.code() == EBUSY);
  CHECK_MESSAGE(st.message().find("vgfs pid 4242 on host otherhost") != std::string::npos, st.message());
  CHECK(st.message().find("renewed 3.") != std::string::npos);
  // Not renewed for longer than its expiry: taken over.
  other.renewed_ms = now_ms - 11000;
  image = encode_lease(other);
  REQUIRE(b->write(image.data(), image.size(), 8 * KiB).ok());
  REQUIRE(b->take_lease(8 * KiB).ok());
  // This host, a process that is gone (pid 2^22-1 never runs): free at once.
  LeaseRecord dead = other;
  dead.renewed_ms = now_ms;
  dead.host = lease_host_name();
  dead.boot_id = lease_boot_id();
  dead.pid = (1u << 22) - 1;
  CHECK(lease_live_reason(dead, now_ms).empty());
  dead.pid = static_cast<uint64_t>(::getpid());
  CHECK(lease_live_reason(dead, now_ms) == "its process is running");
  // A running process that stopped renewing (or got a dead holder's pid) does not hold it.
  dead.renewed_ms = now_ms - 11000;
  CHECK(lease_live_reason(dead, now_ms).empty());
  // Zeros, another format's bytes or a torn record are no lease.
  CHECK_FALSE(decode_lease(std::string(kLeaseSize, '\0')).has_value());
  image[100] ^= 1;
  CHECK_FALSE(decode_lease(image).has_value());
}

TEST_CASE("nbd: a server gone for longer than the window: requests fail with EIO, then work once it is back") {
  TempDir dir;
  OptionsScope options(NbdOptions{1, 1.0, 1.0});
  const std::string image = dir / "img";
  vgfs_test::make_sparse(image, 16 * MiB);
  Nbdkit server(dir / "s", {"file", image});
  auto b = open_nbd(server.uri());
  const std::string data = pattern(4096, 5);
  REQUIRE(b->write(data.data(), data.size(), 0).ok());
  REQUIRE(b->flush().ok());
  server.kill_now();
  std::string buf(4096, '\0');
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(b->read(buf.data(), buf.size(), 0).code() == EIO);
  CHECK(seconds_since(t0) < 5.0);
  CHECK(b->read(buf.data(), buf.size(), 0).code() == EIO);  // fails at once while it stays down
  server.start();
  bool back = false;
  for (int i = 0; i < 60 && !back; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    back = b->read(buf.data(), buf.size(), 0).ok();
  }
  CHECK(back);
  CHECK(buf == data);
}

TEST_CASE("nbd: server errors fail one request and the connection stays") {
  TempDir dir;
  const std::string trigger = dir / "trigger";
  Nbdkit server(dir / "s", {"--filter=error", "memory", "16M", "error=EIO", "error-pwrite-rate=100%",
                            "error-pwrite-file=" + trigger});
  auto b = open_nbd(server.uri());
  const std::string data = pattern(4096, 6);
  REQUIRE(b->write(data.data(), data.size(), 0).ok());
  vgfs_test::write_file(trigger, "");
  Status st = b->write(data.data(), data.size(), 4096);
  CHECK(st.code() == EIO);
  CHECK(st.message().find("write of 4096 bytes at byte 4096") != std::string::npos);
  ::unlink(trigger.c_str());
  CHECK(b->write(data.data(), data.size(), 4096).ok());
  CHECK(read_back(*b, 0, 4096) == data);
  CHECK(b->reconnects() == 0);
}

TEST_CASE("nbd: mount options") {
  OptionsScope keep(NbdBackend::options());
  CHECK(NbdBackend::set_option("nbd_conns=8").ok());
  CHECK(NbdBackend::options().connections == 8);
  CHECK(NbdBackend::set_option("nbd_timeout=2.5").ok());
  CHECK(NbdBackend::options().timeout_seconds == 2.5);
  CHECK(NbdBackend::set_option("nbd_reconnect=0").ok());
  CHECK(NbdBackend::options().reconnect_seconds == 0);
  CHECK(NbdBackend::set_option("nbd_conns=0").code() == EINVAL);
  CHECK(NbdBackend::set_option("nbd_conns=2x").code() == EINVAL);
  CHECK(NbdBackend::set_option("nbd_timeout=0").code() == EINVAL);
  CHECK(NbdBackend::set_option("nbd_bogus=1").code() == EINVAL);
}
