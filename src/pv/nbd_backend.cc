// A PV on an NBD export (include/vgfs/nbd_backend.h, docs/nbd.md).
//
// Each connection is one libnbd handle. Any thread issues requests with
// nbd_aio_* (libnbd sends them at once). Whoever holds poll_m drives the
// connection: polls the socket and an eventfd, lets libnbd read the replies,
// and delivers completions outside libnbd's handle lock: a synchronous
// caller while it waits for its own reply (no thread hand-off per request),
// else the connection's I/O thread, which also reconnects. Drivers enforce
// the deadlines.
//
// Lock order (docs/design.md, "Locks"): Connection::poll_m before
// Connection::m (the handle pointer, its state, the waiting list) before
// libnbd's handle lock before Connection::done_m (in-flight and completed
// lists; libnbd's completion callbacks take it). lead_m and idle_m are
// leaves. Completions are delivered holding poll_m only.
#include "vgfs/nbd_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "vgfs/log.h"
#include "vgfs/pv_lease.h"

namespace vgfs {

namespace {

using Clock = std::chrono::steady_clock;

enum Kind { kRead, kWrite, kFlush, kZero, kTrim, kBlockStatus };

constexpr unsigned kMaxConnections = 64;  // nbd_conns' upper bound

std::mutex options_m;
NbdOptions current_options;  // guarded by options_m

// The registry of open backends, for the fork handlers; also serializes
// starting I/O threads.
std::mutex fork_m;
std::set<const NbdBackend*>* backends = nullptr;  // guarded by fork_m

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

bool connection_error(int err) {
  return err == ENOTCONN || err == ESHUTDOWN || err == ECONNRESET || err == EPIPE || err == ECONNABORTED;
}

std::string libnbd_error() {
  const char* e = nbd_get_error();
  return e && *e ? e : std::strerror(nbd_get_errno() ? nbd_get_errno() : EIO);
}

// Connects one handle, failing after `timeout` (libnbd itself would wait
// forever on a server that accepts and never answers), or when `stop` is set.
nbd_handle* connect_handle(const std::string& uri, double timeout, const std::atomic<bool>* stop, std::string* why) {
  nbd_handle* h = nbd_create();
  if (!h) {
    *why = libnbd_error();
    return nullptr;
  }
  auto fail = [&](std::string reason) {
    *why = std::move(reason);
    nbd_close(h);
    return nullptr;
  };
  // Holes come from block status. A URI may name a local file only for TLS
  // (tls-psk-file, tls-certificates), never a command to run.
  if (nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1) return fail(libnbd_error());
  const bool tls = uri.rfind("nbds://", 0) == 0 || uri.rfind("nbds+unix://", 0) == 0;
  if (nbd_set_uri_allow_local_file(h, tls) == -1) return fail(libnbd_error());
  if (nbd_aio_connect_uri(h, uri.c_str()) == -1) return fail(libnbd_error());
  const Clock::time_point deadline = Clock::now() + seconds(timeout);
  while (!nbd_aio_is_ready(h)) {
    if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h)) return fail(libnbd_error());
    if (stop && stop->load()) return fail("stopping");
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return fail(fmt::format("no answer within {} s", timeout));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    if (nbd_poll(h, static_cast<int>(std::min<int64_t>(left + 1, 100))) == -1) return fail(libnbd_error());
  }
  return h;
}

// Names the lock file of an export: 64-bit FNV-1a of the URI.
std::string lock_path(const std::string& uri) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : uri) hash = (hash ^ c) * 1099511628211ull;
  struct stat st {};
  // VGFS_NBD_LOCK_DIR: another folder, so a test can play a second host.
  const char* env = std::getenv("VGFS_NBD_LOCK_DIR");
  const char* dir = env && *env                                               ? env
                    : ::stat("/run/lock", &st) == 0 && S_ISDIR(st.st_mode) ? "/run/lock"
                                                                            : "/tmp";
  return fmt::format("{}/vgfs-nbd-{:016x}.lock", dir, hash);
}

}  // namespace

// One request on the wire (or waiting for a connection). Lives with its
// caller (a synchronous call's stack, or submit()'s allocation) until
// `complete` has run.
struct NbdBackend::Op {
  const NbdBackend* owner = nullptr;
  Connection* conn = nullptr;
  int kind = kRead;
  void* buf = nullptr;
  uint64_t length = 0;
  uint64_t offset = 0;
  uint32_t flags = 0;
  int err = 0;
  Clock::time_point deadline{};
  enum class Where { kNone, kWaiting, kInflight, kCompleted } where = Where::kNone;
  Op* prev = nullptr;
  Op* next = nullptr;
  void (*complete)(Op&) = nullptr;  // called once, holding no lock of the caller's
  bool async = false;               // submit()'s: nobody waits in await() for it
  std::atomic<bool> delivered{false};  // a synchronous call's: complete has run
  void* context = nullptr;
  // kBlockStatus: the runs of base:allocation, (length, data).
  std::vector<std::pair<uint64_t, bool>>* runs = nullptr;
};

