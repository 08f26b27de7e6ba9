// FUSE over io_uring under libfuse 3.14 (src/fuse/uring_transport.h).
//
// How a request travels: every ring entry (a header buffer and a payload
// buffer registered with FUSE_IO_URING_CMD_REGISTER) belongs to one thread
// with its own io_uring. The kernel fills the entry and completes the
// command; the thread rebuilds the classic request layout (fuse_in_header,
// op header, payload) in place, just in front of the payload, and hands it
// to fuse_session_process_buf, so the handlers of /dev/fuse run unchanged.
// libfuse writes every reply through the session's custom writev; a reply to
// the request this thread serves goes into the entry's buffers and back with
// FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which also waits for the next request.
// Anything else goes to /dev/fuse as before.
#define FUSE_USE_VERSION 314
#include "fuse/uring_transport.h"

#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "fuse/fuse_uring_abi.h"

namespace vgfs {

namespace abi = fuse_uring_abi;

namespace {

constexpr size_t kPage = 4096;
// Ring entries per queue, one thread each. A handler may block (fsync, a
// control command, an invalidation that waits for the kernel); the kernel
// hands the next request of that CPU to another free entry of its queue, so
// one slow request never holds up the others.
constexpr unsigned kEntriesPerQueue = 4;
const char kEnableUring[] = "/sys/module/fuse/parameters/enable_uring";

// The kernel makes one queue per possible CPU and serves none until each has
// an entry registered.
unsigned possible_cpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  std::getline(in, text);
  unsigned count = 0;
  std::stringstream list(text);
  std::string range;
  while (std::getline(list, range, ',')) {
    unsigned a = 0, b = 0;
    if (std::sscanf(range.c_str(), "%u-%u", &a, &b) == 2 && b >= a) count += b - a + 1;
    else if (std::sscanf(range.c_str(), "%u", &a) == 1) count += 1;
  }
  return count ? count : static_cast<unsigned>(std::max(1L, sysconf(_SC_NPROCESSORS_CONF)));
}

void* map_buffer(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

struct RingEntry {
  UringTransport::Impl* owner = nullptr;
  uint16_t qid = 0;
  io_uring ring{};
  bool ring_made = false;
  abi::RequestHeader* header = nullptr;  // a page of its own
  char* area = nullptr;                  // one page for the rebuilt request headers, then the payload
  size_t area_size = 0;
  char* payload = nullptr;
  size_t payload_size = 0;
  iovec iov[2]{};
  uint32_t last_command = abi::kRegister;
  uint64_t commit_id = 0;
  uint64_t unique = 0;
  bool answered = true;
  std::thread thread;
};

namespace {
thread_local RingEntry* t_serving = nullptr;
}

struct UringTransport::Impl {
  fuse_session* se = nullptr;
  int fuse_fd = -1;
  bool debug = false;
  std::vector<std::unique_ptr<RingEntry>> entries;
  std::atomic<bool> stopping{false};
  std::atomic<bool> init_seen{false};
  std::atomic<uint64_t> init_unique{0};
  std::atomic<bool> init_offered{false};
  std::atomic<bool> refused_logged{false};

  ~Impl() {
    stopping = true;
    for (auto& e : entries)
      if (e->thread.joinable()) e->thread.join();
    for (auto& e : entries) {
      if (e->ring_made) io_uring_queue_exit(&e->ring);
      if (e->header) munmap(e->header, kPage);
      if (e->area) munmap(e->area, e->area_size);
    }
  }

  void queue_command(RingEntry& e, uint32_t command) {
    io_uring_sqe* sqe = io_uring_get_sqe(&e.ring);
    if (!sqe) {  // one command in flight per ring of two slots: cannot happen
      std::fprintf(stderr, "vgfs: io_uring: no free submission slot on the ring of CPU %u\n", e.qid);
      std::abort();
    }
    // SQE128: each slot is two io_uring_sqe long, the command area is the second half.
    char* slot = reinterpret_cast<char*>(sqe);
    std::fill(slot, slot + 2 * sizeof(io_uring_sqe), char{0});
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->flags = IOSQE_FIXED_FILE;
    sqe->fd = 0;  // index of /dev/fuse among the ring's registered files
    sqe->cmd_op = command;
    if (command == abi::kRegister) {
      sqe->addr = reinterpret_cast<uint64_t>(e.iov);
      sqe->len = 2;
    }
    abi::CommandArea area{};
    area.qid = e.qid;
    area.commit_id = command == abi::kCommitAndFetch ? e.commit_id : 0;
    std::memcpy(slot + offsetof(io_uring_sqe, cmd), &area, sizeof(area));
    io_uring_sqe_set_data(sqe, &e);
    e.last_command = command;
  }

  // Puts a reply (iov[0] = fuse_out_header, the rest its payload) into the
  // entry; the thread's next submit sends it with COMMIT_AND_FETCH.
  ssize_t commit(RingEntry& e, const iovec* iov, int count) {
    e.answered = true;
    fuse_out_header oh;
    std::memcpy(&oh, iov[0].iov_base, sizeof(oh));
    size_t length = 0;
    for (int i = 1; i < count; ++i) {
      if (length + iov[i].iov_len > e.payload_size) {
        std::fprintf(stderr, "vgfs: io_uring: a reply of more than %zu bytes does not fit its ring entry\n",
                     e.payload_size);
        oh.error = -EIO;
        length = 0;
        break;
      }
      if (iov[i].iov_base != e.payload + length) std::memmove(e.payload + length, iov[i].iov_base, iov[i].iov_len);
      length += iov[i].iov_len;
    }
    oh.len = static_cast<uint32_t>(sizeof(oh) + length);
    std::memcpy(e.header->in_out, &oh, sizeof(oh));
    e.header->ring_ent_in_out.payload_sz = static_cast<uint32_t>(length);
    queue_command(e, abi::kCommitAndFetch);
    return static_cast<ssize_t>(oh.len);
  }

  void answer_error(RingEntry& e, int error) {
    fuse_out_header oh{sizeof(fuse_out_header), -error, e.unique};
    iovec v{&oh, sizeof(oh)};
    commit(e, &v, 1);
  }

  // One request from the ring: rebuilt as /dev/fuse would have delivered it,
  // in the page in front of the payload, so the payload is not copied.
  void serve(RingEntry& e) {
    fuse_in_header in;
    std::memcpy(&in, e.header->in_out, sizeof(in));
    const size_t payload = e.header->ring_ent_in_out.payload_sz;
    e.commit_id = e.header->ring_ent_in_out.commit_id;
    e.unique = in.unique;
    e.answered = false;
    if (in.len < sizeof(in) + payload || in.len - sizeof(in) - payload > sizeof(e.header->op_in) ||
        payload > e.payload_size) {
      std::fprintf(stderr, "vgfs: io_uring: malformed request (opcode %u, length %u, payload %zu)\n", in.opcode,
                   in.len, payload);
      return answer_error(e, EIO);
    }
    const size_t op_size = in.len - sizeof(in) - payload;
    char* start = e.payload - sizeof(in) - op_size;
    std::memcpy(start, &in, sizeof(in));
    std::memcpy(start + sizeof(in), e.header->op_in, op_size);
    // With -o debug, which requests a ring served (integration/test_transport.py reads it).
    if (debug) std::fprintf(stderr, "vgfs: ring %u serves unique %llu\n", e.qid, static_cast<unsigned long long>(in.unique));
    fuse_buf buf{};
    buf.mem = start;
    buf.size = in.len;
    t_serving = &e;
    fuse_session_process_buf(se, &buf);
    t_serving = nullptr;
    // Every request that reaches a ring wants an answer; without one the
    // entry would never come back.
    if (!e.answered) answer_error(e, EIO);
  }

  void run(RingEntry& e) {
    char name[16];
    std::snprintf(name, sizeof(name), "vgfs-ring-%u", e.qid);
    pthread_setname_np(pthread_self(), name);
    // The kernel queues a request on the CPU that issued it; serving it on
    // the same CPU keeps the wake-up local. Best effort.
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(e.qid, &cpus);
    (void)sched_setaffinity(0, sizeof(cpus), &cpus);
    queue_command(e, abi::kRegister);
    while (!stopping.load(std::memory_order_relaxed)) {
      io_uring_cqe* cqe = nullptr;
      // Wakes up now and then only to see `stopping`: at unmount the kernel
      // completes every entry with ENOTCONN first.
      __kernel_timespec wait{0, 500 * 1000 * 1000};
      int r = io_uring_submit_and_wait_timeout(&e.ring, &cqe, 1, &wait, nullptr);
      if (r == -ETIME || r == -EINTR) continue;
      if (r < 0) {
        std::fprintf(stderr, "vgfs: io_uring: waiting on the ring of CPU %u: %s\n", e.qid, std::strerror(-r));
        return;
      }
      if (!cqe && io_uring_peek_cqe(&e.ring, &cqe) != 0) continue;  // woke up without a completion
      const int res = cqe->res;
      io_uring_cqe_seen(&e.ring, cqe);
      if (res == 0) {
        serve(e);
        continue;
      }
      if (res == -EAGAIN || res == -EINTR) {  // not ready yet: ask again
        if (res == -EAGAIN) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        queue_command(e, e.last_command);
        continue;
      }
      if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED || res == -ENODEV) return;  // unmounted
      if (!refused_logged.exchange(true))
        std::fprintf(stderr, "vgfs: io_uring: the kernel refused a ring %s (%s); serving through /dev/fuse\n",
                     e.last_command == abi::kRegister ? "entry" : "reply", std::strerror(-res));
      return;
    }
  }

  void start_threads() {
    for (auto& e : entries) e->thread = std::thread([this, entry = e.get()] { run(*entry); });
  }

  // The INIT reply: accept FUSE over io_uring when the kernel offered it,
  // then register the entries (the kernel takes them only after INIT).
  ssize_t answer_init(int fd, const iovec* iov, int count) {
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    fuse_init_out reply{};
    const char* refused = nullptr;
    if (out->error != 0) refused = "INIT failed";
    else if (!init_offered) refused = "the kernel did not offer it at INIT";
    else if (count != 2 || iov[1].iov_len < sizeof(fuse_init_out)) refused = "unexpected INIT reply layout";
    if (!refused) {
      std::memcpy(&reply, iov[1].iov_base, sizeof(reply));
      if (!(reply.flags & FUSE_INIT_EXT)) refused = "the INIT reply has no flags2";
    }
    if (refused) {
      std::fprintf(stderr, "vgfs: io_uring: %s; serving through /dev/fuse\n", refused);
      return ::writev(fd, iov, count);
    }
    reply.flags2 |= abi::kOverIoUringFlags2;
    iovec patched[2] = {iov[0], {&reply, iov[1].iov_len}};
    ssize_t n = ::writev(fd, patched, 2);
    if (n >= 0) start_threads();
    return n;
  }
};

namespace {

UringTransport::Impl* g_transport = nullptr;  // one mount per process

ssize_t io_read(int fd, void* buf, size_t len, void*) {
  ssize_t n = ::read(fd, buf, len);
  UringTransport::Impl* t = g_transport;
  if (t && n >= static_cast<ssize_t>(sizeof(fuse_in_header)) && !t->init_seen.load(std::memory_order_relaxed)) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT && n >= static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_init_in))) {
      const auto* init = reinterpret_cast<const fuse_init_in*>(in + 1);
      t->init_offered = (init->flags & FUSE_INIT_EXT) && (init->flags2 & abi::kOverIoUringFlags2);
      t->init_unique = in->unique;
      t->init_seen = true;
    }
  }
  return n;
}

