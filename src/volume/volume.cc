// The LV data path (include/vgfs/volume.h).
#include "vgfs/volume.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <thread>

namespace vgfs {

namespace {
// Spreads threads over the in-flight counter shards.
size_t shard_of_this_thread() {
  static std::atomic<size_t> next{0};
  thread_local size_t shard = next.fetch_add(1);
  return shard;
}
}  // namespace

VolumeSet::IoGuard::IoGuard(VolumeSet& v) : v_(v) {
  Shard& shard = v.shards_[shard_of_this_thread() % kShards];
  for (;;) {
    uint64_t e = v.epoch_.load();
    counter_ = &shard.count[e & 1];
    counter_->fetch_add(1);
    if (v.epoch_.load() == e) return;  // quiesce() has not flipped past us
    counter_->fetch_sub(1);
  }
}

VolumeSet::IoGuard::~IoGuard() { counter_->fetch_sub(1); }

VolumeSet::VolumeSet(VgStore& store)
    : store_(store),
      extent_size_(store.metadata().extent_size),
      extent_shift_(static_cast<uint32_t>(std::countr_zero(store.metadata().extent_size))),
      sync_state_(new PvSyncState[store.pv_count()]) {
  const VgMetadata& md = store.metadata();
  for (const PvInfo& pv : md.pvs) pe_start_.push_back(pv.pe_start);
  for (const LvInfo& lv : md.lvs) {
    auto layout = std::make_unique<LvLayout>();
    layout->size = lv.map.extent_count() * extent_size_;
    layout->runs = lv.map.runs();
    lvs_.push_back(std::make_unique<std::atomic<const LvLayout*>>(layout.get()));
    transfers_.push_back(std::make_unique<std::atomic<const TransferList*>>(nullptr));
    live_layouts_.push_back(std::move(layout));
  }
}

VolumeSet::~VolumeSet() {
  for (auto& t : transfers_) delete t->load();
}

uint64_t VolumeSet::lv_size(uint32_t lv) const { return layout(lv)->size; }

size_t VolumeSet::map(uint32_t lv, uint64_t offset, uint64_t length, PvPiece* out) const {
  const LvLayout* l = layout(lv);
  if (offset >= l->size) return 0;
  length = std::min({length, l->size - offset, kMaxIoSize});
  uint64_t le = offset >> extent_shift_;
  auto run = std::upper_bound(l->runs.begin(), l->runs.end(), le,
                              [](uint64_t v, const MapRun& r) { return v < r.le; }) - 1;
  size_t n = 0;
  while (length > 0) {
    uint64_t run_end = run->le_end() << extent_shift_;  // byte end of this run in the LV
    uint64_t take = std::min(length, run_end - offset);
    uint64_t within = offset - (run->le << extent_shift_);
    out[n].pv = run->pv;
    out[n].fd = store_.pv(run->pv).fd();
    out[n].offset = pe_start_[run->pv] + (run->pe << extent_shift_) + within;
    out[n].length = take;
    ++n;
    offset += take;
    length -= take;
    ++run;
  }
  return n;
}

Result<size_t> VolumeSet::read(uint32_t lv, uint64_t offset, void* buf, size_t length) {
  IoGuard guard(*this);
  size_t done = 0;
  auto* p = static_cast<char*>(buf);
  while (done < length) {
    PvPiece pieces[kMaxPieces];
    size_t n = map(lv, offset + done, std::min<uint64_t>(length - done, kMaxIoSize), pieces);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      VGFS_RETURN_IF_ERROR(store_.pv(pieces[i].pv).read_at(p + done, pieces[i].length, pieces[i].offset));
      done += pieces[i].length;
    }
  }
  return done;
}

// Plain writes through the map, for ranges no transfer covers.
Result<size_t> VolumeSet::write_pieces(uint32_t lv, uint64_t offset, const char* p, size_t length) {
  size_t done = 0;
  while (done < length) {
    PvPiece pieces[kMaxPieces];
    size_t n = map(lv, offset + done, std::min<uint64_t>(length - done, kMaxIoSize), pieces);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      VGFS_RETURN_IF_ERROR(store_.pv(pieces[i].pv).write_at(p + done, pieces[i].length, pieces[i].offset));
      note_written(pieces[i].pv);
      done += pieces[i].length;
    }
  }
  return done;
}

