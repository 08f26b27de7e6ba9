// The runtime side of one migration job (private to src/manager).
//
// Jobs do not own threads: a fixed pool of kCopierThreads copier threads
// (src/manager/copier_pool.cc) runs the steps of every running job, a slice
// at a time, round-robin. A step copies regions for at most kSliceTime and
// returns; between steps a job is queued (ready), sleeping until its rate
// budget allows the next region, or parked while paused.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "vgfs/transfer.h"
#include "vgfs/volume_manager.h"

namespace vgfs {

using Clock = std::chrono::steady_clock;

// What a job's step asks of the pool next.
enum class StepResult {
  kAgain,  // more to do: queue it behind the others
  kSleep,  // rate limit: run again at Job::wake_at (or when woken)
  kPark,   // paused: run again when woken (resume, abort, stop)
  kDone,   // ended (completed, aborted, failed) or stopped for unmount
};

struct VolumeManager::Job {
  JobInfo info;                        // guarded by VolumeManager::admin_
  std::unique_ptr<Transfer> transfer;  // set once at creation; null for jobs that ended before this mount
  std::mutex m;
  std::condition_variable cv;
  bool stop = false, abort = false;  // guarded by m
  std::atomic<bool> done{false};     // set under m, read anywhere
  std::atomic<uint64_t> rate{0};
  Clock::time_point started = Clock::now();

  // Copier state carried from one step to the next (only the thread running
  // the step touches it).
  struct Copier {
    bool begun = false;
    bool resync = false;                  // past the first pass (rule 4)
    std::optional<uint64_t> cursor;       // next region to look at in a resync pass; none = between passes
    uint64_t before = 0;                  // dirty regions at the start of the last pass
    Clock::time_point last_checkpoint, rate_mark, budget;
    uint64_t rate_bytes = 0;
    uint64_t limit = 0;  // the rate limit `budget` was counted with
  } copier;

  // Scheduling.
  enum class Sched { kNone, kReady, kRunning, kSleeping, kParked };
  Sched sched = Sched::kNone;  // guarded by VolumeManager::pool_m_
  bool poked = false;          // guarded by VolumeManager::pool_m_; woken while running: queue again instead of parking
  Clock::time_point wake_at;   // guarded by VolumeManager::pool_m_
  uint64_t turn = 0;           // guarded by VolumeManager::pool_m_; round-robin order among ready jobs
};

}  // namespace vgfs
