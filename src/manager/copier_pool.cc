// The copier pool: kCopierThreads threads run the steps of every running
// job round-robin (src/manager/job.h), and the commit helper that reports
// partial commits.
//
// Why a pool: one thread per job made the number of threads grow with the
// jobs, and a failure to start one (a pids cgroup, systemd's TasksMax)
// threw std::system_error out of the command: the daemon died. A pool
// thread is started before the commit that creates jobs, and a failure to
// start the first one fails that command with EAGAIN and changes nothing.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "manager/job.h"
#include "vgfs/escape.h"
#include "vgfs/log.h"

namespace vgfs {

namespace {

thread_local VolumeManager::CommitWarnings* current_warnings = nullptr;

void log_warning(const std::string& message) { log::warning(message); }

// Copies yield to LV I/O: a copier thread runs kCopierNice steps below the
// daemon's CPU priority, so a FUSE worker or the writer it wakes on a busy
// CPU preempts a region copy instead of waiting out its time slice, and the
// copier still gets its share under any load (a job converges whatever the
// writers do, docs/migration.md). Measured in docs/benchmarks.md ("Writes
// during a move"). Linux gives each thread its own nice value.
constexpr int kCopierNice = 10;

void lower_this_threads_priority() {
  errno = 0;
  const int base = getpriority(PRIO_PROCESS, 0);
  if (errno != 0) return;
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), std::min(base + kCopierNice, 19));
}

}  // namespace

VolumeManager::CommitWarnings::CommitWarnings() : outer_(current_warnings) { current_warnings = this; }
VolumeManager::CommitWarnings::~CommitWarnings() { current_warnings = outer_; }

Status VolumeManager::commit(VgMetadata md, bool ends_foreign_move) {
  Status st = ends_foreign_move ? store_.commit_ending_foreign_move(std::move(md)) : store_.commit(std::move(md));
  if (!st.ok()) return st;
  for (const std::string& p : store_.commit_problems()) {
    std::string warning = p.find("metadata archive") != std::string::npos
                              ? p
                              : fmt::format("metadata seqno {} not written to {}", store_.metadata().seqno, p);
    warn(std::move(warning));
  }
  return st;
}

void VolumeManager::warn(std::string warning) {
  log_warning(warning);
  if (current_warnings) current_warnings->list_.push_back(std::move(warning));
}

size_t VolumeManager::copier_threads() const {
  std::lock_guard lock(pool_m_);
  return copiers_.size();
}

Status VolumeManager::ensure_copiers() {
  std::lock_guard lock(pool_m_);
  std::string failure;
  while (copiers_.size() < kCopierThreads) {
    try {
      if (fail_thread_start_) throw std::system_error(EAGAIN, std::generic_category(), "injected");
      copiers_.emplace_back([this] { copier_loop(); });
    } catch (const std::system_error& e) {
      failure = e.code().message();
      break;
    }
  }
  if (!copiers_.empty()) {
    if (!failure.empty())
      log_warning(fmt::format("running with {} copier thread(s) of {}: cannot start another: {}", copiers_.size(),
                              kCopierThreads, failure));
    return Status::Ok();
  }
  return Status::Error(EAGAIN, fmt::format("cannot start a copier thread ({}); the process may be at its thread "
                                           "limit (pids cgroup, TasksMax); nothing was changed",
                                           failure));
}

void VolumeManager::schedule(Job& job) {
  {
    std::lock_guard lock(pool_m_);
    if (job.sched != Job::Sched::kNone) return;
    job.sched = Job::Sched::kReady;
    job.turn = turns_++;
    scheduled_.push_back(&job);
  }
  pool_cv_.notify_one();
}

void VolumeManager::wake(Job& job) {
  {
    std::lock_guard lock(pool_m_);
    switch (job.sched) {
      case Job::Sched::kRunning: job.poked = true; break;
      case Job::Sched::kSleeping:
      case Job::Sched::kParked:
        job.sched = Job::Sched::kReady;
        job.turn = turns_++;
        break;
      default: break;
    }
  }
  pool_cv_.notify_all();
}

void VolumeManager::forget(Job& job) {
  std::unique_lock lock(pool_m_);
  pool_cv_.wait(lock, [&] { return job.sched != Job::Sched::kRunning; });
  job.sched = Job::Sched::kNone;
  std::erase(scheduled_, &job);
}

void VolumeManager::copier_loop() {
  lower_this_threads_priority();
  std::unique_lock lock(pool_m_);
  for (;;) {
    // The ready job whose turn came first; sleepers whose time came are ready.
    const auto now = Clock::now();
    Job* next = nullptr;
    std::optional<Clock::time_point> soonest;
    for (Job* j : scheduled_) {
      if (j->sched == Job::Sched::kSleeping) {
        if (j->wake_at <= now) {
          j->sched = Job::Sched::kReady;
          j->turn = turns_++;
        } else if (!soonest || j->wake_at < *soonest) {
          soonest = j->wake_at;
        }
      }
      if (j->sched == Job::Sched::kReady && (!next || j->turn < next->turn)) next = j;
    }
    if (!next) {
      if (pool_stop_) return;
      if (soonest) pool_cv_.wait_until(lock, *soonest);
      else pool_cv_.wait(lock);
      continue;
    }
    next->sched = Job::Sched::kRunning;
    next->poked = false;
    lock.unlock();
    const StepResult r = next->copier->step();
    lock.lock();
    switch (r) {
      case StepResult::kDone:
        next->sched = Job::Sched::kNone;
        std::erase(scheduled_, next);
        break;
      case StepResult::kSleep:
        next->wake_at = next->copier->wake_at();
        next->sched = next->poked ? Job::Sched::kReady : Job::Sched::kSleeping;
        break;
      case StepResult::kPark:
        next->sched = next->poked ? Job::Sched::kReady : Job::Sched::kParked;
        break;
      case StepResult::kAgain:
        next->sched = Job::Sched::kReady;
        break;
    }
    if (next->sched == Job::Sched::kReady) next->turn = turns_++;
    pool_cv_.notify_all();  // forget() and other copiers
  }
}

void VolumeManager::stop_copiers() {
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(pool_m_);
    // Every scheduled job sees its stop flag in one more step, then leaves.
    // One in a step now may have read no stop yet and be about to sleep
    // (a rate limit's next slot can be days away): poked, it is ready again.
    for (Job* j : scheduled_)
      if (j->sched == Job::Sched::kSleeping || j->sched == Job::Sched::kParked) {
        j->sched = Job::Sched::kReady;
        j->turn = turns_++;
      } else if (j->sched == Job::Sched::kRunning) {
        j->poked = true;
      }
    pool_cv_.notify_all();
    if (!copiers_.empty()) pool_cv_.wait(lock, [&] { return scheduled_.empty(); });
    pool_stop_ = true;
    threads.swap(copiers_);
  }
  pool_cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

}  // namespace vgfs
