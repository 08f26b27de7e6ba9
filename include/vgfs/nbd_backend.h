// NbdBackend: a PV served over NBD by another process or machine (nbdkit,
// qemu-nbd, qemu-storage-daemon, nbd-server), through libnbd (docs/nbd.md).
//
// Invariant: a write counts as durable only after its FUA reply or after a
// flush that was sent after its reply (PvBackend's rule); an export that can
// neither flush nor FUA is never opened read-write, and one that can FUA but
// not flush gets every write with FUA. Every request, and every connect, has
// a deadline (NbdOptions::timeout_seconds); a connection that misses one or
// dies is reconnected with back-off while its requests wait, for at most
// NbdOptions::reconnect_seconds, after which they fail with EIO. Writes
// acknowledged but not yet flushed when a connection died may be lost: the
// next flush() reports EIO once. Several connections are used only when the
// export allows multi-conn (a flush on one then covers completed writes on
// all). Requests go out with libnbd's async calls from the caller's thread,
// so any number can be in flight; a synchronous caller reads the replies
// itself while it waits (one waiter per connection leads), and each
// connection's I/O thread does it for submit()'s requests and reconnects.
//
// Threads: the I/O threads start on the first request in a process and are
// stopped around fork() (pthread_atfork), so the daemon started by
// fuse_daemonize() starts its own and the parent, which only exits, never
// reads the sockets it shares with the child.
//
// lock(): NBD has no locks, so a lock file per export URI under /run/lock
// (an OFD lock, as LocalBackend takes on the device) keeps a second vgfs on
// this host off an export one holds; other hosts are not seen (docs/nbd.md).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vgfs/pv_backend.h"

namespace vgfs {

// Process-wide settings of NBD PVs (mount options -o nbd_conns=,
// nbd_timeout=, nbd_reconnect=), read when a PV is opened.
struct NbdOptions {
  unsigned connections = 4;         // when the export allows multi-conn; else 1
  double timeout_seconds = 30;      // connect and each request
  double reconnect_seconds = 30;    // how long requests wait for a lost connection to come back
};

class NbdBackend final : public PvBackend {
 public:
  static void set_options(const NbdOptions& options);
  static NbdOptions options();
  // One mount option: "nbd_conns=N" (1-64), "nbd_timeout=SECONDS",
  // "nbd_reconnect=SECONDS" (0 or more; timeout above 0). EINVAL naming the
  // option otherwise.
  static Status set_option(const std::string& option);

  // `uri` as libnbd takes it (nbd://, nbds://, nbd+unix://, nbds+unix://).
  // Connects (all connections), and refuses a read-write open of a
  // read-only export or one that can neither flush nor FUA.
  static Result<std::unique_ptr<NbdBackend>> open(const std::string& uri, bool writable, std::string label);
  ~NbdBackend() override;

  uint64_t size() const override { return size_; }
  PvCapabilities capabilities() const override;
  // NBD block status (base:allocation) where the export offers it: a run
  // that reads as zeros is a hole. One request asks for a window of up to
  // kExtentWindow bytes and its answer is kept, so a copier asking region by
  // region costs one round trip (and one walk of the server's file) per
  // window, not per region; a write, zero or trim that completes over the
  // window drops it.
  Result<PvExtent> extent_at(uint64_t offset, uint64_t length) const override;
  static constexpr uint64_t kExtentWindow = 1ull << 30;
  // The export's size is fixed for a connection's life: a range check only.
  Status check_range(uint64_t offset, uint64_t length) const override;
  Status lock(bool exclusive) const override;
  // The lease on the export itself (docs/nbd.md, "One mount per export"):
  // for a read-write open, takes the record at `offset` or refuses with
  // EBUSY naming the vgfs that holds it; a thread renews it every
  // kLeasePeriod and the destructor releases it. A read-only open neither
  // takes nor checks it.
  Status take_lease(uint64_t offset) const override;
  static constexpr uint32_t kLeasePeriodSeconds = 2, kLeaseExpirySeconds = 10;
  // Reads and writes complete from the I/O thread of their connection.
  void submit(PvRequest& request) const override;

