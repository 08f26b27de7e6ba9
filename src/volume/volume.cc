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

VolumeSet::IoGuard::IoGuard(const VolumeSet& v) {
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
      lvs_(new std::atomic<const LvLayout*>[kMaxLvSlots]),
      transfers_(new std::atomic<const TransferList*>[kMaxLvSlots]),
      open_count_(new std::atomic<int>[kMaxLvSlots]),
      slot_losses_(new SlotLosses[kMaxLvSlots]) {
  for (uint32_t i = 0; i < kMaxLvSlots; ++i) {
    lvs_[i].store(nullptr);
    transfers_[i].store(nullptr);
    open_count_[i].store(0);
  }
  const VgMetadata& md = store.metadata();
  for (uint32_t i = 0; i < md.lvs.size(); ++i) (void)publish_lv(md, i);
  std::lock_guard lock(change_mutex_);
  publish_devices();
  const uint64_t losses = total_write_losses();  // before the mount served anything
  for (uint32_t i = 0; i < next_slot_; ++i) slot_losses_[i].seen.store(losses);
}

VolumeSet::~VolumeSet() {
  for (uint32_t i = 0; i < kMaxLvSlots; ++i) delete transfers_[i].load();
}

std::unique_ptr<VolumeSet::LvLayout> VolumeSet::make_layout(const VgMetadata& md, uint32_t lv) const {
  auto layout = std::make_unique<LvLayout>();
  const LvInfo& info = md.lvs[lv];
  layout->name = info.name;
  layout->mode = info.mode;
  layout->uid = info.uid;
  layout->gid = info.gid;
  layout->hidden = info.hidden || !info.unsupported.empty();  // no file for an LV vgfs does not serve
  layout->size = info.map.extent_count() * extent_size_;
  for (const MapRun& r : info.map.runs()) {
    Run run{r.le, r.count, &store_.pv(r.pv), md.pvs[r.pv].pe_start + (r.pe << extent_shift_)};
    if (r.striped()) {
      run.stripes = r.stripe_count();
      run.stripe_shift = static_cast<uint32_t>(std::countr_zero(r.stripe_size));
      run.first_leg = static_cast<uint32_t>(layout->legs.size());
      for (uint32_t s = 0; s < r.stripe_count(); ++s) {
        const StripeLeg leg = r.leg(s);
        layout->legs.push_back(Leg{&store_.pv(leg.pv), md.pvs[leg.pv].pe_start + (leg.pe << extent_shift_)});
      }
    }
    layout->runs.push_back(run);
  }
  return layout;
}

void VolumeSet::replace(uint32_t slot, std::unique_ptr<LvLayout> layout) {
  lvs_[slot].store(layout.get(), std::memory_order_release);
  if (live_layouts_.size() <= slot) live_layouts_.resize(slot + 1);
  if (live_layouts_[slot]) retired_layouts_.push_back(std::move(live_layouts_[slot]));
  live_layouts_[slot] = std::move(layout);
}

void VolumeSet::publish_devices() {
  auto list = std::make_unique<DeviceList>();
  bool async = false;
  for (uint32_t i = 0; i < store_.pv_count(); ++i) {
    const PvDevice* dev = &store_.pv(i);
    FlushedDevice entry{dev, nullptr};
    // The same backend keeps its count of reported losses; a new one starts
    // from what it has lost so far (before the mount served anything).
    if (live_devices_)
      for (const FlushedDevice& old : *live_devices_)
        if (&old.dev->backend() == &dev->backend()) entry.losses = old.losses;
    if (!entry.losses) entry.losses = std::make_shared<LossCounts>(dev->backend().write_losses());
    async = async || dev->capabilities().async_submit;
    list->push_back(std::move(entry));
  }
  async_pvs_.store(async, std::memory_order_relaxed);
  devices_.store(list.get(), std::memory_order_release);
  if (live_devices_) retired_devices_.push_back(std::move(live_devices_));
  live_devices_ = std::move(list);
}

Result<uint32_t> VolumeSet::publish_lv(const VgMetadata& md, uint32_t lv) {
  auto layout = make_layout(md, lv);
  std::lock_guard lock(change_mutex_);
  auto it = slot_of_.find(layout->name);
  uint32_t slot;
  if (it != slot_of_.end()) {
    slot = it->second;
  } else {
    if (next_slot_ < kMaxLvSlots) {
      slot = next_slot_++;
    } else if (!free_slots_.empty()) {
      slot = free_slots_.front();
      free_slots_.pop_front();
    } else {
      return Status::Error(ENOSPC, fmt::format("this mount serves {} LVs, its most", kMaxLvSlots));
    }
    slot_of_.emplace(layout->name, slot);
    // A new LV (or a reused slot) has lost nothing yet.
    slot_losses_[slot].written.store(false);
    slot_losses_[slot].seen.store(devices_.load() ? total_write_losses() : 0);
  }
  replace(slot, std::move(layout));
  return slot;
}

bool VolumeSet::slot_available() const {
  std::lock_guard lock(change_mutex_);
  return next_slot_ < kMaxLvSlots || !free_slots_.empty();
}

void VolumeSet::republish_all(const VgMetadata& md) {
  for (uint32_t i = 0; i < md.lvs.size(); ++i) (void)publish_lv(md, i);
  std::lock_guard lock(change_mutex_);
  publish_devices();
  const uint64_t losses = total_write_losses();  // before the mount served anything
  for (uint32_t i = 0; i < next_slot_; ++i) slot_losses_[i].seen.store(losses);
}

void VolumeSet::rename_lv(uint32_t slot, const std::string& name) {
  std::lock_guard lock(change_mutex_);
  auto renamed = std::make_unique<LvLayout>(*layout(slot));
  slot_of_.erase(renamed->name);
  renamed->name = name;
  slot_of_[name] = slot;
  replace(slot, std::move(renamed));
}

void VolumeSet::remove_lv(uint32_t slot) {
  std::lock_guard lock(change_mutex_);
  slot_of_.erase(layout(slot)->name);
  lvs_[slot].store(nullptr, std::memory_order_release);
  retired_layouts_.push_back(std::move(live_layouts_[slot]));
  free_slots_.push_back(slot);
}

std::optional<uint32_t> VolumeSet::slot(std::string_view name) const {
  std::lock_guard lock(change_mutex_);
  auto it = slot_of_.find(name);
  if (it == slot_of_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, uint32_t>> VolumeSet::slots() const {
  std::lock_guard lock(change_mutex_);
  std::vector<std::pair<std::string, uint32_t>> out;
  for (const auto& [name, slot] : slot_of_)
    if (!live_layouts_[slot]->hidden) out.emplace_back(name, slot);
  return out;
}

// These may run outside any request: the guard keeps the layout alive.
bool VolumeSet::exists(uint32_t slot) const {
  return slot < kMaxLvSlots && layout(slot) != nullptr;
}

std::string VolumeSet::lv_name(uint32_t slot) const {
  IoGuard guard(*this);
  const LvLayout* l = slot < kMaxLvSlots ? layout(slot) : nullptr;
  return l ? l->name : std::string();
}

uint64_t VolumeSet::lv_size(uint32_t slot) const {
  IoGuard guard(*this);
  const LvLayout* l = layout(slot);
  return l ? l->size : 0;
}

uint32_t VolumeSet::lv_mode(uint32_t slot) const {
  IoGuard guard(*this);
  const LvLayout* l = layout(slot);
  return l ? l->mode : 0;
}

bool VolumeSet::lv_hidden(uint32_t slot) const {
  IoGuard guard(*this);
  const LvLayout* l = layout(slot);
  return l && l->hidden;
}

std::optional<uint32_t> VolumeSet::lv_uid(uint32_t slot) const {
  IoGuard guard(*this);
  const LvLayout* l = layout(slot);
  return l ? l->uid : std::nullopt;
}

std::optional<uint32_t> VolumeSet::lv_gid(uint32_t slot) const {
  IoGuard guard(*this);
  const LvLayout* l = layout(slot);
  return l ? l->gid : std::nullopt;
}

// LVM2's striping (docs/format.md, "Striped segments"): byte x of a striped
// run is in chunk c = x / stripe_size, on leg c % stripes, at byte
// (c / stripes) * stripe_size + x % stripe_size of that leg. A piece ends at
// its chunk's end, so each piece lies in one leg; see kMaxPieces for why
// they fit `out`.
size_t VolumeSet::map(uint32_t slot, uint64_t offset, uint64_t length, PvPiece* out) const {
  const LvLayout* l = layout(slot);
  if (!l || offset >= l->size) return 0;
  length = std::min({length, l->size - offset, kMaxIoSize});
  uint64_t le = offset >> extent_shift_;
  auto run = std::upper_bound(l->runs.begin(), l->runs.end(), le,
                              [](uint64_t v, const Run& r) { return v < r.le; }) - 1;
  size_t n = 0;
  while (length > 0) {
    const uint64_t run_end = run->le_end() << extent_shift_;  // byte end of this run in the LV
    const uint64_t x = offset - (run->le << extent_shift_);   // byte of the run
    uint64_t take;
    if (run->stripes == 1) {
      take = std::min(length, run_end - offset);
      out[n].dev = run->dev;
      out[n].offset = run->offset + x;
    } else {
      const uint64_t chunk = x >> run->stripe_shift;
      const uint64_t within = x & ((uint64_t{1} << run->stripe_shift) - 1);
      const Leg& leg = l->legs[run->first_leg + chunk % run->stripes];
      take = std::min(length, (uint64_t{1} << run->stripe_shift) - within);
      out[n].dev = leg.dev;
      out[n].offset = leg.offset + ((chunk / run->stripes) << run->stripe_shift) + within;
    }
    out[n].length = take;
    ++n;
    offset += take;
    length -= take;
    if (offset == run_end) ++run;
  }
  return n;
}

Result<size_t> VolumeSet::read(uint32_t slot, uint64_t offset, void* buf, size_t length) {
  IoGuard guard(*this);
  size_t done = 0;
  auto* p = static_cast<char*>(buf);
  while (done < length) {
    PvPiece pieces[kMaxPieces];
    size_t n = map(slot, offset + done, std::min<uint64_t>(length - done, kMaxIoSize), pieces);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      VGFS_RETURN_IF_ERROR(pieces[i].dev->read_at(p + done, pieces[i].length, pieces[i].offset));
      done += pieces[i].length;
    }
  }
  return done;
}

// Plain writes (or zeroing, with a null `p`) through the map, for ranges no
// transfer covers.
Result<size_t> VolumeSet::write_pieces(uint32_t slot, uint64_t offset, const char* p, size_t length, bool zero_keep) {
  size_t done = 0;
  while (done < length) {
    PvPiece pieces[kMaxPieces];
    size_t n = map(slot, offset + done, std::min<uint64_t>(length - done, kMaxIoSize), pieces);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      const PvPiece& piece = pieces[i];
      // A PV that shrank under the mount fails the write instead of growing.
      VGFS_RETURN_IF_ERROR(piece.dev->check_range(piece.offset, piece.length));
      VGFS_RETURN_IF_ERROR(p ? piece.dev->write_at(p + done, piece.length, piece.offset)
                             : piece.dev->zero(piece.offset, piece.length, zero_keep));
      done += piece.length;
    }
  }
  return done;
}

Result<size_t> VolumeSet::write(uint32_t slot, uint64_t offset, const void* buf, size_t length) {
  return change(slot, offset, static_cast<const char*>(buf), length, false);
}

// Writes and discards follow the same path: outside any transfer straight
// through the map, inside one through its write rules (docs/migration.md rules 2-5),
// looking the map up again when the transfer switched under the request.
Result<size_t> VolumeSet::change(uint32_t slot, uint64_t offset, const char* p, size_t length, bool zero_keep) {
  mark_written(slot);  // before any PV sees it: flush(slot)
  for (;;) {
    IoGuard guard(*this);
    const uint64_t size = lv_size(slot);
    if (offset >= size) return size_t{0};
    length = std::min<uint64_t>(length, size - offset);
    const TransferList* list = transfers_[slot].load(std::memory_order_acquire);
    if (!list) return write_pieces(slot, offset, p, length, zero_keep);
    // (The layout map() reads is loaded after the list: a list without a
    // switched transfer comes with the layout that switch published.)
    if (std::any_of(list->begin(), list->end(), [](const Transfer* t) { return t->geometry().leg; })) {
      Status st = change_by_place(slot, offset, p, length, zero_keep, *list);
      if (st.code() == EAGAIN) continue;  // it switched or stopped: look up the new map
      if (!st.ok()) return st;
      return length;
    }

    // Each part inside a running transfer goes through its write rules.
    bool retry = false;
    for (uint64_t at = offset, end = offset + length; at < end && !retry;) {
      Transfer* inside = nullptr;
      uint64_t next = end;
      for (Transfer* t : *list) {
        if (t->lv_begin() <= at && at < t->lv_end()) inside = t;
        else if (t->lv_begin() > at) next = std::min(next, t->lv_begin());
      }
      if (inside) {
        uint64_t part = std::min(end, inside->lv_end()) - at;
        Status st = p ? inside->write(at - inside->lv_begin(), p + (at - offset), part)
                      : inside->discard(at - inside->lv_begin(), part, zero_keep);
        if (st.code() == EAGAIN) {  // it switched or stopped: look up the new map
          retry = true;
          break;
        }
        if (!st.ok()) return st;  // the PVs written counted themselves for flush()
        at += part;
      } else {
        Result<size_t> done = write_pieces(slot, at, p ? p + (at - offset) : nullptr, next - at, zero_keep);
        if (!done.ok()) return done.status();
        at = next;
      }
    }
    if (!retry) return length;
  }
}

// The path of an LV with a leg of a striped run moving: that leg's bytes
// are every stripes-th chunk of the run, not one stretch of the LV, so each
// PV piece of the request is matched against the transfers' source places
// (linear transfers of the LV too: their source place is their LV range).
// A part inside a transfer goes through its write rules, the rest straight
// to the PV. EAGAIN when a transfer ended under the request.
Status VolumeSet::change_by_place(uint32_t slot, uint64_t offset, const char* p, size_t length, bool zero_keep,
                                  const TransferList& list) {
  size_t done = 0;
  while (done < length) {
    PvPiece pieces[kMaxPieces];
    const size_t n = map(slot, offset + done, std::min<uint64_t>(length - done, kMaxIoSize), pieces);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      PvPiece piece = pieces[i];
      while (piece.length > 0) {
        Transfer* inside = nullptr;
        uint64_t next = piece.offset + piece.length;
        for (Transfer* t : list) {
          const Transfer::Place& src = t->geometry().source;
          if (src.dev != piece.dev) continue;
          if (src.offset <= piece.offset && piece.offset - src.offset < t->geometry().size) inside = t;
          else if (src.offset > piece.offset) next = std::min(next, src.offset);
        }
        const char* bytes = p ? p + done : nullptr;
        uint64_t part;
        if (inside) {
          const Transfer::Geometry& g = inside->geometry();
          const uint64_t at = piece.offset - g.source.offset;
          part = std::min(piece.length, g.size - at);
          VGFS_RETURN_IF_ERROR(bytes ? inside->write(at, bytes, part) : inside->discard(at, part, zero_keep));
        } else {
          part = next - piece.offset;
          VGFS_RETURN_IF_ERROR(piece.dev->check_range(piece.offset, part));
          VGFS_RETURN_IF_ERROR(bytes ? piece.dev->write_at(bytes, part, piece.offset)
                                     : piece.dev->zero(piece.offset, part, zero_keep));
        }
        piece.offset += part;
        piece.length -= part;
        done += part;
      }
    }
  }
  return Status::Ok();
}

