// FUSE over io_uring under libfuse 3.14 (src/fuse/uring_transport.h).
//
// How a request travels: every queue (one per possible CPU) is one io_uring
// and one thread, with several ring entries (a header buffer and a payload
// buffer each, registered with FUSE_IO_URING_CMD_REGISTER). The kernel fills
// an entry and completes its command; the queue's thread rebuilds the
// classic request layout (fuse_in_header, op header, payload) in place, just
// in front of the payload, and hands it to fuse_session_process_buf, so the
// handlers of /dev/fuse run unchanged. libfuse writes every reply through
// the session's custom writev; a reply to a ring request goes into its
// entry's buffers and back with FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which
// also asks for the next request. The thread serves every completion one
// wake-up brings and sends all the commits in one io_uring_enter. Requests
// whose handler may block (the caller says which) go to a few worker
// threads instead, which hand the answered entry back to the queue's thread
// through an eventfd the ring reads, so one slow request never holds up the
// others of its queue. Anything not from a ring goes to /dev/fuse as before.
#define FUSE_USE_VERSION 314
#include "fuse/uring_transport.h"

#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
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
// Ring entries per queue: the requests of one CPU the kernel can hand over
// at once, served one after the other by the queue's thread and batched
// into one wake-up and one submit when several are waiting.
constexpr unsigned kEntriesPerQueue = 8;
// Threads for requests that may block (fsync, control commands, commits of
// chmod/chown, discards): shared by all queues. More than one, so that a
// control command waiting on the kernel (an invalidation) never waits for
// another blocked request to end.
constexpr unsigned kSlowWorkers = 4;
// user_data of the eventfd read on a queue's ring (entries use their address).
constexpr uint64_t kWakeTag = 1;
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
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

struct RingQueue;

struct RingEntry {
  RingQueue* queue = nullptr;
  abi::RequestHeader* header = nullptr;  // a page of its own
  char* area = nullptr;                  // one page for the rebuilt request headers, then the payload
  size_t area_size = 0;
  char* payload = nullptr;
  size_t payload_size = 0;
  iovec iov[2]{};
  uint32_t last_command = abi::kRegister;
  uint64_t commit_id = 0;
  uint64_t unique = 0;
  fuse_buf request{};  // the rebuilt request, for a worker
  bool answered = true;
};

// One per possible CPU: its ring, its entries and the thread that owns both.
// Only that thread touches the ring; workers hand entries back through
// `answered_by_workers` and the eventfd.
struct RingQueue {
  UringTransport::Impl* owner = nullptr;
  uint16_t qid = 0;
  io_uring ring{};
  bool ring_made = false;
  std::vector<std::unique_ptr<RingEntry>> entries;
  unsigned live = 0;  // entries the kernel still holds or this queue serves
  int wake_fd = -1;
  uint64_t wake_value = 0;
  std::mutex mutex;
  std::vector<RingEntry*> answered_by_workers;  // guarded by mutex
  std::thread thread;
};

namespace {
thread_local RingEntry* t_serving = nullptr;  // the ring request this thread answers
thread_local RingQueue* t_queue = nullptr;    // the queue whose thread this is
}  // namespace

struct UringTransport::Impl {
  fuse_session* se = nullptr;
  int fuse_fd = -1;
  bool debug = false;
  UringTransport::MayBlock may_block = nullptr;
  std::vector<std::unique_ptr<RingQueue>> queues;
  std::atomic<bool> stopping{false};
  std::atomic<bool> init_seen{false};
  std::atomic<uint64_t> init_unique{0};
  std::atomic<bool> init_offered{false};
  std::atomic<bool> refused_logged{false};
  // Called once, when the mount serves requests the way it will from now on:
  // INIT answered without io_uring, or every queue's REGISTER commands
  // submitted (the kernel takes or refuses an entry during that submit, and
  // a taken entry stays when enable_uring goes back to N).
  std::function<void()> on_settled;
  std::once_flag settled_once;
  std::atomic<unsigned> queues_registering{0};
  void settled() {
    std::call_once(settled_once, [&] {
      if (on_settled) on_settled();
    });
  }

  // Requests that may block, waiting for a worker.
  std::mutex work_mutex;
  std::condition_variable work_cv;
  std::deque<RingEntry*> work;  // guarded by work_mutex
  bool work_stop = false;       // guarded by work_mutex
  std::vector<std::thread> workers;

  ~Impl() {
    stopping = true;
    for (auto& q : queues)
      if (q->thread.joinable()) q->thread.join();
    {
      std::lock_guard lock(work_mutex);
      work_stop = true;
    }
    work_cv.notify_all();
    for (std::thread& w : workers)
      if (w.joinable()) w.join();
    for (auto& q : queues) {
      if (q->ring_made) io_uring_queue_exit(&q->ring);
      if (q->wake_fd >= 0) ::close(q->wake_fd);
      for (auto& e : q->entries) {
        if (e->header) munmap(e->header, kPage);
        if (e->area) munmap(e->area, e->area_size);
      }
    }
  }