namespace {

// An intrusive list of ops; each op is on at most one.
struct OpList {
  NbdBackend::Op* head = nullptr;
  NbdBackend::Op* tail = nullptr;
  bool empty() const { return head == nullptr; }
  void push_back(NbdBackend::Op* op, NbdBackend::Op::Where where) {
    op->where = where;
    op->next = nullptr;
    op->prev = tail;
    (tail ? tail->next : head) = op;
    tail = op;
  }
  void remove(NbdBackend::Op* op) {
    (op->prev ? op->prev->next : head) = op->next;
    (op->next ? op->next->prev : tail) = op->prev;
    op->prev = op->next = nullptr;
    op->where = NbdBackend::Op::Where::kNone;
  }
  NbdBackend::Op* pop_front() {
    NbdBackend::Op* op = head;
    if (op) remove(op);
    return op;
  }
};

}  // namespace

struct NbdBackend::Connection {
  const NbdBackend* owner = nullptr;
  int index = 0;

  // The right to drive the connection (poll its socket, let libnbd read
  // and write, deliver, close or replace h): the I/O thread, or a
  // synchronous caller waiting for its reply (await). Taken before m.
  std::mutex poll_m;
  std::atomic<int> sync_waiters{0};  // callers in await()
  std::atomic<int> async_ops{0};     // submit()'s requests not yet delivered: the I/O thread drives for them
  std::atomic<bool> connected{true};  // h is set (mirrors h for the idle I/O thread)
  std::atomic<uint64_t> acked{0};         // non-FUA writes, zeroes and trims whose replies arrived here
  std::atomic<uint64_t> flushed_mark{0};  // `acked` as of the start of the last good flush
  std::mutex idle_m;                 // with idle_cv: the I/O thread idles while callers drive
  std::condition_variable idle_cv;
  std::mutex lead_m;  // a leaf; with lead_cv: which waiter drives, and the waiters' wake-ups
  std::condition_variable lead_cv;
  bool leading = false;  // guarded by lead_m

  std::mutex m;
  nbd_handle* h = nullptr;        // guarded by m for senders; replaced only holding poll_m and m
  bool up = false;                // guarded by m
  bool expired = false;           // guarded by m: down longer than the reconnect window
  Clock::time_point down_since{};  // guarded by m
  OpList waiting;                 // guarded by m: to send once connected

  std::mutex done_m;  // a leaf
  OpList inflight;    // guarded by done_m: sent on h
  OpList completed;   // guarded by done_m: to deliver

  int wake_fd = -1;
  std::thread thread;
  std::atomic<bool> stop{false};
  Clock::duration backoff{};  // I/O thread only

