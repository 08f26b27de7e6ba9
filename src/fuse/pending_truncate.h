// PendingTruncates: truncates of LV files to 0 that have not taken effect yet.
//
// An LV file keeps its size, like a block device. But a truncate to 0 is how
// programs start an image afresh: qemu-img's raw create (convert or create
// without -n) runs ftruncate(0), then ftruncate(size), then writes only the
// data of the source and trusts every other byte to read as zeros. So a
// truncate to 0 through an open file is remembered here, and takes effect,
// the whole LV made to read as zeros, when that same open file is next
// truncated to the LV's size or written. A truncate to any other size
// (EPERM) or the close cancels it with nothing changed: a qemu-img that gives
// up (its image is not the LV's size) leaves the LV as it was.
// README.md "The mount" documents it for users.
//
// Invariant: a handle is here only between its truncate to 0 and the first
// of: a truncate, a write or its release; any() is false only when no handle
// is here, so the write path pays one relaxed load when none is.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>

namespace vgfs {

class PendingTruncates {
 public:
  void add(uint64_t handle) {
    std::lock_guard lock(mutex_);
    if (handles_.insert(handle).second) count_.fetch_add(1, std::memory_order_relaxed);
  }
  // Removes `handle`; true when it had a truncate to 0 pending.
  bool take(uint64_t handle) {
    if (!any()) return false;
    std::lock_guard lock(mutex_);
    if (handles_.erase(handle) == 0) return false;
    count_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  bool any() const { return count_.load(std::memory_order_relaxed) != 0; }

 private:
  std::mutex mutex_;
  std::set<uint64_t> handles_;
  std::atomic<size_t> count_{0};
};

}  // namespace vgfs
