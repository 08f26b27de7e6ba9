// The runtime side of one migration job (private to src/manager).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "vgfs/transfer.h"
#include "vgfs/volume_manager.h"

namespace vgfs {

using Clock = std::chrono::steady_clock;

struct VolumeManager::Job {
  JobInfo info;
  std::unique_ptr<Transfer> transfer;  // null for jobs that ended before this mount
  std::thread thread;
  std::mutex m;
  std::condition_variable cv;
  bool stop = false, abort = false;  // guarded by m
  std::atomic<bool> done{false};     // set under m, read anywhere
  std::atomic<uint64_t> rate{0};
  Clock::time_point started = Clock::now();

  // Dropping an ended job (pruning, pvremove) joins its copier thread,
  // which has nothing left to do but return.
  ~Job() {
    if (thread.joinable()) thread.join();
  }
};

}  // namespace vgfs
