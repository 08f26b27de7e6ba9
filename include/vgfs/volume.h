// VolumeSet: the data path of every LV of a mounted VG.
//
// Invariant: map() turns an LV byte range into byte ranges on PV devices
// exactly as the LV's current LE→PE map says (striped runs chunk by chunk,
// docs/format.md "Striped segments"), every range lies inside the PE area of
// its PV, and nothing past the LV's end is returned. The
// per-request path allocates nothing and takes no lock: each LV's layout
// (name, mode, size, resolved runs) and its list of running transfers are
// immutable snapshots read through atomic pointers, and every request runs
// inside an IoGuard so that a replaced snapshot, a removed LV and the PEs or
// PV devices they pointed to are released only after every request that
// could have seen them has ended (quiesce()).
//
// LVs are addressed by slot: a number that stays the LV's for the life of
// the mount whatever happens to other LVs (the FUSE inode derives from it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vgfs/metadata.h"
#include "vgfs/status.h"
#include "vgfs/transfer.h"
#include "vgfs/vg_store.h"

namespace vgfs {

constexpr uint64_t kMaxIoSize = 1 * MiB;
// Pieces of one map() call. A piece ends at a run's end or, in a striped
// run, at a chunk's end; both lie on multiples of kMinStripeSize in the LV
// (runs start and end on extents, which are multiples of every stripe
// size, and chunks are stripe_size >= kMinStripeSize apart). So a request of
// kMaxIoSize bytes at any offset crosses at most kMaxIoSize / kMinStripeSize
// such points: 257 pieces for 1 MiB over 4 KiB chunks (17 for 64 KiB ones).
constexpr size_t kMaxPieces = kMaxIoSize / kMinStripeSize + 1;
constexpr uint32_t kMaxLvSlots = 65536;

struct PvPiece {
  const PvDevice* dev = nullptr;
  uint64_t offset = 0;  // byte offset in the PV
  uint64_t length = 0;
};

class VolumeSet {
 public:
  // Gives every LV of the store a slot, in LV order.
  explicit VolumeSet(VgStore& store);
  ~VolumeSet();

  // Marks a request in flight for quiesce(); hold one around map() and the
  // I/O that uses its result.
  class IoGuard {
   public:
    explicit IoGuard(const VolumeSet& v);
    ~IoGuard();
    IoGuard(const IoGuard&) = delete;
    IoGuard& operator=(const IoGuard&) = delete;

   private:
    std::atomic<int64_t>* counter_;
  };

  // An LV read or write sent to the PVs without waiting for them: every
  // piece goes out at once through PvDevice::submit(), and `done` runs
  // once, after the last piece completed, on the thread that completed it
  // (an NBD connection's I/O thread), with the bytes done (clipped at the
  // LV's end) or the first error. The op holds an IoGuard from its start
  // until just before `done`, so the PEs stay the LV's while any piece is
  // on the wire. The caller sets `done` and `context`, keeps the object
  // alive and untouched until `done` runs, and may reuse it from there.
  static constexpr size_t kMaxAsyncPieces = 8;
  class AsyncIo {
   public:
    AsyncIo() = default;
    AsyncIo(const AsyncIo&) = delete;
    AsyncIo& operator=(const AsyncIo&) = delete;
    void (*done)(AsyncIo& io, Result<size_t> result) = nullptr;
    void* context = nullptr;  // the caller's

   private:
    friend class VolumeSet;
    static void piece_done(PvRequest& request, Status status);
    void finish_one();
    std::optional<IoGuard> guard_;
    std::atomic<size_t> pending_{0};   // pieces not yet completed, plus one while starting
    std::atomic<bool> failed_{false};  // error_ is set (by the first failing piece)
    Status error_;
    size_t length_ = 0;
    PvRequest requests_[kMaxAsyncPieces];
  };

  // ---- lookups ----
  // The slot of LV `name`, hidden or not.
  std::optional<uint32_t> slot(std::string_view name) const;
  // The LVs served as files, in name order: hidden LVs are left out.
  std::vector<std::pair<std::string, uint32_t>> slots() const;
  bool exists(uint32_t slot) const;
  std::string lv_name(uint32_t slot) const;
  uint64_t lv_size(uint32_t slot) const;
  uint32_t lv_mode(uint32_t slot) const;
  bool lv_hidden(uint32_t slot) const;
  // The LV file's owner as the metadata sets it; unset = the mounting user.
  std::optional<uint32_t> lv_uid(uint32_t slot) const;
  std::optional<uint32_t> lv_gid(uint32_t slot) const;