  ~Connection() {
    if (h) {
      (void)nbd_aio_disconnect(h, 0);
      nbd_close(h);
    }
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void wake() const {
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  void start() {
    stop = false;
    thread = std::thread([this] { loop(); });
  }
  void halt() {
    if (!thread.joinable()) return;
    stop = true;
    wake();
    {
      std::lock_guard lock(idle_m);
      idle_cv.notify_one();
    }
    thread.join();
  }

  // One call per reply and context; a request sent again after a lost
  // connection gets a fresh answer, so this replaces, never appends.
  static int on_extent(void* user, const char* context, uint64_t, uint32_t* entries, size_t count, int*) {
    Op* op = static_cast<Op*>(user);
    if (!op->runs || std::strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0) return 0;
    op->runs->clear();
    for (size_t i = 0; i + 1 < count; i += 2)
      if (entries[i] > 0) op->runs->emplace_back(entries[i], !(entries[i + 1] & LIBNBD_STATE_ZERO));
    return 0;
  }

  // libnbd's completion callback: runs with the handle lock held, in the I/O
  // thread or (for a send that fails) in the issuing thread.
  static int on_complete(void* user, int* error) {
    Op* op = static_cast<Op*>(user);
    Connection* c = op->conn;
    std::lock_guard lock(c->done_m);
    if (op->where != Op::Where::kInflight) return 1;  // taken back when the connection was lost
    c->inflight.remove(op);
    op->err = *error;
    if (op->err == 0 && (op->kind == kWrite || op->kind == kZero || op->kind == kTrim) &&
        !(op->flags & LIBNBD_CMD_FLAG_FUA))
      c->acked.fetch_add(1, std::memory_order_acq_rel);
    c->completed.push_back(op, Op::Where::kCompleted);
    return 1;
  }

  // Sends `op` on h; false when libnbd refused it at once (it is then on
  // the completed list). `op` may be delivered, and gone, as soon as this
  // returns. Holds m (up is true).
  bool issue(Op* op) {
    op->conn = this;
    op->deadline = Clock::now() + seconds(owner->options_.timeout_seconds);
    {
      std::lock_guard lock(done_m);
      inflight.push_back(op, Op::Where::kInflight);
    }
    nbd_completion_callback cb{&on_complete, op, nullptr};
    int64_t cookie = -1;
    switch (op->kind) {
      case kRead: cookie = nbd_aio_pread(h, op->buf, op->length, op->offset, cb, 0); break;
      case kWrite: cookie = nbd_aio_pwrite(h, op->buf, op->length, op->offset, cb, op->flags); break;
      case kFlush: cookie = nbd_aio_flush(h, cb, 0); break;
      case kZero: cookie = nbd_aio_zero(h, op->length, op->offset, cb, op->flags); break;
      case kTrim: cookie = nbd_aio_trim(h, op->length, op->offset, cb, 0); break;
      case kBlockStatus:
        cookie = nbd_aio_block_status(h, op->length, op->offset, nbd_extent_callback{&on_extent, op, nullptr}, cb, 0);
        break;
    }
    if (cookie >= 0) return true;
    // Not sent: libnbd calls no callback for it.
    int err = nbd_get_errno();
    std::lock_guard lock(done_m);
    if (op->where == Op::Where::kInflight) {
      inflight.remove(op);
      op->err = err ? err : EIO;
      completed.push_back(op, Op::Where::kCompleted);
    }
    return false;
  }

  void submit(Op* op) {
    op->conn = this;
    if (op->async && async_ops.fetch_add(1, std::memory_order_acq_rel) == 0) {
      std::lock_guard lock(idle_m);
      idle_cv.notify_one();
    }
    bool need_wake = true;
    {
      std::lock_guard lock(m);
      if (up) {
        const bool sent = issue(op);  // `op` is not ours to touch from here
        // Whoever drives the connection polls for replies already; it needs
        // waking only to finish a send libnbd could not complete, or to
        // deliver an error.
        need_wake = !sent || (nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE);
      } else if (expired) {
        op->err = EIO;
        std::lock_guard done(done_m);
        completed.push_back(op, Op::Where::kCompleted);
      } else {
        // The I/O thread is reconnecting and sends it then; waking it would
        // cut its back-off short for every request.
        waiting.push_back(op, Op::Where::kWaiting);
        need_wake = false;
      }
    }
    if (need_wake) wake();
  }

  void deliver() {
    // A failure seen while the connection is dying is the connection's, not
    // the request's: whatever failed is sent again once reconnected. The
    // caller holds poll_m, without which h does not change, so h is read
    // here without m.
    OpList batch;
    {
      std::lock_guard lock(done_m);
      std::swap(batch, completed);
    }
    // ESHUTDOWN is a server on its way out (nbdkit after SIGTERM answers
    // every new request so until the client leaves): reconnect as well.
    bool shutting_down = false;
    for (Op* op = batch.head; op; op = op->next) shutting_down |= op->err == ESHUTDOWN;
    if (h && (shutting_down || nbd_aio_is_dead(h) || nbd_aio_is_closed(h))) {
      {
        std::lock_guard lock(done_m);
        OpList ok;
        while (Op* op = batch.pop_front()) {
          if (op->err != 0) completed.push_back(op, Op::Where::kCompleted);
          else ok.push_back(op, Op::Where::kCompleted);
        }
        std::swap(batch, ok);
      }
      lose(shutting_down ? "the server is shutting down" : "the connection was closed");  // takes back what failed
    }
    while (Op* op = batch.pop_front()) {
      if (op->kind == kWrite || op->kind == kZero || op->kind == kTrim) op->owner->note_changed(op->offset, op->length);
      op->owner->outstanding_.fetch_sub(1, std::memory_order_acq_rel);
      if (op->async) async_ops.fetch_sub(1, std::memory_order_acq_rel);
      op->complete(*op);
    }
  }

  // The connection is gone (closed by the server, or a request missed its
  // deadline): close it, and put every request without a reply back in line
  // for the next connection.
  void lose(const std::string& why) {
    {
      std::lock_guard lock(m);
      nbd_close(h);
      h = nullptr;
      connected = false;
      up = false;
      expired = false;
      down_since = Clock::now();
    }
    backoff = std::chrono::milliseconds(50);
    OpList again;
    {
      std::lock_guard lock(done_m);
      while (Op* op = inflight.pop_front()) again.push_back(op, Op::Where::kNone);
      OpList keep;
      while (Op* op = completed.pop_front()) {
        if (op->err != 0) again.push_back(op, Op::Where::kNone);  // sent again: harmless if it was the server's
        else keep.push_back(op, Op::Where::kCompleted);
      }
      std::swap(completed, keep);
    }
    {
      std::lock_guard lock(m);
      while (Op* op = again.pop_front()) waiting.push_back(op, Op::Where::kWaiting);
    }
    // Writes this connection had acknowledged since the last good flush may
    // be gone with the server's session (a flush on another connection
    // covers only sessions that were alive).
    if (acked.load(std::memory_order_acquire) > flushed_mark.load(std::memory_order_acquire))
      owner->note_connection_lost();
    {
      std::lock_guard idle(idle_m);  // the I/O thread reconnects
      idle_cv.notify_one();
    }
    log::warning(fmt::format("{}: NBD connection {} lost ({}); reconnecting for up to {} s", owner->label(), index,
                             why, owner->options_.reconnect_seconds));
  }

  // Fails every waiting request once the reconnect window has passed.
  void fail_waiting() {
    std::lock_guard lock(m);
    expired = true;
    std::lock_guard done(done_m);
    while (Op* op = waiting.pop_front()) {
      op->err = EIO;
      completed.push_back(op, Op::Where::kCompleted);
    }
  }

  // Sleeps for the back-off (woken early by stop), then tries once.
  void reconnect_step() {
    Clock::time_point since;
    bool was_expired;
    {
      std::lock_guard lock(m);
      since = down_since;
      was_expired = expired;
    }
    const Clock::time_point window_end = since + seconds(owner->options_.reconnect_seconds);
    Clock::duration wait = backoff;
    if (!was_expired) wait = std::min(wait, std::max(Clock::duration::zero(), window_end - Clock::now()));
    pollfd p{wake_fd, POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()));
    if (p.revents & POLLIN) {
      uint64_t v;
      (void)!::read(wake_fd, &v, sizeof v);
    }
    if (stop) return;
    backoff = std::min<Clock::duration>(backoff * 2, std::chrono::seconds(2));
    std::string why;
    nbd_handle* fresh = connect_handle(owner->uri_, owner->options_.timeout_seconds, &stop, &why);
    if (fresh && static_cast<uint64_t>(nbd_get_size(fresh)) != owner->size_) {
      why = fmt::format("the export is {} bytes now, {} before", nbd_get_size(fresh), owner->size_);
      nbd_close(fresh);
      fresh = nullptr;
    }
    if (!fresh) {
      if (!was_expired && Clock::now() >= window_end) {
        fail_waiting();
        log::error(fmt::format("{}: NBD connection {} not back within {} s ({}): its requests fail with EIO",
                               owner->label(), index, owner->options_.reconnect_seconds, why));
      }
      return;
    }
    {
      std::lock_guard lock(m);
      h = fresh;
      connected = true;
      up = true;
      expired = false;
      while (Op* op = waiting.pop_front()) issue(op);
    }
    owner->reconnects_.fetch_add(1);
    lead_cv.notify_all();  // waiters drive again
    log::info(fmt::format("{}: NBD connection {} is back", owner->label(), index));
  }

  bool deadline_passed() {
    const Clock::time_point now = Clock::now();
    std::lock_guard lock(done_m);
    for (Op* op = inflight.head; op; op = op->next)
      if (op->deadline <= now) return true;
    return false;
  }

  // One turn of driving the connection: wait for the socket (or the
  // eventfd) at most `timeout_ms`, let libnbd read and write, enforce the
  // deadlines, deliver completions; or, while it is down, one reconnect
  // attempt. Holds poll_m.
  void drive(int timeout_ms) {
    if (!h) {
      deliver();  // what failed at once (the window passed) need not wait for the back-off
      reconnect_step();
      deliver();
      return;
    }
    const unsigned dir = nbd_aio_get_direction(h);
    pollfd p[2] = {{nbd_aio_get_fd(h), 0, 0}, {wake_fd, POLLIN, 0}};
    if (dir & LIBNBD_AIO_DIRECTION_READ) p[0].events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE) p[0].events |= POLLOUT;
    (void)::poll(p, 2, timeout_ms);
    if (p[1].revents & POLLIN) {
      uint64_t v;
      (void)!::read(wake_fd, &v, sizeof v);
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) (void)nbd_aio_notify_read(h);
    if (p[0].revents & POLLOUT) (void)nbd_aio_notify_write(h);
    check_deadlines();
    deliver();
  }

