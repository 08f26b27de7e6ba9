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
  JobInfo info;                        // guarded by VolumeManager::admin_
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

}  // namespace vgfs
