// RateLimiter: caps the copy rate of one migration job (`limit ID BYTES/s`,
// docs/migration.md "Rate limit").
//
// Invariant: over any interval in which the rate stays set, the bytes
// accounted with spent() exceed rate x interval by at most kMaxBurst worth
// of bytes plus the one transfer that was allowed last. It is a token
// bucket kept as one time point, `budget`: the instant at which everything
// spent so far would have been sent at exactly the rate. A transfer may
// start when budget <= now; spending `n` bytes moves budget on by n / rate.
// A budget up to kMaxBurst behind `now` is caught up on (a copy that was
// slow for a moment makes up for it); one further behind is dropped, so a
// job that was idle (paused, or waiting for the pool) starts afresh at the
// rate instead of running unlimited for a while.
//
// Not thread-safe: one copier step uses it at a time (src/manager/copier.h).
// Time comes from the caller, so tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace vgfs {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kMaxBurst = std::chrono::seconds(1);

  // Sets the rate in bytes per second (0: unlimited). A changed rate counts
  // from `now`: no allowance earned under the old rate carries over, and
  // none is owed.
  void set_rate(uint64_t bytes_per_second, Clock::time_point now);
  uint64_t rate() const { return rate_; }

  // Whether a transfer may start at `now`; when not, *at is when it may.
  bool allowed(Clock::time_point now, Clock::time_point* at);
  // Accounts `bytes` just sent.
  void spent(uint64_t bytes);

 private:
  uint64_t rate_ = 0;
  bool started_ = false;
  Clock::time_point budget_{};
};

}  // namespace vgfs