  // Looks, without waiting, whether an idle connection died (a socket that
  // is readable with no request in flight has seen the server go): nobody
  // polls an idle connection, and a flush must not count for writes whose
  // session is gone. Skipped while another thread drives it (it will see).
  void check_alive() {
    std::unique_lock driving(poll_m, std::try_to_lock);
    if (!driving || !h) return;
    pollfd p{nbd_aio_get_fd(h), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0 && p.revents) (void)nbd_aio_notify_read(h);
    deliver();  // loses the connection if it is dead, and hands out any reply read
  }

  void check_deadlines() {
    if (h && !nbd_aio_is_dead(h) && !nbd_aio_is_closed(h) && deadline_passed())
      lose(fmt::format("no reply within {} s", owner->options_.timeout_seconds));
  }

  // The I/O thread drives the connection for submit()'s requests and while
  // it is down (reconnecting). Synchronous callers drive it themselves while
  // they wait (await), which saves a thread hand-off per request; the I/O
  // thread then idles.
  void loop() {
    while (!stop) {
      auto idle = [&] {
        return connected.load() && (sync_waiters.load() > 0 || async_ops.load() == 0);
      };
      if (idle()) {
        std::unique_lock lock(idle_m);
        idle_cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop.load() || !idle(); });
        continue;
      }
      std::lock_guard driving(poll_m);
      drive(100);
    }
  }

  // Waits for `op` (sent on this connection by a synchronous caller). One
  // waiter at a time leads: it drives the connection until its own reply
  // has come, delivering the others' on the way, then hands over to a
  // waiter still waiting. While the connection is down the I/O thread
  // reconnects and the waiters wait.
  void await(const Op& op) {
    if (sync_waiters.fetch_add(1, std::memory_order_acq_rel) == 0 && async_ops.load() > 0) wake();
    std::unique_lock lock(lead_m);
    while (!op.delivered.load(std::memory_order_acquire)) {
      if (leading || !connected.load()) {
        lead_cv.wait_for(lock, std::chrono::milliseconds(50));
        continue;
      }
      leading = true;
      lock.unlock();
      {
        std::lock_guard driving(poll_m);
        while (!op.delivered.load(std::memory_order_acquire) && connected.load()) drive(100);
      }
      lock.lock();
      leading = false;
      lead_cv.notify_all();
    }
    lock.unlock();
    // The I/O thread takes over driving only for submit()'s requests: waking
    // it after every synchronous request would cost a context switch each
    // (measured: a quarter of the CPU of a 4 KiB read on a 2-core machine).
    // A submit() that raises async_ops from 0 wakes it itself.
    if (sync_waiters.fetch_sub(1, std::memory_order_acq_rel) == 1 && async_ops.load(std::memory_order_acquire) > 0) {
      std::lock_guard idle(idle_m);
      idle_cv.notify_one();
    }
  }

  // Op::complete of a synchronous call.
  static void wake_waiter(Op& op) {
    Connection* c = op.conn;
    {
      std::lock_guard lock(c->lead_m);
      op.delivered.store(true, std::memory_order_release);
    }
    c->lead_cv.notify_all();  // `op` may be gone now; the connection is not
  }
};