  static io_uring_sqe* next_sqe(RingQueue& q) {
    io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
    if (!sqe) {  // the ring has a slot for every entry and the eventfd read: cannot happen
      std::fprintf(stderr, "vgfs: io_uring: no free submission slot on the ring of CPU %u\n", q.qid);
      std::abort();
    }
    // SQE128: each slot is two io_uring_sqe long, the command area is the second half.
    char* slot = reinterpret_cast<char*>(sqe);
    std::fill(slot, slot + 2 * sizeof(io_uring_sqe), char{0});
    return sqe;
  }

  // On the queue's thread only.
  void queue_command(RingEntry& e, uint32_t command) {
    RingQueue& q = *e.queue;
    io_uring_sqe* sqe = next_sqe(q);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->flags = IOSQE_FIXED_FILE;
    sqe->fd = 0;  // index of /dev/fuse among the ring's registered files
    sqe->cmd_op = command;
    if (command == abi::kRegister) {
      sqe->addr = reinterpret_cast<uint64_t>(e.iov);
      sqe->len = 2;
    }
    abi::CommandArea area{};
    area.qid = q.qid;
    area.commit_id = command == abi::kCommitAndFetch ? e.commit_id : 0;
    std::memcpy(reinterpret_cast<char*>(sqe) + offsetof(io_uring_sqe, cmd), &area, sizeof(area));
    io_uring_sqe_set_data(sqe, &e);
    e.last_command = command;
  }

  // On the queue's thread: the next wake-up from the workers.
  void queue_wake_read(RingQueue& q) {
    io_uring_sqe* sqe = next_sqe(q);
    io_uring_prep_read(sqe, q.wake_fd, &q.wake_value, sizeof(q.wake_value), 0);
    io_uring_sqe_set_data64(sqe, kWakeTag);
  }