  // Splits [offset, offset+length) of LV `slot` into at most kMaxPieces PV
  // pieces, clipped at the LV's end (length <= kMaxIoSize). Returns the count.
  size_t map(uint32_t slot, uint64_t offset, uint64_t length, PvPiece* out) const;
  // True when a write to this LV must go through write() because a
  // migration job runs on part of it.
  bool has_transfers(uint32_t slot) const { return transfers_[slot].load(std::memory_order_acquire) != nullptr; }

  // Whole transfers through map() and the running transfers; they return
  // the bytes done (short only at the LV's end) or EIO naming the PV.
  Result<size_t> read(uint32_t slot, uint64_t offset, void* buf, size_t length);
  Result<size_t> write(uint32_t slot, uint64_t offset, const void* buf, size_t length);
  // Start `io` as a read of [offset, offset+length) into `buf` (length <=
  // kMaxIoSize) or a write from it, when every piece lies on a PV whose
  // backend completes asynchronously (PvCapabilities::async_submit) and
  // there are at most kMaxAsyncPieces; a write also only outside every
  // running transfer (their write rules take region locks and wait for
  // the dirty bits, docs/migration.md: those go through write()). Else they
  // return false having done nothing, and the caller uses read()/write().
  bool start_read(AsyncIo& io, uint32_t slot, uint64_t offset, char* buf, size_t length);
  bool start_write(AsyncIo& io, uint32_t slot, uint64_t offset, const char* buf, size_t length);
  // Whether any PV completes asynchronously (start_read can apply at all).
  bool has_async_pvs() const { return async_pvs_.load(std::memory_order_relaxed); }

  // Makes an LV range read as zeros (fallocate PUNCH_HOLE, or with `zero`
  // ZERO_RANGE, which keeps the PV ranges allocated), through the running
  // transfers' write rules like write() (docs/migration.md, "Discard and zero-range are writes"): a discard during a
  // migration reaches both sides or leaves the region dirty. Zeros are
  // guaranteed even where the PV's own discard is advisory (PvDevice::zero).
  Status discard(uint32_t slot, uint64_t offset, uint64_t length, bool zero);
  // Makes every acknowledged write durable: fdatasync of each PV written
  // since its last sync. EIO also, once, when a PV lost acknowledged writes
  // (PvBackend::write_losses()) since the last fsync that reported it, even
  // if another flush of that PV (a job's checkpoint) saw the loss first.
  Status flush();
  // fsync of LV `slot`: flush() of every PV written since its last sync,
  // and EIO once when the LV was written since its last fsync and a PV lost
  // acknowledged writes meanwhile (any PV: conservative, a loss is never
  // missed, but an LV written only on other PVs may see it too). Another
  // LV's fsync does not take this LV's report.
  Status flush(uint32_t slot);

  // Open files per LV (lvreduce and lvremove refuse open LVs).
  void opened(uint32_t slot) { open_count_[slot].fetch_add(1); }
  void closed(uint32_t slot) { open_count_[slot].fetch_sub(1); }
  int open_count(uint32_t slot) const { return open_count_[slot].load(); }

  // ---- changes, made by one thread at a time (the volume manager) ----
  // Publishes the layout of LV `lv` of `md` (the store's PV devices resolve
  // its runs) under its slot, making a new slot for a new name.
  Result<uint32_t> publish_lv(const VgMetadata& md, uint32_t lv);
  // Whether publish_lv() can give a new name a slot (checked before the
  // commit that creates an LV). Slots of removed LVs are reused, oldest
  // first, once the never-used ones are gone.
  bool slot_available() const;
  // Publishes every LV of `md` again (after PV indices changed).
  void republish_all(const VgMetadata& md);
  void rename_lv(uint32_t slot, const std::string& name);
  void remove_lv(uint32_t slot);
  // Publishes the running transfers of LV `slot` (empty = none).
  void publish_transfers(uint32_t slot, std::vector<Transfer*> transfers);
  // Waits until every request that began before the call has ended, then
  // frees the snapshots replaced before it.
  void quiesce();