namespace {

void before_fork() {
  fork_m.lock();
  if (backends)
    for (const NbdBackend* b : *backends) {
      b->stop_lease_thread();
      b->stop_threads();
    }
}
void after_fork_parent() {
  // The parent of Background::start() only waits for the daemon and exits: restarting its threads would
  // make it read replies meant for the child from the shared sockets. A
  // parent with requests in flight goes on serving them.
  if (backends)
    for (const NbdBackend* b : *backends)
      if (b->busy()) {
        b->start_threads();
        b->start_lease_thread();
      }
  fork_m.unlock();
}
void after_fork_child() {
  // The daemon: it holds the leases now (renewing them records its pid).
  if (backends)
    for (const NbdBackend* b : *backends) b->start_lease_thread();
  fork_m.unlock();
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

void NbdBackend::set_options(const NbdOptions& options) {
  std::lock_guard lock(options_m);
  current_options = options;
}

NbdOptions NbdBackend::options() {
  std::lock_guard lock(options_m);
  return current_options;
}

Status NbdBackend::set_option(const std::string& option) {
  const size_t eq = option.find('=');
  const std::string key = option.substr(0, eq), value = eq == std::string::npos ? "" : option.substr(eq + 1);
  double number = -1;
  try {
    size_t used = 0;
    number = std::stod(value, &used);
    if (used != value.size()) number = -1;
  } catch (const std::exception&) {
  }
  NbdOptions o = options();
  if (key == "nbd_conns" && number >= 1 && number <= 64 && number == static_cast<unsigned>(number))
    o.connections = static_cast<unsigned>(number);
  else if (key == "nbd_timeout" && number > 0 && number <= 86400)
    o.timeout_seconds = number;
  else if (key == "nbd_reconnect" && number >= 0 && number <= 86400)
    o.reconnect_seconds = number;
  else
    return Status::Error(EINVAL, fmt::format("bad mount option \"{}\": nbd_conns takes 1-64, nbd_timeout seconds "
                                             "above 0, nbd_reconnect seconds (0 or more)", option));
  set_options(o);
  return Status::Ok();
}

NbdBackend::NbdBackend(std::string uri, std::string label) : PvBackend(std::move(label)), uri_(std::move(uri)) {}

Result<std::unique_ptr<NbdBackend>> NbdBackend::open(const std::string& uri, bool writable, std::string label) {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
  std::unique_ptr<NbdBackend> b(new NbdBackend(uri, std::move(label)));
  b->writable_ = writable;
  b->options_ = options();
  std::string why;
  nbd_handle* h = connect_handle(uri, b->options_.timeout_seconds, nullptr, &why);
  if (!h) return Status::Error(EIO, fmt::format("{}: cannot connect to the NBD server: {}", b->label(), why));
  auto first = std::make_unique<Connection>();
  first->h = h;
  int64_t size = nbd_get_size(h);
  b->size_ = size < 0 ? 0 : static_cast<uint64_t>(size);
  b->can_flush_ = nbd_can_flush(h) == 1;
  b->can_fua_ = nbd_can_fua(h) == 1;
  b->can_zero_ = nbd_can_zero(h) == 1;
  b->can_trim_ = nbd_can_trim(h) == 1;
  b->multi_conn_ = nbd_can_multi_conn(h) == 1;
  b->has_extents_ = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  const bool read_only = nbd_is_read_only(h) == 1;
  if (int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM); max > 0)
    b->max_request_ = std::min<uint64_t>(b->max_request_, static_cast<uint64_t>(max));
  b->connections_.push_back(std::move(first));
  if (size < 0) return Status::Error(EIO, fmt::format("{}: cannot read the export's size: {}", b->label(), libnbd_error()));
  if (writable && read_only)
    return Status::Error(EROFS, fmt::format("{}: the NBD export is read-only; a PV that vgfs writes needs a "
                                            "writable export", b->label()));
  if (writable && !b->can_flush_ && !b->can_fua_)
    return Status::Error(EINVAL, fmt::format("{}: the NBD export can neither flush nor FUA, so no write to it "
                                             "could be made durable; serve it with flush (e.g. nbd-server's "
                                             "flush = true) or open the VG read-only", b->label()));
  const unsigned want = b->multi_conn_ ? std::clamp(b->options_.connections, 1u, kMaxConnections) : 1u;
  while (b->connections_.size() < want) {
    nbd_handle* more = connect_handle(uri, b->options_.timeout_seconds, nullptr, &why);
    if (!more)
      return Status::Error(EIO, fmt::format("{}: cannot open NBD connection {}: {}", b->label(),
                                            b->connections_.size(), why));
    auto c = std::make_unique<Connection>();
    c->h = more;
    b->connections_.push_back(std::move(c));
  }
  for (size_t i = 0; i < b->connections_.size(); ++i) {
    Connection& c = *b->connections_[i];
    c.owner = b.get();
    c.index = static_cast<int>(i);
    c.up = true;
    c.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c.wake_fd < 0)
      return Status::Error(errno, fmt::format("{}: cannot make an eventfd: {}", b->label(), std::strerror(errno)));
  }
  std::lock_guard lock(fork_m);
  if (!backends) backends = new std::set<const NbdBackend*>;
  backends->insert(b.get());
  return b;
}