Status VolumeSet::discard(uint32_t slot, uint64_t offset, uint64_t length, bool zero) {
  // In pieces of at most kMaxIoSize: no request holds more region locks, or
  // an IoGuard for longer, than one large write would.
  while (length > 0) {
    const uint64_t piece = std::min(length, kMaxIoSize);
    Result<size_t> done = change(slot, offset, nullptr, piece, zero);
    if (!done.ok()) return done.status();
    if (*done < piece) break;  // the LV's end
    offset += piece;
    length -= piece;
  }
  return Status::Ok();
}

// The backend's own "EIO once" after lost writes goes to whichever flush of
// the PV comes first, and a job's checkpoint flushes its PVs too: so an
// fsync compares write_losses() with what the last fsync saw (the mount's,
// for flush(); the LV's, for flush(slot)).
Status VolumeSet::sync_devices(bool report_losses) {
  Status first;
  for (const FlushedDevice& d : *devices_.load(std::memory_order_acquire)) {
    Status st = d.dev->sync_if_written();
    const uint64_t losses = d.dev->backend().write_losses();
    const uint64_t synced = d.losses->synced.exchange(losses, std::memory_order_acq_rel);
    if (report_losses) {
      const uint64_t reported = d.losses->reported.exchange(losses, std::memory_order_acq_rel);
      if (st.ok() && losses != reported)
        st = Status::Error(EIO, fmt::format("{}: writes it had acknowledged may be lost (its connection died before "
                                            "they were flushed)", d.dev->label()));
    } else if (st.code() == EIO && losses != synced) {
      // The backend's own report of the loss, after its flush went
      // through (NbdBackend::flush): flush(slot) reports it per LV.
      st = Status::Ok();
    }
    if (!st.ok() && first.ok()) first = std::move(st);
  }
  return first;
}