  // Puts a reply (iov[0] = fuse_out_header, the rest its payload) into the
  // entry; COMMIT_AND_FETCH sends it with the queue thread's next submit.
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
    RingQueue& q = *e.queue;
    if (t_queue == &q) {
      queue_command(e, abi::kCommitAndFetch);
    } else {  // a worker: the queue's thread sends it
      {
        std::lock_guard lock(q.mutex);
        q.answered_by_workers.push_back(&e);
      }
      const uint64_t one = 1;
      (void)!::write(q.wake_fd, &one, sizeof(one));
    }
    return static_cast<ssize_t>(oh.len);
  }

  void answer_error(RingEntry& e, int error) {
    fuse_out_header oh{sizeof(fuse_out_header), -error, e.unique};
    iovec v{&oh, sizeof(oh)};
    commit(e, &v, 1);
  }

  // Runs the handler of a rebuilt request on the calling thread.
  void process(RingEntry& e) {
    t_serving = &e;
    fuse_session_process_buf(se, &e.request);
    t_serving = nullptr;
    // Every request that reaches a ring wants an answer; without one the
    // entry would never come back.
    if (!e.answered) answer_error(e, EIO);
  }

  // One request from the ring: rebuilt as /dev/fuse would have delivered it,
  // in the page in front of the payload, so the payload is not copied; then
  // served here or, if its handler may block, by a worker.
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
    if (debug)
      std::fprintf(stderr, "vgfs: ring %u serves unique %llu\n", e.queue->qid, static_cast<unsigned long long>(in.unique));
    e.request = fuse_buf{};
    e.request.mem = start;
    e.request.size = in.len;
    if (may_block && may_block(in.opcode, in.nodeid)) {
      if (debug)
        std::fprintf(stderr, "vgfs: ring %u hands unique %llu to a worker\n", e.queue->qid,
                     static_cast<unsigned long long>(in.unique));
      {
        std::lock_guard lock(work_mutex);
        work.push_back(&e);
      }
      work_cv.notify_one();
      return;
    }
    process(e);
  }

  void work_loop() {
    pthread_setname_np(pthread_self(), "vgfs-ring-work");
    for (;;) {
      RingEntry* e = nullptr;
      {
        std::unique_lock lock(work_mutex);
        work_cv.wait(lock, [&] { return work_stop || !work.empty(); });
        if (work.empty()) return;
        e = work.front();
        work.pop_front();
      }
      process(*e);
    }
  }

  // Returns false when the entry is done for (unmounted or refused).
  bool handle_entry(RingQueue& q, RingEntry& e, int res) {
    if (res == 0) {
      serve(e);
      return true;
    }
    if (res == -EAGAIN || res == -EINTR) {  // not ready yet: ask again
      if (res == -EAGAIN) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      queue_command(e, e.last_command);
      return true;
    }
    if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED || res == -ENODEV) return false;  // unmounted
    if (!refused_logged.exchange(true))
      std::fprintf(stderr, "vgfs: io_uring: the kernel refused a ring %s (%s); serving through /dev/fuse\n",
                   e.last_command == abi::kRegister ? "entry" : "reply", std::strerror(-res));
    (void)q;
    return false;
  }

  void run(RingQueue& q) {
    char name[16];
    std::snprintf(name, sizeof(name), "vgfs-ring-%u", q.qid);
    pthread_setname_np(pthread_self(), name);
    t_queue = &q;
    // The kernel queues a request on the CPU that issued it; serving it on
    // the same CPU keeps the wake-up local. Best effort.
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(q.qid, &cpus);
    (void)sched_setaffinity(0, sizeof(cpus), &cpus);
    for (auto& e : q.entries) queue_command(*e, abi::kRegister);
    q.live = static_cast<unsigned>(q.entries.size());
    queue_wake_read(q);
    (void)io_uring_submit(&q.ring);
    if (queues_registering.fetch_sub(1) == 1) settled();
    while (q.live > 0 && !stopping.load(std::memory_order_relaxed)) {
      io_uring_cqe* cqe = nullptr;
      // Wakes up now and then only to see `stopping`: at unmount the kernel
      // completes every entry with ENOTCONN first.
      __kernel_timespec wait{0, 500 * 1000 * 1000};
      int r = io_uring_submit_and_wait_timeout(&q.ring, &cqe, 1, &wait, nullptr);
      if (r == -ETIME || r == -EINTR) continue;
      if (r < 0) {
        std::fprintf(stderr, "vgfs: io_uring: waiting on the ring of CPU %u: %s\n", q.qid, std::strerror(-r));
        return;
      }
      // Every completion there is now; the commits they queue go out
      // together with the next submit.
      while (io_uring_peek_cqe(&q.ring, &cqe) == 0) {
        const int res = cqe->res;
        const uint64_t tag = io_uring_cqe_get_data64(cqe);
        io_uring_cqe_seen(&q.ring, cqe);
        if (tag == kWakeTag) {
          std::vector<RingEntry*> answered;
          {
            std::lock_guard lock(q.mutex);
            answered.swap(q.answered_by_workers);
          }
          for (RingEntry* e : answered) queue_command(*e, abi::kCommitAndFetch);
          if (res < 0 && res != -EINTR && res != -EAGAIN)
            std::fprintf(stderr, "vgfs: io_uring: reading the wake-up of CPU %u: %s\n", q.qid, std::strerror(-res));
          queue_wake_read(q);
          continue;
        }
        if (!handle_entry(q, *reinterpret_cast<RingEntry*>(tag), res)) --q.live;
      }
    }
  }

  void start_threads() {
    for (unsigned i = 0; i < kSlowWorkers; ++i) workers.emplace_back([this] { work_loop(); });
    for (auto& q : queues) q->thread = std::thread([this, queue = q.get()] { run(*queue); });
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
      ssize_t n = ::writev(fd, iov, count);
      settled();
      return n;
    }
    reply.flags2 |= abi::kOverIoUringFlags2;
    iovec patched[2] = {iov[0], {&reply, iov[1].iov_len}};
    ssize_t n = ::writev(fd, patched, 2);
    if (n >= 0) {
      queues_registering = static_cast<unsigned>(queues.size());
      start_threads();
    } else {
      settled();
    }
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
                                                      MayBlock may_block, std::function<void()> on_settled,
                                                      std::string* why) {
  auto impl = std::make_unique<Impl>();
  impl->on_settled = std::move(on_settled);
  impl->se = se;
  impl->fuse_fd = fuse_session_fd(se);
  impl->debug = debug;
  impl->may_block = may_block;
  const size_t payload = (max_payload + kPage - 1) / kPage * kPage;
  const unsigned queues = possible_cpus();
  for (unsigned qid = 0; qid < queues; ++qid) {
    impl->queues.push_back(std::make_unique<RingQueue>());
    RingQueue& q = *impl->queues.back();
    q.owner = impl.get();
    q.qid = static_cast<uint16_t>(qid);
    io_uring_params params{};
    params.flags = IORING_SETUP_SQE128;
    // A submission slot for every entry's command and the eventfd read.
    int r = io_uring_queue_init_params(kEntriesPerQueue + 1, &q.ring, &params);
    if (r < 0) {
      *why = std::string("cannot create an io_uring: ") + std::strerror(-r);
      return nullptr;
    }
    q.ring_made = true;
    r = io_uring_register_files(&q.ring, &impl->fuse_fd, 1);
    if (r < 0) {
      *why = std::string("cannot register /dev/fuse with an io_uring: ") + std::strerror(-r);
      return nullptr;
    }
    q.wake_fd = eventfd(0, EFD_CLOEXEC);
    if (q.wake_fd < 0) {
      *why = std::string("cannot create an eventfd: ") + std::strerror(errno);
      return nullptr;
    }
    for (unsigned k = 0; k < kEntriesPerQueue; ++k) {
      q.entries.push_back(std::make_unique<RingEntry>());
      RingEntry& entry = *q.entries.back();
      entry.queue = &q;
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