NbdBackend::~NbdBackend() {
  {
    std::lock_guard lock(fork_m);
    if (backends) backends->erase(this);
  }
  stop_lease_thread();
  release_lease();
  {
    std::lock_guard lock(fork_m);
    stop_threads();
  }
  connections_.clear();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void NbdBackend::start_threads() const {
  for (const auto& c : connections_) c->start();
  threads_running_.store(true, std::memory_order_release);
}

void NbdBackend::stop_threads() const {
  for (const auto& c : connections_) c->halt();
  threads_running_.store(false, std::memory_order_release);
}

size_t NbdBackend::connection_count() const { return connections_.size(); }

PvCapabilities NbdBackend::capabilities() const {
  PvCapabilities c;
  // With no flush, every write goes out with FUA anyway.
  c.can_fua = can_fua_;
  c.can_punch = can_trim_;
  c.can_zero = can_zero_;
  c.has_extents = has_extents_;
  c.async_submit = true;  // completions come from the connections' I/O threads
  return c;
}

Status NbdBackend::check_range(uint64_t offset, uint64_t length) const {
  if (offset <= size_ && length <= size_ - offset) return Status::Ok();
  return Status::Error(EIO, fmt::format("{}: bytes {}-{} lie past the end of the {}-byte export", label(), offset,
                                        offset + length, size_));
}

NbdBackend::Connection& NbdBackend::pick() const {
  if (connections_.size() == 1) return *connections_[0];
  return *connections_[next_.fetch_add(1, std::memory_order_relaxed) % connections_.size()];
}

void NbdBackend::start(Op& op) const {
  if (!threads_running_.load(std::memory_order_acquire)) {
    std::lock_guard lock(fork_m);
    if (!threads_running_.load(std::memory_order_acquire)) start_threads();
  }
  op.owner = this;
  outstanding_.fetch_add(1, std::memory_order_acq_rel);
  pick().submit(&op);
}

Status NbdBackend::run(int kind, void* buf, uint64_t length, uint64_t offset, uint32_t flags, const char* what,
                       uint64_t piece_max) const {
  if (kind != kFlush) VGFS_RETURN_IF_ERROR(check_range(offset, length));
  uint64_t done = 0;
  do {
    const uint64_t n = std::min(length - done, piece_max);
    Op op;
    op.kind = kind;
    op.buf = buf ? static_cast<char*>(buf) + done : nullptr;
    op.length = n;
    op.offset = offset + done;
    op.flags = flags;
    op.complete = &Connection::wake_waiter;
    start(op);
    op.conn->await(op);
    if (op.err != 0) {
      const int code = connection_error(op.err) || op.err == ETIMEDOUT ? EIO : op.err;
      if (kind == kFlush)
        return Status::Error(code, fmt::format("{}: NBD flush failed: {}", label(), std::strerror(op.err)));
      return Status::Error(code, fmt::format("{}: NBD {} of {} bytes at byte {} failed: {}", label(), what, n,
                                             offset + done, std::strerror(op.err)));
    }
    done += n;
  } while (done < length);
  return Status::Ok();
}

Status NbdBackend::do_read(void* buf, uint64_t length, uint64_t offset) const {
  return run(kRead, buf, length, offset, 0, "read", max_request_);
}

Status NbdBackend::do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const {
  // An export that cannot flush gets every write with FUA: nothing else
  // would ever make it durable.
  const uint32_t flags = (fua || !can_flush_) && can_fua_ ? LIBNBD_CMD_FLAG_FUA : 0;
  return run(kWrite, const_cast<void*>(buf), length, offset, flags, "write", max_request_);
}

Status NbdBackend::do_flush() const {
  uint64_t seen[kMaxConnections];
  for (size_t i = 0; i < connections_.size(); ++i) seen[i] = connections_[i]->acked.load(std::memory_order_acquire);
  if (can_flush_) VGFS_RETURN_IF_ERROR(run(kFlush, nullptr, 0, 0, 0, "flush", max_request_));
  // With multi-conn the flush covers the writes completed on every
  // connection whose session is still alive: find the dead ones first.
  for (size_t i = 0; i < connections_.size(); ++i) {
    Connection& c = *connections_[i];
    c.check_alive();
    uint64_t prev = c.flushed_mark.load(std::memory_order_relaxed);
    while (prev < seen[i] && !c.flushed_mark.compare_exchange_weak(prev, seen[i], std::memory_order_acq_rel)) {
    }
  }
  if (lost_unflushed_.exchange(false))
    return Status::Error(EIO, fmt::format("{}: an NBD connection was lost while it held writes that were not yet "
                                          "flushed; they may not have reached the server's storage",
                                          label()));
  return Status::Ok();
}

void NbdBackend::note_connection_lost() const {
  write_losses_.fetch_add(1);
  lost_unflushed_.store(true);
  note_written();  // so flush_if_written() flushes, and reports it
}

Status NbdBackend::do_discard(uint64_t offset, uint64_t length) const {
  if (!can_trim_)
    return Status::Error(EOPNOTSUPP, fmt::format("{}: the NBD export does not offer trim", label()));
  return run(kTrim, nullptr, length, offset, 0, "trim", 1u << 30);
}

Status NbdBackend::do_write_zeroes(uint64_t offset, uint64_t length) const {
  if (!can_zero_)
    return Status::Error(EOPNOTSUPP, fmt::format("{}: the NBD export does not offer a zero command", label()));
  return run(kZero, nullptr, length, offset, LIBNBD_CMD_FLAG_NO_HOLE, "zero", 1u << 30);
}

Status NbdBackend::do_zero(uint64_t offset, uint64_t length, bool keep_allocated) const {
  VGFS_RETURN_IF_ERROR(check_range(offset, length));
  if (can_zero_) {
    // NBD's zero command guarantees zeros; without NO_HOLE the server may
    // deallocate the range.
    Status st = run(kZero, nullptr, length, offset, keep_allocated ? LIBNBD_CMD_FLAG_NO_HOLE : 0, "zero", 1u << 30);
    if (st.ok() || (st.code() != EOPNOTSUPP && st.code() != EINVAL)) return st;
  }
  return PvBackend::do_zero(offset, length, keep_allocated);
}

void NbdBackend::note_changed(uint64_t offset, uint64_t length) const {
  // A completed change is on the server before this runs; a window published
  // after it was read sees it, one published before is dropped here.
  if (offset < window_hi_.load() && offset + length > window_lo_.load()) window_gen_.fetch_add(1);
}

Result<PvExtent> NbdBackend::extent_at(uint64_t offset, uint64_t length) const {
  VGFS_RETURN_IF_ERROR(check_range(offset, length));
  if (!has_extents_ || length == 0) return PvExtent{offset, length, true};
  std::lock_guard lock(window_m_);
  auto from_window = [&]() -> std::optional<PvExtent> {
    if (!window_valid_ || window_gen_.load() != window_taken_gen_ || offset < window_start_) return std::nullopt;
    uint64_t at = window_start_;
    for (const auto& [run, data] : window_runs_) {
      if (offset < at + run) return PvExtent{offset, std::min(at + run - offset, length), data};
      at += run;
    }
    return std::nullopt;
  };
  if (std::optional<PvExtent> e = from_window()) return *e;
  // Ask for the window from here: publish it first, so a change completing
  // from now on drops the answer (note_changed).
  window_valid_ = false;
  const uint64_t ask = std::min(kExtentWindow, size_ - offset);  // NBD lengths are 32-bit
  window_lo_.store(offset);
  window_hi_.store(offset + ask);
  const uint64_t gen = window_gen_.load();
  window_runs_.clear();
  Op op;
  op.kind = kBlockStatus;
  op.length = ask;
  op.offset = offset;
  op.runs = &window_runs_;
  op.complete = &Connection::wake_waiter;
  start(op);
  op.conn->await(op);
  // No answer is no knowledge: report data (a copy is never wrong).
  if (op.err != 0 || window_runs_.empty()) return PvExtent{offset, length, true};
  window_start_ = offset;
  window_taken_gen_ = gen;
  window_valid_ = true;
  if (std::optional<PvExtent> e = from_window()) return *e;
  return PvExtent{offset, length, true};
}

Status NbdBackend::lock(bool exclusive) const {
  if (lock_fd_ < 0) {
    const std::string path = lock_path(uri_);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0)
      return Status::Error(errno, fmt::format("{}: cannot open its lock file {}: {}", label(), path,
                                              std::strerror(errno)));
    (void)::fchmod(fd, 0666);  // any user's vgfs must be able to take it
    lock_fd_ = fd;
  }
  struct flock fl {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(lock_fd_, F_OFD_SETLK, &fl) == 0) return Status::Ok();
  if (errno == EAGAIN || errno == EACCES)
    return Status::Error(EBUSY, fmt::format("{}: in use by another vgfs on this host (is the VG mounted already?)",
                                            label()));
  return Status::Error(errno, fmt::format("{}: cannot lock: {}", label(), std::strerror(errno)));
}

