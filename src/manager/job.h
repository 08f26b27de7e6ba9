// The runtime side of one migration job (private to src/manager).
//
// Jobs do not own threads: a fixed pool of kCopierThreads copier threads
// (src/manager/copier_pool.cc) runs the steps of every running job's
// Copier (src/manager/copier.h), a slice at a time, round-robin. Between
// steps a job is queued (ready), sleeping until its rate budget allows the
// next region, or parked while paused.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "manager/copier.h"
#include "vgfs/transfer.h"
#include "vgfs/volume_manager.h"

namespace vgfs {

using Clock = std::chrono::steady_clock;

struct VolumeManager::Job {
  JobInfo info;                        // guarded by VolumeManager::admin_ (readers use the snapshot's copy)
  std::unique_ptr<Transfer> transfer;  // set once at creation; null for jobs that ended before this mount
  std::unique_ptr<Copier> copier;      // set with transfer; its steps run on the pool
  std::mutex m;
  std::condition_variable cv;
  bool stop = false, abort = false;  // guarded by m
  std::atomic<bool> done{false};     // set under m, read anywhere
  const Clock::time_point started = Clock::now();

  // Scheduling.
  enum class Sched { kNone, kReady, kRunning, kSleeping, kParked };
  Sched sched = Sched::kNone;  // guarded by VolumeManager::pool_m_
  bool poked = false;          // guarded by VolumeManager::pool_m_; woken while running: queue again instead of parking
  Clock::time_point wake_at;   // guarded by VolumeManager::pool_m_
  uint64_t turn = 0;           // guarded by VolumeManager::pool_m_; round-robin order among ready jobs
};

// Holds admin_ for a change of the metadata or the job list, and publishes
// the readers' snapshot before every release, so readers never see a state
// older than the last change that finished.
class VolumeManager::Change {
 public:
  explicit Change(VolumeManager& manager) : manager_(manager), lock_(manager.admin_) {}
  ~Change() {
    if (lock_.owns_lock()) manager_.publish();
  }
  Change(const Change&) = delete;
  Change& operator=(const Change&) = delete;
  void unlock() {
    manager_.publish();
    lock_.unlock();
  }
  void lock() { lock_.lock(); }

 private:
  VolumeManager& manager_;
  std::unique_lock<std::mutex> lock_;
};

}  // namespace vgfs
