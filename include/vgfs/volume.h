// VolumeSet: the data path of every LV of a mounted VG.
//
// Invariant: map() turns an LV byte range into byte ranges on PV file
// descriptors exactly as the LV's current LE→PE map says, every range lies
// inside the PE area of its PV, and nothing past the LV's end is returned.
// The per-request path allocates nothing and takes no lock: each LV's map
// and its list of running transfers are immutable snapshots read through
// atomic pointers, and every request runs inside an IoGuard so that a
// replaced snapshot (and the PEs it pointed to) is released only after every
// request that could have seen it has ended (quiesce()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "vgfs/metadata.h"
#include "vgfs/status.h"
#include "vgfs/transfer.h"
#include "vgfs/vg_store.h"

namespace vgfs {

constexpr uint64_t kMaxIoSize = 1 * MiB;
// A kMaxIoSize request over the smallest extents touches at most this many.
constexpr size_t kMaxPieces = kMaxIoSize / kMinExtentSize + 1;

struct PvPiece {
  int fd = -1;
  uint32_t pv = 0;
  uint64_t offset = 0;  // byte offset in the PV
  uint64_t length = 0;
};

class VolumeSet {
 public:
  explicit VolumeSet(VgStore& store);
  ~VolumeSet();

  // Marks a request in flight for quiesce(); hold one around map() and the
  // I/O that uses its result.
  class IoGuard {
   public:
    explicit IoGuard(VolumeSet& v);
    ~IoGuard();
    IoGuard(const IoGuard&) = delete;
    IoGuard& operator=(const IoGuard&) = delete;

   private:
    VolumeSet& v_;
    std::atomic<int64_t>* counter_;
  };

  size_t lv_count() const { return lvs_.size(); }
  uint64_t lv_size(uint32_t lv) const;

  // Splits [offset, offset+length) of LV `lv` into at most kMaxPieces PV
  // pieces, clipped at the LV's end (length <= kMaxIoSize). Returns the count.
  size_t map(uint32_t lv, uint64_t offset, uint64_t length, PvPiece* out) const;
  // True when a write to this LV must go through write() because a
  // migration job runs on part of it.
  bool has_transfers(uint32_t lv) const { return transfers_[lv]->load(std::memory_order_acquire) != nullptr; }

  // Whole transfers through map() and the running transfers; they return
  // the bytes done (short only at the LV's end) or EIO naming the PV.
  Result<size_t> read(uint32_t lv, uint64_t offset, void* buf, size_t length);
  Result<size_t> write(uint32_t lv, uint64_t offset, const void* buf, size_t length);
  // Punches (zero == false) or zeroes the PV ranges behind an LV range.
  Status discard(uint32_t lv, uint64_t offset, uint64_t length, bool zero);
  // Makes every acknowledged write durable: fdatasync of each PV written
  // since its last flush.
  Status flush();
  // Records a completed write to PV `pv` (call after the write, before
  // acknowledging it; write() and discard() do this themselves).
  void note_written(uint32_t pv) { sync_state_[pv].written.fetch_add(1, std::memory_order_acq_rel); }

  // ---- changes, made by one thread at a time (the volume manager) ----
  // Publishes a new map for LV `lv`; the old one is freed by quiesce().
  void publish_map(uint32_t lv, const ExtentMap& map);
  // Publishes the running transfers of LV `lv` (empty = none).
  void publish_transfers(uint32_t lv, std::vector<Transfer*> transfers);
  // Waits until every request that began before the call has ended, then
  // frees the snapshots replaced before it.
  void quiesce();

 private:
  struct LvLayout {
    uint64_t size = 0;
    std::vector<MapRun> runs;
  };
  using TransferList = std::vector<Transfer*>;
  const LvLayout* layout(uint32_t lv) const { return lvs_[lv]->load(std::memory_order_acquire); }
  Result<size_t> write_pieces(uint32_t lv, uint64_t offset, const char* buf, size_t length);

  VgStore& store_;
  uint64_t extent_size_;
  uint32_t extent_shift_;
  std::vector<uint64_t> pe_start_;
  std::vector<std::unique_ptr<std::atomic<const LvLayout*>>> lvs_;
  std::vector<std::unique_ptr<std::atomic<const TransferList*>>> transfers_;
  struct PvSyncState {
    std::atomic<uint64_t> written{0};  // writes completed
    std::atomic<uint64_t> synced{0};   // `written` as of the start of the last finished fdatasync
  };
  std::unique_ptr<PvSyncState[]> sync_state_;

  // In-flight requests, counted per epoch parity in cache-line shards.
  static constexpr size_t kShards = 32;
  struct alignas(64) Shard {
    std::atomic<int64_t> count[2] = {0, 0};
  };
  Shard shards_[kShards];
  std::atomic<uint64_t> epoch_{0};
  std::mutex change_mutex_;   // guards the snapshot lists below
  std::mutex quiesce_mutex_;  // one quiesce() at a time
  std::vector<std::unique_ptr<const LvLayout>> live_layouts_;
  std::vector<std::unique_ptr<const LvLayout>> retired_layouts_;
  std::vector<std::unique_ptr<const TransferList>> retired_lists_;
};

}  // namespace vgfs