// ---- the lease (docs/nbd.md, "One mount per export") ----

struct NbdBackend::Lease {
  uint64_t offset = 0;
  std::mutex m;  // the record and its writes
  LeaseRecord record;
  std::thread thread;
  std::mutex stop_m;
  std::condition_variable stop_cv;
  bool stop = false;  // guarded by stop_m
};

Status NbdBackend::take_lease(uint64_t offset) const {
  if (!writable_ || lease_) return Status::Ok();
  VGFS_RETURN_IF_ERROR(check_range(offset, kLeaseSize));
  std::string block(kLeaseSize, '\0');
  auto refuse = [&](const LeaseRecord& l, const std::string& why) {
    return Status::Error(EBUSY, fmt::format("{}: in use by vgfs pid {} on host {} (its lease on the export: {}); "
                                            "unmount it there first",
                                            label(), l.pid, l.host, why));
  };
  VGFS_RETURN_IF_ERROR(read(block.data(), kLeaseSize, offset));
  std::optional<LeaseRecord> found = decode_lease(block);
  if (found)
    if (std::string why = lease_live_reason(*found, wall_ms()); !why.empty()) return refuse(*found, why);
  auto lease = std::make_unique<Lease>();
  lease->offset = offset;
  LeaseRecord& mine = lease->record;
  mine.held = true;
  mine.holder = new_uuid();
  mine.counter = found ? found->counter + 1 : 1;
  mine.renewed_ms = wall_ms();
  mine.period_s = kLeasePeriodSeconds;
  mine.expiry_s = kLeaseExpirySeconds;
  mine.pid = static_cast<uint64_t>(::getpid());
  mine.host = lease_host_name();
  mine.boot_id = lease_boot_id();
  const std::string image = encode_lease(mine);
  VGFS_RETURN_IF_ERROR(write(image.data(), image.size(), offset, WriteFlags::kFua));
  // Two vgfs that read the record free at the same moment both write it:
  // the last write wins, and the other sees it when it reads back after a
  // pause longer than a write's round trip.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  VGFS_RETURN_IF_ERROR(read(block.data(), kLeaseSize, offset));
  found = decode_lease(block);
  if (!found || found->holder != mine.holder)
    return found ? refuse(*found, "it took the lease at the same time") :
                   Status::Error(EIO, fmt::format("{}: the lease record at byte {} does not read back", label(), offset));
  lease_ = std::move(lease);
  start_lease_thread();
  return Status::Ok();
}