Result<size_t> VolumeSet::write(uint32_t lv, uint64_t offset, const void* buf, size_t length) {
  const char* p = static_cast<const char*>(buf);
  for (;;) {
    IoGuard guard(*this);
    const uint64_t size = lv_size(lv);
    if (offset >= size) return size_t{0};
    length = std::min<uint64_t>(length, size - offset);
    const TransferList* list = transfers_[lv]->load(std::memory_order_acquire);
    if (!list) return write_pieces(lv, offset, p, length);

    // Each part inside a running transfer goes through its write rules.
    bool retry = false;
    for (uint64_t at = offset, end = offset + length; at < end && !retry;) {
      const Transfer* inside = nullptr;
      uint64_t next = end;
      for (const Transfer* t : *list) {
        if (t->lv_begin() <= at && at < t->lv_end()) inside = t;
        else if (t->lv_begin() > at) next = std::min(next, t->lv_begin());
      }
      if (inside) {
        uint64_t part = std::min(end, inside->lv_end()) - at;
        Status st = const_cast<Transfer*>(inside)->write(at - inside->lv_begin(), p + (at - offset), part);
        if (st.code() == EAGAIN) {  // it switched or stopped: look up the new map
          retry = true;
          break;
        }
        if (!st.ok()) return st;
        note_written(inside->geometry().source.pv);
        note_written(inside->geometry().destination.pv);
        at += part;
      } else {
        Result<size_t> done = write_pieces(lv, at, p + (at - offset), next - at);
        if (!done.ok()) return done.status();
        at = next;
      }
    }
    if (!retry) return length;
  }
}

Status VolumeSet::discard(uint32_t lv, uint64_t offset, uint64_t length, bool zero) {
  IoGuard guard(*this);
  const int mode = zero ? (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE) : (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  uint64_t end = std::min(offset + length, lv_size(lv));
  while (offset < end) {
    PvPiece pieces[kMaxPieces];
    size_t n = map(lv, offset, std::min<uint64_t>(end - offset, kMaxIoSize), pieces);
    for (size_t i = 0; i < n; ++i) {
      if (fallocate(pieces[i].fd, mode, static_cast<off_t>(pieces[i].offset), static_cast<off_t>(pieces[i].length)) != 0) {
        int err = errno;
        return Status::Error(err == EOPNOTSUPP ? EOPNOTSUPP : EIO,
                             fmt::format("{}: {} at byte {} failed: {}", store_.pv(pieces[i].pv).label(),
                                         zero ? "zeroing" : "discard", pieces[i].offset, std::strerror(err)));
      }
      note_written(pieces[i].pv);
      offset += pieces[i].length;
    }
  }
  return Status::Ok();
}

// A flush must cover every write completed before it began, including one
// whose fdatasync another thread has started but not finished: so each PV
// counts completed writes, and a flush skips the sync only when a finished
// sync already covered the count it saw at its start.
Status VolumeSet::flush() {
  for (size_t i = 0; i < store_.pv_count(); ++i) {
    PvSyncState& s = sync_state_[i];
    uint64_t seen = s.written.load(std::memory_order_acquire);
    if (s.synced.load(std::memory_order_acquire) >= seen) continue;
    VGFS_RETURN_IF_ERROR(store_.pv(static_cast<uint32_t>(i)).sync());
    uint64_t prev = s.synced.load(std::memory_order_relaxed);
    while (prev < seen && !s.synced.compare_exchange_weak(prev, seen, std::memory_order_acq_rel)) {
    }
  }
  return Status::Ok();
}

void VolumeSet::publish_map(uint32_t lv, const ExtentMap& map) {
  auto layout = std::make_unique<LvLayout>();
  layout->size = map.extent_count() * extent_size_;
  layout->runs = map.runs();
  std::lock_guard lock(change_mutex_);
  lvs_[lv]->store(layout.get(), std::memory_order_release);
  retired_layouts_.push_back(std::move(live_layouts_[lv]));
  live_layouts_[lv] = std::move(layout);
}

void VolumeSet::publish_transfers(uint32_t lv, std::vector<Transfer*> transfers) {
  const TransferList* next = transfers.empty() ? nullptr : new TransferList(std::move(transfers));
  std::lock_guard lock(change_mutex_);
  const TransferList* old = transfers_[lv]->exchange(next, std::memory_order_acq_rel);
  if (old) retired_lists_.emplace_back(old);
}

void VolumeSet::quiesce() {
  std::lock_guard serial(quiesce_mutex_);
  std::vector<std::unique_ptr<const LvLayout>> layouts;
  std::vector<std::unique_ptr<const TransferList>> lists;
  {
    std::lock_guard lock(change_mutex_);
    layouts.swap(retired_layouts_);
    lists.swap(retired_lists_);
  }
  // After the flip, new requests count in the other parity and load the new
  // snapshots; the ones counted in the old parity are waited out. (The
  // previous quiesce() drained the parity before that.)
  const uint64_t old = epoch_.fetch_add(1);
  for (;;) {
    int64_t in_flight = 0;
    for (const Shard& s : shards_) in_flight += s.count[old & 1].load();
    if (in_flight == 0) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace vgfs