uint64_t VolumeSet::total_write_losses() const {
  uint64_t sum = 0;
  for (const FlushedDevice& d : *devices_.load(std::memory_order_acquire)) sum += d.dev->backend().write_losses();
  return sum;
}

Status VolumeSet::flush() {
  IoGuard guard(*this);
  return sync_devices(true);
}

Status VolumeSet::flush(uint32_t slot) {
  IoGuard guard(*this);
  // A write acknowledged before this fsync set `written` before its reply;
  // the losses are read after the sync, so a loss of such a write (its
  // connection died before the sync made it durable) has moved them.
  const bool written = slot_losses_[slot].written.exchange(false, std::memory_order_acq_rel);
  Status st = sync_devices(false);
  const uint64_t losses = total_write_losses();
  const uint64_t seen = slot_losses_[slot].seen.exchange(losses, std::memory_order_acq_rel);
  if (st.ok() && written && losses != seen)
    st = Status::Error(EIO, fmt::format("LV {}: writes acknowledged since its last fsync may be lost (a PV's "
                                        "connection died before they were flushed)", lv_name(slot)));
  return st;
}

void VolumeSet::publish_transfers(uint32_t slot, std::vector<Transfer*> transfers) {
  const TransferList* next = transfers.empty() ? nullptr : new TransferList(std::move(transfers));
  std::lock_guard lock(change_mutex_);
  const TransferList* old = transfers_[slot].exchange(next, std::memory_order_acq_rel);
  if (old) retired_lists_.emplace_back(old);
}

void VolumeSet::quiesce() {
  std::lock_guard serial(quiesce_mutex_);
  std::vector<std::unique_ptr<const LvLayout>> layouts;
  std::vector<std::unique_ptr<const TransferList>> lists;
  std::vector<std::unique_ptr<const DeviceList>> devices;
  {
    std::lock_guard lock(change_mutex_);
    layouts.swap(retired_layouts_);
    lists.swap(retired_lists_);
    devices.swap(retired_devices_);
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