void NbdBackend::renew_lease() const {
  std::lock_guard lock(lease_->m);
  LeaseRecord& mine = lease_->record;
  std::string block(kLeaseSize, '\0');
  if (read(block.data(), kLeaseSize, lease_->offset).ok())
    if (std::optional<LeaseRecord> now = decode_lease(block); now && now->holder != mine.holder)
      log::error(fmt::format("{}: vgfs pid {} on host {} took over the lease on the export (this vgfs did not "
                             "renew it within {} s); renewing ours",
                             label(), now->pid, now->host, mine.expiry_s));
  mine.counter++;
  mine.renewed_ms = wall_ms();
  mine.pid = static_cast<uint64_t>(::getpid());
  const std::string image = encode_lease(mine);
  if (Status st = write(image.data(), image.size(), lease_->offset, WriteFlags::kFua); !st.ok())
    log::warning(fmt::format("{}: renewing the lease failed: {}", label(), st.message()));
}

void NbdBackend::release_lease() const {
  if (!lease_ || lease_->record.pid != static_cast<uint64_t>(::getpid())) return;  // a forked parent's is the child's
  std::lock_guard lock(lease_->m);
  LeaseRecord free = lease_->record;
  free.held = false;
  free.counter++;
  free.renewed_ms = wall_ms();
  const std::string image = encode_lease(free);
  if (Status st = write(image.data(), image.size(), lease_->offset, WriteFlags::kFua); !st.ok())
    log::warning(fmt::format("{}: releasing the lease failed: {}", label(), st.message()));
}

void NbdBackend::start_lease_thread() const {
  if (!lease_ || lease_->thread.joinable()) return;
  {
    std::lock_guard lock(lease_->stop_m);
    lease_->stop = false;
  }
  // A child renews at once: the record must name the process that holds it.
  const bool now = lease_->record.pid != static_cast<uint64_t>(::getpid());
  lease_->thread = std::thread([this, now] {
    bool first = now;
    while (true) {
      {
        std::unique_lock lock(lease_->stop_m);
        if (!first && lease_->stop_cv.wait_for(lock, std::chrono::seconds(kLeasePeriodSeconds),
                                               [&] { return lease_->stop; }))
          return;
        if (lease_->stop) return;
      }
      first = false;
      renew_lease();
    }
  });
}

void NbdBackend::stop_lease_thread() const {
  if (!lease_ || !lease_->thread.joinable()) return;
  {
    std::lock_guard lock(lease_->stop_m);
    lease_->stop = true;
  }
  lease_->stop_cv.notify_all();
  lease_->thread.join();
}

void NbdBackend::submit(PvRequest& r) const {
  const bool sync_path = r.op == PvRequest::Op::kFlush || r.length == 0 || r.length > max_request_ ||
                         (r.op == PvRequest::Op::kWrite && r.flags == WriteFlags::kFua && !can_fua_);
  if (sync_path || !check_range(r.offset, r.length).ok()) {
    PvBackend::submit(r);  // the synchronous path has the bookkeeping and the messages
    return;
  }
  auto* op = new Op;
  op->async = true;
  op->kind = r.op == PvRequest::Op::kRead ? kRead : kWrite;
  op->buf = r.buf;
  op->length = r.length;
  op->offset = r.offset;
  op->flags = op->kind == kWrite && (r.flags == WriteFlags::kFua || !can_flush_) && can_fua_ ? LIBNBD_CMD_FLAG_FUA : 0;
  op->context = &r;
  op->complete = [](Op& o) {
    auto& req = *static_cast<PvRequest*>(o.context);
    const NbdBackend& b = *o.owner;
    Status st;
    if (o.err != 0) {
      const int code = connection_error(o.err) || o.err == ETIMEDOUT ? EIO : o.err;
      st = Status::Error(code, fmt::format("{}: NBD {} of {} bytes at byte {} failed: {}", b.label(),
                                           o.kind == kRead ? "read" : "write", o.length, o.offset,
                                           std::strerror(o.err)));
    } else if (o.kind == kWrite) {
      b.note_written();
    }
    delete &o;
    req.done(req, std::move(st));
  };
  start(*op);
}

}  // namespace vgfs