  // How many connections are open (1 unless the export allows multi-conn).
  size_t connection_count() const;
  // Reconnections since open, for tests and logs.
  uint64_t reconnects() const { return reconnects_.load(); }
  // Connections lost while they held acknowledged, unflushed writes.
  uint64_t write_losses() const override { return write_losses_.load(); }

  struct Op;
  struct Connection;

  // For the fork handlers: I/O threads stop before fork() and restart on
  // the next request (or at once in a parent with requests in flight).
  void stop_threads() const;
  void start_threads() const;
  // The lease renewer, stopped and started around fork() like the I/O
  // threads; the child restarts it at once (its pid is the holder's now).
  void stop_lease_thread() const;
  void start_lease_thread() const;
  bool busy() const { return outstanding_.load() > 0; }

 protected:
  Status do_read(void* buf, uint64_t length, uint64_t offset) const override;
  Status do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const override;
  // NBD flush; EIO once after a connection died holding unflushed writes.
  Status do_flush() const override;
  Status do_discard(uint64_t offset, uint64_t length) const override;  // NBD trim
  Status do_write_zeroes(uint64_t offset, uint64_t length) const override;  // NBD zero, NO_HOLE
  // NBD zero (NO_HOLE when keep_allocated) where offered, else the default.
  Status do_zero(uint64_t offset, uint64_t length, bool keep_allocated) const override;

 private:
  friend struct Connection;
  NbdBackend(std::string uri, std::string label);

  // Runs one request to completion, in pieces of at most `piece_max` bytes.
  Status run(int kind, void* buf, uint64_t length, uint64_t offset, uint32_t flags, const char* what,
             uint64_t piece_max) const;
  // Sends `op` on the next connection, starting the I/O threads first if
  // this process has none yet.
  void start(Op& op) const;
  Connection& pick() const;
  // A connection died holding acknowledged, unflushed writes: the next
  // flush reports EIO once.
  void note_connection_lost() const;
  // A write, zero or trim of [offset, offset+length) completed (or failed):
  // drops the block-status window it overlaps.
  void note_changed(uint64_t offset, uint64_t length) const;

  std::string uri_;
  uint64_t size_ = 0;
  bool writable_ = false;
  bool can_flush_ = false, can_fua_ = false, can_zero_ = false, can_trim_ = false, has_extents_ = false;
  bool multi_conn_ = false;
  uint64_t max_request_ = 32u << 20;
  NbdOptions options_;
  std::vector<std::unique_ptr<Connection>> connections_;
  mutable std::atomic<uint64_t> next_{0};           // round robin over connections
  mutable std::atomic<bool> lost_unflushed_{false};
  mutable std::atomic<uint64_t> reconnects_{0};
  mutable std::atomic<uint64_t> write_losses_{0};
  // The block-status window (extent_at): [window_lo_, window_hi_) is
  // published before its request is sent, and `window_gen_` moves when a
  // change completes inside it, so an answer older than a completed write
  // is never used. The runs themselves are guarded by window_m_.
  mutable std::atomic<uint64_t> window_lo_{0}, window_hi_{0}, window_gen_{0};
  mutable std::mutex window_m_;
  mutable uint64_t window_start_ = 0, window_taken_gen_ = 0;  // guarded by window_m_
  mutable bool window_valid_ = false;                         // guarded by window_m_
  mutable std::vector<std::pair<uint64_t, bool>> window_runs_;  // (length, data), guarded by window_m_
  mutable std::atomic<int64_t> outstanding_{0};  // requests submitted and not yet completed
  mutable std::atomic<bool> threads_running_{false};
  mutable int lock_fd_ = -1;
  // The lease, once taken: its record (as last written) and its renewer.
  struct Lease;
  mutable std::unique_ptr<Lease> lease_;
  void renew_lease() const;
  void release_lease() const;
};

}  // namespace vgfs
