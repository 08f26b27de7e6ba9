// Transfer: the live transfer-region record of one migration job, and the
// write-path rules that keep it true (docs/migration.md rules 2, 3 and 5).
//
// Invariant (rule 5): on disk, at every instant, every region below the
// persisted progress pointer is equal on both sides or has its persisted
// bit set. It holds because
//   - a writer (write() or discard(): a discard is a write of zeros) sets a
//     region's bit in memory and, if the persisted record lacks it, waits
//     for a record flush (shared by concurrent writers) before it writes
//     the source;
//   - a checkpoint makes the destination durable before it persists a larger
//     progress pointer or a cleared bit, and only clears bits that were clear
//     in memory before that fdatasync;
//   - the copier and writers hold a region's lock while they touch it, and
//     the copier holds at most one at a time;
//   - a destination that may have lost acknowledged writes since the last
//     durable checkpoint (its PvBackend::write_losses() moved: an NBD server
//     restarted within the reconnect window) gets every region copied or
//     dual-written since then marked dirty again before the checkpoint goes
//     on, so the job recopies them instead of failing.
// Regions are `region_size` bytes of the range; the last may be shorter.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "vgfs/job_record.h"
#include "vgfs/pv_device.h"
#include "vgfs/status.h"

namespace vgfs {

class Transfer {
 public:
  // A byte position on a PV.
  struct Place {
    const PvDevice* dev = nullptr;
    uint64_t offset = 0;
  };
  struct Geometry {
    uint64_t job_id = 0;
    uint64_t lv_begin = 0;     // byte offset of the range in the LV (linear ranges)
    // The range is (part of) a leg of a striped run: its bytes are not one
    // stretch of the LV, so writes find it by their PV place (source.dev,
    // source.offset .. + size) instead of lv_begin (VolumeSet::change).
    bool leg = false;
    uint64_t size = 0;         // bytes in the range
    uint64_t region_size = 0;
    Place source, destination;
    Place record;              // first of the two record copies
  };

  // `resume` is the record found on disk for a job being resumed, or null
  // for a new job.
  Transfer(const Geometry& geometry, const JobRecord* resume);
  ~Transfer();

  const Geometry& geometry() const { return g_; }
  uint64_t region_count() const { return regions_; }
  uint64_t lv_begin() const { return g_.lv_begin; }
  uint64_t lv_end() const { return g_.lv_begin + g_.size; }

  // ---- write path (rule 2) ----
  // Writes `length` bytes at `offset` of the range. EAGAIN when the
  // transfer finished before the write got in (the caller looks up the map
  // again); EIO when the source or the record cannot be written.
  Status write(uint64_t offset, const void* buf, size_t length);
  // Discards (`zero` false: fallocate PUNCH_HOLE) or zeroes (`zero` true:
  // ZERO_RANGE, allocation kept) `length` bytes at `offset` of the range
  // under exactly the rules of write(): both make the bytes read as zeros,
  // so both are writes of zeros to the transfer (docs/migration.md, "Discard and zero-range are writes").
  Status discard(uint64_t offset, uint64_t length, bool zero);

  // ---- copier (rules 3, 4, 8) ----
  // First pass: copies the region at P and moves P past it.
  Status copy_next();
  // Recopies region `r` if its bit is set: clear the bit, then copy, under the lock.
  Status recopy(uint64_t r);
  // The first dirty region at or after `from`, if any.
  std::optional<uint64_t> next_dirty(uint64_t from) const;
  uint64_t dirty_count() const;  // regions with a dirty or dual-written bit
  uint64_t pending_count() const;  // regions the copier still has to recopy

  // ---- record (rules 5, 6) ----
  // Persists P and the bitmap (destination made durable first).
  Status checkpoint();
  uint64_t progress_pointer() const { return progress_.load(); }
  uint64_t persisted_pointer() const;
  SyncStatus sync_status() const { return status_.load(); }
  void set_sync_status(SyncStatus s) { status_.store(s); }
  bool paused() const { return paused_.load(); }
  void set_paused(bool p) { paused_.store(p); }
  uint64_t rate_limit() const { return rate_limit_.load(); }
  void set_rate_limit(uint64_t r) { rate_limit_.store(r); }
  uint64_t copied_bytes() const { return copied_.load(); }
  // Checkpoints that found the destination had lost acknowledged writes
  // and marked the regions since the previous one for a recopy.
  uint64_t loss_recoveries() const { return loss_recoveries_.load(); }
  // The bitmap as persisted next: dirty | dual-written, one bit per region.
  std::string bitmap_bytes() const;
  // Set when a write to the destination failed in the synchronized state.
  std::string write_failure() const;

  // ---- switch and abort (rules 4, 7) ----
  // Blocks writes to the range until finish() and returns once every write
  // in progress has ended; then the dual-written bits are cleared only by
  // finish(). The caller commits the metadata in between.
  void block_writes();
  // Marks the transfer finished and lets blocked writers retry (EAGAIN).
  void finish();
  void unblock_writes();  // without finishing (the switch commit failed)
  bool finished() const { return finished_.load(); }

 private:
  static constexpr uint64_t kNone = UINT64_MAX;
  bool below_pointer(uint64_t r) const;
  bool persisted(uint64_t r) const;
  // The write rules for one change of the range: `buf` is written, or with
  // a null `buf` the bytes are zeroed (keep_allocated = `zero_keep`).
  Status change(uint64_t offset, const void* buf, uint64_t length, bool zero_keep);
  Status copy_region(uint64_t r);
  Status flush(bool advance);
  Status write_record(bool advance);
  // The destination's flush, with write losses turned into recopies.
  Status sync_destination();
  // Marks dirty what a destination that lost writes may lack: every region
  // persisted dirty, and those between the persisted pointer and P.
  void mark_unsure();
  std::mutex& lock_of(uint64_t r) { return locks_[r % lock_count_]; }

  Geometry g_;
  uint64_t regions_;
  size_t words_;
  size_t lock_count_;
  std::unique_ptr<std::mutex[]> locks_;              // region r uses locks_[r % lock_count_]
  std::unique_ptr<std::atomic<uint64_t>[]> dirty_;   // to recopy
  std::unique_ptr<std::atomic<uint64_t>[]> dual_;    // written to both sides while synchronized
  std::unique_ptr<std::atomic<uint64_t>[]> persisted_view_;  // bits the durable record has
  std::atomic<uint64_t> copying_{kNone};             // region being copied, counted dirty
  std::atomic<uint64_t> progress_{0};
  std::atomic<SyncStatus> status_{SyncStatus::kCopying};
  std::atomic<bool> paused_{false};
  std::atomic<uint64_t> rate_limit_{0};
  std::atomic<uint64_t> copied_{0};
  std::atomic<uint64_t> loss_recoveries_{0};
  uint64_t dest_losses_ = 0;  // the destination's write_losses() when last found durable (flush leader only)
  std::shared_mutex barrier_;  // writers shared; switch and abort exclusive
  std::atomic<bool> finished_{false};

  // Record flushes: one leader writes, the others wait for its generation.
  mutable std::mutex flush_mutex_;
  std::condition_variable flush_cv_;
  bool flushing_ = false;
  uint64_t requested_ = 0, completed_ = 0, advance_wanted_ = 0;
  Status flush_status_;  // result of the newest finished flush
  uint64_t generation_ = 0;
  uint64_t persisted_pointer_ = 0;
  std::vector<uint64_t> persisted_bits_;
  std::string write_failure_;
};

}  // namespace vgfs
