// The copier state machine of one job (src/manager/copier.h,
// docs/migration.md rules 3, 4 and 6).
#include "manager/copier.h"

#include <fmt/format.h>

#include "vgfs/log.h"

namespace vgfs {

const char* copier_phase_name(Copier::Phase phase) {
  switch (phase) {
    case Copier::Phase::kCopying: return "copying";
    case Copier::Phase::kResyncing: return "resyncing";
    case Copier::Phase::kSynchronized: return "synchronized";
    case Copier::Phase::kSwitching: return "switching";
    case Copier::Phase::kDone: return "done";
  }
  return "?";
}

Copier::Copier(Transfer& transfer, Hooks hooks, Tuning tuning)
    : t_(transfer), hooks_(std::move(hooks)), tuning_(tuning) {}

// The phase a resumed job continues in: the record says how far it got.
void Copier::begin() {
  begun_ = true;
  const auto now = Clock::now();
  last_checkpoint_ = rate_mark_ = now;
  limiter_.set_rate(t_.rate_limit(), now);
  rate_bytes_ = t_.copied_bytes();
  if (t_.progress_pointer() >= t_.geometry().size) {
    if (t_.sync_status() == SyncStatus::kCopying) t_.set_sync_status(SyncStatus::kResyncing);
    phase_ = t_.sync_status() == SyncStatus::kSynchronized ? Phase::kSynchronized : Phase::kResyncing;
  }
  before_ = t_.region_count();  // the first pass goes over every region
}

StepResult Copier::end(JobState state, const std::string& reason) {
  rate_.store(0);
  phase_ = Phase::kDone;
  hooks_.end(state, reason);
  return StepResult::kDone;
}

StepResult Copier::sleep(Clock::time_point until) {
  wake_at_ = until;
  return StepResult::kSleep;
}

Status Copier::after_region() {
  limiter_.spent(t_.geometry().region_size);
  const auto now = Clock::now();
  if (now - rate_mark_ >= tuning_.rate_interval) {
    const double secs = std::chrono::duration<double>(now - rate_mark_).count();
    rate_.store(static_cast<uint64_t>(static_cast<double>(t_.copied_bytes() - rate_bytes_) / secs));
    rate_mark_ = now;
    rate_bytes_ = t_.copied_bytes();
  }
  if (now - last_checkpoint_ >= tuning_.checkpoint_interval) {
    last_checkpoint_ = now;
    return checkpoint();
  }
  return Status::Ok();
}

Status Copier::checkpoint() {
  const uint64_t recoveries = t_.loss_recoveries();
  Status st = t_.checkpoint();
  if (t_.loss_recoveries() != recoveries)
    log::warning(fmt::format("job {}: the destination lost copies it had acknowledged (its server restarted); "
                             "recopying what was copied since the last durable checkpoint",
                             t_.geometry().job_id));
  return st;
}

// Control changes (pause, abort, stop, limit) wake the job through the
// pool, so a parked or sleeping copier sees them at once.
StepResult Copier::step() {
  if (!begun_) begin();
  switch (hooks_.request()) {
    case Request::kAbort: return end(JobState::kAborted, "aborted by the user");
    case Request::kStop:
      rate_.store(0);
      (void)t_.checkpoint();  // unmount: resumes on the next mount
      return StepResult::kDone;
    case Request::kNone: break;
  }
  if (t_.paused()) {
    rate_.store(0);
    return StepResult::kPark;
  }

  Status st;
  const auto deadline = Clock::now() + tuning_.slice;
  for (bool first = true; st.ok(); first = false) {
    const auto now = Clock::now();
    if (!first && now >= deadline) return StepResult::kAgain;  // at least one region or phase change a step
    limiter_.set_rate(t_.rate_limit(), now);  // a new limit counts from now
    if (Clock::time_point at; !limiter_.allowed(now, &at)) return sleep(at);
    if (hooks_.request() != Request::kNone || t_.paused()) return StepResult::kAgain;  // the next step handles it

    // Rule 3: the first pass.
    if (phase_ == Phase::kCopying) {
      if (t_.progress_pointer() < t_.geometry().size) {
        if ((st = t_.copy_next()).ok()) st = after_region();
        continue;
      }
      phase_ = Phase::kResyncing;
      t_.set_sync_status(SyncStatus::kResyncing);
      cursor_.reset();
      continue;
    }
    // Rule 4: resync passes while they shrink the dirty set, then synchronized.
    if (!cursor_) {
      const uint64_t pending = t_.pending_count();
      if (phase_ != Phase::kSynchronized && (pending <= tuning_.sync_threshold || pending * 2 > before_)) {
        // From here writes dirty no region for the copier: the count only falls.
        t_.set_sync_status(SyncStatus::kSynchronized);
        phase_ = Phase::kSynchronized;
        st = checkpoint();
        continue;
      }
      before_ = pending;
      if (phase_ == Phase::kSynchronized && pending == 0) {
        phase_ = Phase::kSwitching;
        rate_.store(0);  // before the hook marks the job done: an ended job shows no rate
        if (hooks_.switch_over(&st)) {
          phase_ = Phase::kDone;
          return StepResult::kDone;
        }
        phase_ = Phase::kSynchronized;
        continue;
      }
      cursor_ = 0;
    }
    std::optional<uint64_t> r = t_.next_dirty(*cursor_);
    if (!r) {
      cursor_.reset();  // the pass is over
      continue;
    }
    cursor_ = *r + 1;
    if ((st = t_.recopy(*r)).ok()) st = after_region();
  }
  return end(JobState::kFailed, st.message());
}

}  // namespace vgfs
