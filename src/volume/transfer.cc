// The live transfer-region record and its write-path rules
// (include/vgfs/transfer.h, docs/migration.md).
#include "vgfs/transfer.h"

#include "vgfs/sizes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>

namespace vgfs {

namespace {
constexpr uint64_t bit(uint64_t r) { return uint64_t{1} << (r % 64); }
}  // namespace

Transfer::Transfer(const Geometry& g, const JobRecord* resume)
    : g_(g),
      regions_(div_ceil(g.size, g.region_size)),
      words_(div_ceil(regions_, 64)),
      lock_count_(std::min<uint64_t>(regions_, 1024)),
      locks_(new std::mutex[lock_count_]),
      dirty_(new std::atomic<uint64_t>[words_]),
      dual_(new std::atomic<uint64_t>[words_]),
      persisted_view_(new std::atomic<uint64_t>[words_]),
      persisted_bits_(words_, 0) {
  dest_losses_ = g.destination.dev->backend().write_losses();
  for (size_t w = 0; w < words_; ++w) {
    dirty_[w].store(0);
    dual_[w].store(0);
    persisted_view_[w].store(0);
  }
  if (resume) {
    // Every persisted bit is recopied; the first pass continues from P.
    generation_ = resume->generation;
    persisted_pointer_ = std::min(resume->progress_pointer, g.size);
    progress_.store(persisted_pointer_);
    for (size_t w = 0; w < words_; ++w) {
      dirty_[w].store(resume->bitmap[w]);
      persisted_view_[w].store(resume->bitmap[w]);
      persisted_bits_[w] = resume->bitmap[w];
    }
    paused_.store(resume->paused);
    rate_limit_.store(resume->rate_limit);
    status_.store(persisted_pointer_ < g.size ? SyncStatus::kCopying : SyncStatus::kResyncing);
  }
}

Transfer::~Transfer() = default;

bool Transfer::below_pointer(uint64_t r) const {
  return r < div_ceil(progress_.load(), g_.region_size);
}

bool Transfer::persisted(uint64_t r) const { return persisted_view_[r / 64].load() & bit(r); }

uint64_t Transfer::persisted_pointer() const {
  std::lock_guard lock(flush_mutex_);
  return persisted_pointer_;
}

std::string Transfer::write_failure() const {
  std::lock_guard lock(flush_mutex_);
  return write_failure_;
}

Status Transfer::write(uint64_t offset, const void* buf, size_t length) {
  return change(offset, buf, length, false);
}

Status Transfer::discard(uint64_t offset, uint64_t length, bool zero) { return change(offset, nullptr, length, zero); }

Status Transfer::change(uint64_t offset, const void* buf, uint64_t length, bool zero_keep) {
  if (length == 0) return Status::Ok();
  std::shared_lock barrier(barrier_);
  if (finished_.load()) return Status::Error(EAGAIN, "the transfer has finished");
  const uint64_t r0 = offset / g_.region_size, r1 = (offset + length - 1) / g_.region_size;
  // Region locks in ascending lock order, each once. The data path
  // allocates nothing for the usual request (a FUSE request touches at most
  // 1 MiB / region_size + 1 regions, 5 at the default 256 KiB); only a
  // change over more regions than `local` holds uses the heap.
  size_t local[64];
  std::vector<size_t> heap;
  size_t* order = local;
  if (r1 - r0 + 1 > std::size(local)) {
    heap.resize(r1 - r0 + 1);
    order = heap.data();
  }
  size_t locks = 0;
  for (uint64_t r = r0; r <= r1; ++r) order[locks++] = r % lock_count_;
  std::sort(order, order + locks);
  locks = static_cast<size_t>(std::unique(order, order + locks) - order);
  for (size_t i = 0; i < locks; ++i) locks_[order[i]].lock();
  auto unlock = [&] {
    for (size_t i = locks; i-- > 0;) locks_[order[i]].unlock();
  };

  const bool synchronized = status_.load() == SyncStatus::kSynchronized;
  bool need_flush = false;
  for (uint64_t r = r0; r <= r1; ++r) {
    if (synchronized) {
      dual_[r / 64].fetch_or(bit(r));
    } else if (below_pointer(r)) {
      dirty_[r / 64].fetch_or(bit(r));
    } else {
      continue;  // above P: the first pass will copy it later
    }
    need_flush = need_flush || !persisted(r);
  }
  if (need_flush) {
    Status st = flush(false);
    if (!st.ok()) {
      unlock();
      return st;
    }
  }
  // A PV that shrank must fail the write, not grow back with a hole.
  auto apply = [&](const Place& side) {
    VGFS_RETURN_IF_ERROR(side.dev->check_range(side.offset + offset, length));
    return buf ? side.dev->write_at(buf, length, side.offset + offset)
               : side.dev->zero(side.offset + offset, length, zero_keep);
  };
  Status st = apply(g_.source);
  if (st.ok() && synchronized) {
    Status dst = apply(g_.destination);
    if (!dst.ok()) {
      std::lock_guard lock(flush_mutex_);
      if (write_failure_.empty()) write_failure_ = dst.message();
    }
  }
  unlock();
  return st;
}

Status Transfer::copy_region(uint64_t r) {
  const uint64_t from = r * g_.region_size;
  const uint64_t length = std::min(g_.region_size, g_.size - from);
  const uint64_t in = g_.source.offset + from, out = g_.destination.offset + from;

  // Never write past the end of a destination that shrank (it would grow).
  VGFS_RETURN_IF_ERROR(g_.destination.dev->check_range(out, length));
  // A hole in the source stays a hole: the destination is zeroed instead,
  // by punching where that is sure to read back as zeros.
  Result<PvExtent> run = g_.source.dev->backend().extent_at(in, length);
  if (run.ok() && !run->data && run->length >= length) {
    VGFS_RETURN_IF_ERROR(g_.destination.dev->zero(out, length));
    copied_.fetch_add(length);
    return Status::Ok();
  }
  VGFS_RETURN_IF_ERROR(copy_between(g_.source.dev->backend(), in, g_.destination.dev->backend(), out, length));
  copied_.fetch_add(length);
  return Status::Ok();
}

Status Transfer::copy_next() {
  const uint64_t r = div_ceil(progress_.load(), g_.region_size);
  if (r >= regions_) return Status::Ok();
  std::lock_guard lock(lock_of(r));
  copying_.store(r);  // before the bit is cleared: a snapshot still counts it dirty
  dirty_[r / 64].fetch_and(~bit(r));
  Status st = copy_region(r);
  if (st.ok()) progress_.store(std::min((r + 1) * g_.region_size, g_.size));
  else dirty_[r / 64].fetch_or(bit(r));
  copying_.store(kNone);
  return st;
}

Status Transfer::recopy(uint64_t r) {
  std::lock_guard lock(lock_of(r));
  if (!(dirty_[r / 64].load() & bit(r))) return Status::Ok();
  copying_.store(r);
  dirty_[r / 64].fetch_and(~bit(r));
  Status st = copy_region(r);
  if (!st.ok()) dirty_[r / 64].fetch_or(bit(r));
  copying_.store(kNone);
  return st;
}

std::optional<uint64_t> Transfer::next_dirty(uint64_t from) const {
  for (uint64_t w = from / 64; w < words_; ++w) {
    uint64_t bits = dirty_[w].load();
    if (w == from / 64) bits &= ~uint64_t{0} << (from % 64);
    if (bits) return w * 64 + static_cast<uint64_t>(std::countr_zero(bits));
  }
  return std::nullopt;
}

uint64_t Transfer::pending_count() const {
  uint64_t n = 0;
  for (size_t w = 0; w < words_; ++w) n += static_cast<uint64_t>(std::popcount(dirty_[w].load()));
  return n;
}

uint64_t Transfer::dirty_count() const {
  uint64_t n = 0;
  for (size_t w = 0; w < words_; ++w) n += static_cast<uint64_t>(std::popcount(dirty_[w].load() | dual_[w].load()));
  return n;
}

std::string Transfer::bitmap_bytes() const {
  std::string out(div_ceil(regions_, 8), '\0');
  for (uint64_t r = 0; r < regions_; ++r)
    if ((dirty_[r / 64].load() | dual_[r / 64].load()) & bit(r)) out[r / 8] = static_cast<char>(out[r / 8] | (1 << (r % 8)));
  return out;
}

Status Transfer::checkpoint() { return flush(true); }

// Group commit: a caller's request is covered by the first flush that starts
// after it; one leader writes while the others wait for it.
Status Transfer::flush(bool advance) {
  std::unique_lock lock(flush_mutex_);
  const uint64_t ticket = ++requested_;
  if (advance) advance_wanted_ = ticket;
  while (completed_ < ticket) {
    if (flushing_) {
      flush_cv_.wait(lock);
      continue;
    }
    flushing_ = true;
    const uint64_t covers = requested_;
    const bool adv = advance_wanted_ > completed_;
    lock.unlock();
    Status st = write_record(adv);
    lock.lock();
    flushing_ = false;
    completed_ = covers;
    // The newest flush's result: a later success also covers earlier tickets,
    // since its snapshot was taken after their bits were set.
    flush_status_ = st;
    flush_cv_.notify_all();
  }
  return flush_status_;
}

// Only the flush leader runs this, so the persisted_* fields change under
// no other writer.
Status Transfer::write_record(bool advance) {
  std::vector<uint64_t> bits(words_);
  uint64_t pointer;
  {
    std::lock_guard lock(flush_mutex_);
    pointer = persisted_pointer_;
  }
  std::vector<uint64_t> old = persisted_bits_;
  if (advance) {
    // Bits clear in memory now were recopied before this point; the fdatasync
    // below makes that durable. Withdraw them from the persisted view first,
    // so a writer that sets one again from here on asks for a flush.
    const uint64_t p = progress_.load();
    std::vector<uint64_t> keep(words_);
    for (size_t w = 0; w < words_; ++w) keep[w] = dirty_[w].load() | dual_[w].load();
    if (uint64_t c = copying_.load(); c != kNone) keep[c / 64] |= bit(c);
    for (size_t w = 0; w < words_; ++w) {
      persisted_view_[w].fetch_and(keep[w] | ~old[w]);
      old[w] &= keep[w];
    }
    VGFS_RETURN_IF_ERROR(sync_destination());
    pointer = p;
  }
  // Everything set in memory now, plus what stays persisted.
  for (size_t w = 0; w < words_; ++w) bits[w] = old[w] | dirty_[w].load() | dual_[w].load();
  if (uint64_t c = copying_.load(); c != kNone) bits[c / 64] |= bit(c);

  JobRecord rec;
  rec.job_id = g_.job_id;
  rec.generation = generation_ + 1;
  rec.progress_pointer = pointer;
  rec.sync_status = status_.load();
  rec.paused = paused_.load();
  rec.rate_limit = rate_limit_.load();
  rec.region_count = regions_;
  rec.bitmap = bits;
  std::string image = encode_job_record(rec);
  // A record PV that lost the write (its NBD server restarted) says so once
  // with EIO and a moved write_losses(): write it again.
  for (int attempt = 0;; ++attempt) {
    const uint64_t losses = g_.record.dev->backend().write_losses();
    VGFS_RETURN_IF_ERROR(
        g_.record.dev->write_at(image.data(), image.size(), g_.record.offset + (rec.generation % 2) * image.size()));
    Status st = g_.record.dev->sync();
    if (st.ok()) break;
    if (attempt == 3 || g_.record.dev->backend().write_losses() == losses) return st;
  }
  generation_ = rec.generation;
  persisted_bits_ = bits;
  for (size_t w = 0; w < words_; ++w) persisted_view_[w].store(bits[w]);
  std::lock_guard lock(flush_mutex_);
  persisted_pointer_ = pointer;
  return Status::Ok();
}

void Transfer::mark_unsure() {
  const uint64_t first = persisted_pointer() / g_.region_size;
  // One region past P too: the copier may be copying it right now.
  const uint64_t end = std::min(regions_, div_ceil(progress_.load(), g_.region_size) + 1);
  for (uint64_t r = first; r < end; ++r) dirty_[r / 64].fetch_or(bit(r));
  for (size_t w = 0; w < words_; ++w) dirty_[w].fetch_or(persisted_bits_[w]);
  if (uint64_t c = copying_.load(); c != kNone) dirty_[c / 64].fetch_or(bit(c));
}

// Flushes the destination. The flush that follows a loss of acknowledged
// writes fails once (PvBackend's rule); the regions it may have cost are
// marked dirty, and the next flush makes the rest durable. Runs only in the
// flush leader, so persisted_bits_ is the last durable record's.
Status Transfer::sync_destination() {
  const PvBackend& dest = g_.destination.dev->backend();
  for (int attempt = 0;; ++attempt) {
    Status st = g_.destination.dev->sync();
    const uint64_t losses = dest.write_losses();
    if (losses == dest_losses_) return st;
    if (attempt == 4)
      return st.ok() ? Status::Error(EIO, fmt::format("{}: keeps losing acknowledged writes", dest.label())) : st;
    dest_losses_ = losses;
    mark_unsure();
    loss_recoveries_.fetch_add(1);
  }
}

void Transfer::block_writes() { barrier_.lock(); }

void Transfer::finish() {
  finished_.store(true);
  for (size_t w = 0; w < words_; ++w) {
    dirty_[w].store(0);
    dual_[w].store(0);
  }
  barrier_.unlock();
}

void Transfer::unblock_writes() { barrier_.unlock(); }

}  // namespace vgfs