 private:
  // Where a leg of a striped run starts.
  struct Leg {
    const PvDevice* dev = nullptr;
    uint64_t offset = 0;  // PV byte offset of the leg's first PE
  };
  struct Run {
    uint64_t le = 0, count = 0;
    const PvDevice* dev = nullptr;
    uint64_t offset = 0;        // linear: PV byte offset of LE `le`
    uint32_t stripes = 1;       // 1: linear; else legs[first_leg ..] of the layout
    uint32_t stripe_shift = 0;  // log2 of the stripe size
    uint32_t first_leg = 0;
    uint64_t le_end() const { return le + count; }
  };
  struct LvLayout {
    std::string name;
    uint32_t mode = 0600;
    std::optional<uint32_t> uid, gid;
    bool hidden = false;
    uint64_t size = 0;
    std::vector<Run> runs;
    std::vector<Leg> legs;  // of the striped runs
  };
  using TransferList = std::vector<Transfer*>;
  // A PV flush() syncs, and the counts of its backend's write_losses() that
  // an fsync of the mount has already reported and that its last sync saw
  // (shared by the lists that follow, so a loss is reported once whichever
  // list an fsync read).
  struct LossCounts {
    std::atomic<uint64_t> reported;
    std::atomic<uint64_t> synced;
    explicit LossCounts(uint64_t now) : reported(now), synced(now) {}
  };
  struct FlushedDevice {
    const PvDevice* dev = nullptr;
    std::shared_ptr<LossCounts> losses;
  };
  using DeviceList = std::vector<FlushedDevice>;
  void publish_devices();  // under change_mutex_
  const LvLayout* layout(uint32_t slot) const { return lvs_[slot].load(std::memory_order_acquire); }
  std::unique_ptr<LvLayout> make_layout(const VgMetadata& md, uint32_t lv) const;
  void replace(uint32_t slot, std::unique_ptr<LvLayout> layout);  // under change_mutex_
  // `buf` null: zero the range instead of writing it.
  Result<size_t> write_pieces(uint32_t slot, uint64_t offset, const char* buf, size_t length, bool zero_keep);
  Result<size_t> change(uint32_t slot, uint64_t offset, const char* buf, size_t length, bool zero_keep);
  // change() for an LV with a leg of a striped run moving: routes each PV
  // piece by the transfers' source places.
  Status change_by_place(uint32_t slot, uint64_t offset, const char* buf, size_t length, bool zero_keep,
                         const TransferList& list);

  VgStore& store_;
  uint64_t extent_size_;
  uint32_t extent_shift_;
  std::unique_ptr<std::atomic<const LvLayout*>[]> lvs_;
  std::unique_ptr<std::atomic<const TransferList*>[]> transfers_;
  std::unique_ptr<std::atomic<int>[]> open_count_;
  // Per slot, for flush(slot): written since its last fsync, and the sum of
  // the PVs' write_losses() that fsync saw.
  struct SlotLosses {
    std::atomic<bool> written{false};
    std::atomic<uint64_t> seen{0};
  };
  std::unique_ptr<SlotLosses[]> slot_losses_;
  uint64_t total_write_losses() const;
  Status sync_devices(bool report_losses);
  void mark_written(uint32_t slot) {
    if (!slot_losses_[slot].written.load(std::memory_order_relaxed))
      slot_losses_[slot].written.store(true, std::memory_order_release);
  }
  std::atomic<const DeviceList*> devices_{nullptr};  // the PVs flush() syncs
  std::atomic<bool> async_pvs_{false};               // any of them has async_submit
  bool start(AsyncIo& io, bool write, uint32_t slot, uint64_t offset, char* buf, size_t length);

  // In-flight requests, counted per epoch parity in cache-line shards.
  static constexpr size_t kShards = 32;
  struct alignas(64) Shard {
    std::atomic<int64_t> count[2] = {0, 0};
  };
  mutable Shard shards_[kShards];
  std::atomic<uint64_t> epoch_{0};

  mutable std::mutex change_mutex_;  // guards the members below
  std::mutex quiesce_mutex_;         // one quiesce() at a time
  std::map<std::string, uint32_t, std::less<>> slot_of_;
  uint32_t next_slot_ = 0;
  std::deque<uint32_t> free_slots_;  // slots of removed LVs, oldest first
  std::vector<std::unique_ptr<const LvLayout>> live_layouts_;  // indexed by slot
  std::vector<std::unique_ptr<const LvLayout>> retired_layouts_;
  std::vector<std::unique_ptr<const TransferList>> retired_lists_;
  std::unique_ptr<const DeviceList> live_devices_;
  std::vector<std::unique_ptr<const DeviceList>> retired_devices_;
};

}  // namespace vgfs