ssize_t io_writev(int fd, struct iovec* iov, int count, void*) {
  UringTransport::Impl* t = g_transport;
  if (t && count >= 1 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    RingEntry* e = t_serving;
    if (e && !e->answered && out->unique == e->unique) return t->commit(*e, iov, count);
    if (out->unique != 0 && out->unique == t->init_unique.load()) {
      t->init_unique = 0;
      return t->answer_init(fd, iov, count);
    }
  }
  return ::writev(fd, iov, count);
}

bool read_exactly(int fd, char* dst, size_t len) {
  while (len > 0) {
    ssize_t n = ::read(fd, dst, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    dst += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// libfuse's splice path (fuse_reply_data with descriptors) puts header and
// data in a pipe. A ring request cannot take them from there: read them into
// the entry. vgfs's READ handler writes into reply_buffer() instead, so this
// is the safety net for any other reply that takes the path.
ssize_t io_splice_send(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned flags, void*) {
  UringTransport::Impl* t = g_transport;
  RingEntry* e = t_serving;
  if (!t || !e || e->answered || len < sizeof(fuse_out_header)) return splice(fdin, offin, fdout, offout, len, flags);
  fuse_out_header oh;
  if (!read_exactly(fdin, reinterpret_cast<char*>(&oh), sizeof(oh))) return -1;
  const size_t rest = len - sizeof(oh);
  if (oh.unique == e->unique && rest <= e->payload_size) {
    if (!read_exactly(fdin, e->payload, rest)) return -1;
    iovec v[2] = {{&oh, sizeof(oh)}, {e->payload, rest}};
    t->commit(*e, v, 2);
    return static_cast<ssize_t>(len);
  }
  std::vector<char> message(len);
  std::memcpy(message.data(), &oh, sizeof(oh));
  if (!read_exactly(fdin, message.data() + sizeof(oh), rest)) return -1;
  return ::write(fdout, message.data(), len);
}

}  // namespace

UringTransport::UringTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UringTransport::~UringTransport() {
  impl_.reset();
  g_transport = nullptr;
}

bool UringTransport::kernel_ready(std::string* why) {
  std::ifstream in(kEnableUring);
  std::string value;
  if (!in || !std::getline(in, value)) {
    *why = std::string("this kernel has no FUSE over io_uring (no ") + kEnableUring + "; Linux 6.14+ built with CONFIG_FUSE_IO_URING)";
    return false;
  }
  if (value != "Y") {
    *why = std::string("FUSE over io_uring is off in the kernel (") + kEnableUring + " is " + value +
           "; as root: echo Y > " + kEnableUring + ")";
    return false;
  }
  io_uring probe;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128;
  int r = io_uring_queue_init_params(2, &probe, &params);
  if (r < 0) {
    *why = std::string("cannot create an io_uring: ") + std::strerror(-r);
    return false;
  }
  io_uring_queue_exit(&probe);
  return true;
}

std::unique_ptr<UringTransport> UringTransport::start(fuse_session* se, size_t max_payload, bool debug,
                                                      std::string* why) {
  auto impl = std::make_unique<Impl>();
  impl->se = se;
  impl->fuse_fd = fuse_session_fd(se);
  impl->debug = debug;
  const size_t payload = (max_payload + kPage - 1) / kPage * kPage;
  const unsigned queues = possible_cpus();
  for (unsigned q = 0; q < queues; ++q) {
    for (unsigned k = 0; k < kEntriesPerQueue; ++k) {
      auto e = std::make_unique<RingEntry>();
      e->owner = impl.get();
      e->qid = static_cast<uint16_t>(q);
      io_uring_params params{};
      params.flags = IORING_SETUP_SQE128;
      int r = io_uring_queue_init_params(2, &e->ring, &params);
      if (r < 0) {
        *why = std::string("cannot create an io_uring: ") + std::strerror(-r);
        return nullptr;
      }
      e->ring_made = true;
      impl->entries.push_back(std::move(e));
      RingEntry& entry = *impl->entries.back();
      r = io_uring_register_files(&entry.ring, &impl->fuse_fd, 1);
      if (r < 0) {
        *why = std::string("cannot register /dev/fuse with an io_uring: ") + std::strerror(-r);
        return nullptr;
      }
      entry.header = static_cast<abi::RequestHeader*>(map_buffer(kPage));
      entry.area_size = kPage + payload;
      entry.area = static_cast<char*>(map_buffer(entry.area_size));
      if (!entry.header || !entry.area) {
        *why = "cannot map the ring buffers";
        return nullptr;
      }
      entry.payload = entry.area + kPage;
      entry.payload_size = payload;
      entry.iov[0] = {entry.header, sizeof(abi::RequestHeader)};
      entry.iov[1] = {entry.payload, payload};
    }
  }
  fuse_custom_io io{};
  io.read = io_read;
  io.writev = io_writev;
  io.splice_send = io_splice_send;
  g_transport = impl.get();
  if (fuse_session_custom_io(se, &io, impl->fuse_fd) != 0) {
    g_transport = nullptr;
    *why = "libfuse refused the custom I/O hooks";
    return nullptr;
  }
  return std::unique_ptr<UringTransport>(new UringTransport(std::move(impl)));
}

std::span<char> UringTransport::reply_buffer() {
  RingEntry* e = t_serving;
  if (!e || e->answered) return {};
  return {e->payload, e->payload_size};
}

}  // namespace vgfs
