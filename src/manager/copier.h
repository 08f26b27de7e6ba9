// Copier: the copier state machine of one migration job (docs/migration.md
// rules 3, 4 and 6), run a slice at a time on the copier pool
// (src/manager/copier_pool.cc). It knows the Transfer it copies and
// nothing of the manager: the commits it cannot make itself (the switch,
// the end of a job) it asks of its owner through Hooks, so tests drive it
// over PV files without a VG, a mount or FUSE (tests/copier_test.cc).
//
// Invariant: the copier holds at most one region lock at a time (inside
// Transfer::copy_next() and recopy()), and none while it calls a hook, so
// LV I/O never waits longer than one region copy and a hook may take the
// manager's admin lock. Its phases, in order:
//   kCopying       first pass: region by region, moving P up (rule 3)
//   kResyncing     passes over the regions written below P, while each
//                  pass at least halves their number (rule 4)
//   kSynchronized  writes go to both sides; only regions dirtied before
//                  this phase remain, so their number only falls
//   kSwitching     inside Hooks::switch_over (the map commit)
//   kDone          completed, aborted, failed, or stopped for unmount
// A failed switch (a write slipped in, or the commit failed) goes back to
// kSynchronized.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "manager/rate_limiter.h"
#include "vgfs/metadata.h"
#include "vgfs/status.h"
#include "vgfs/transfer.h"

namespace vgfs {

// What a copier step asks of the pool next.
enum class StepResult {
  kAgain,  // more to do: queue it behind the others
  kSleep,  // rate limit: run again at Copier::wake_at() (or when woken)
  kPark,   // paused: run again when woken (resume, abort, stop)
  kDone,   // ended (completed, aborted, failed) or stopped for unmount
};

class Copier {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Phase { kCopying, kResyncing, kSynchronized, kSwitching, kDone };
  // What the owner asks the copier to do instead of copying.
  enum class Request { kNone, kAbort, kStop };

  struct Hooks {
    // Checked at the start of each step and before every region.
    std::function<Request()> request;
    // The switch commit (rule 4), with no dirty region left: true when the
    // job completed; false with *st ok when a write slipped in (the copier
    // goes on), or with *st the error that fails the job.
    std::function<bool(Status* st)> switch_over;
    // Ends the job as aborted or failed (rule 7).
    std::function<void(JobState state, const std::string& reason)> end;
  };

  // Copier tuning; the defaults are the daemon's.
  struct Tuning {
    // A step copies for about this long, then lets the next job have the thread.
    Clock::duration slice = std::chrono::milliseconds(50);
    // Rule 6: P and the bitmap are persisted at least this often.
    Clock::duration checkpoint_interval = std::chrono::seconds(1);
    // Resync passes go on only while they at least halve the dirty set and
    // more than this many regions are left; otherwise synchronized is
    // cheaper: it costs each write a second copy but never dirties a
    // region again.
    uint64_t sync_threshold = 16;
    // How often the measured rate is updated.
    Clock::duration rate_interval = std::chrono::milliseconds(500);
  };

  Copier(Transfer& transfer, Hooks hooks, Tuning tuning);
  Copier(Transfer& transfer, Hooks hooks) : Copier(transfer, std::move(hooks), Tuning{}) {}
  Copier(const Copier&) = delete;
  Copier& operator=(const Copier&) = delete;

  // One slice of the state machine. Only one thread runs a copier's steps
  // at a time (the pool guarantees it).
  StepResult step();

  Phase phase() const { return phase_.load(); }
  // After kSleep: when the rate limit allows the next region.
  Clock::time_point wake_at() const { return wake_at_; }
  // The measured copy rate, bytes/s (0 while paused, stopped or ended).
  uint64_t rate() const { return rate_.load(); }

 private:
  void begin();
  StepResult end(JobState state, const std::string& reason);
  StepResult sleep(Clock::time_point until);
  // After each region: the rate budget, the rate figure, the periodic checkpoint.
  Status after_region();
  // The transfer's checkpoint; says in the log when it found the destination
  // had lost acknowledged copies (they are recopied, include/vgfs/transfer.h).
  Status checkpoint();

  Transfer& t_;
  const Hooks hooks_;
  const Tuning tuning_;
  std::atomic<Phase> phase_{Phase::kCopying};
  std::atomic<uint64_t> rate_{0};
  RateLimiter limiter_;

  // State carried from one step to the next (only the thread running the
  // step touches it).
  bool begun_ = false;
  std::optional<uint64_t> cursor_;  // next region to look at in a resync pass; none = between passes
  uint64_t before_ = 0;             // dirty regions at the start of the last pass
  Clock::time_point last_checkpoint_, rate_mark_, wake_at_;
  uint64_t rate_bytes_ = 0;
};

const char* copier_phase_name(Copier::Phase phase);

}  // namespace vgfs
