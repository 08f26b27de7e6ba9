// The token bucket of one job's copier (src/manager/rate_limiter.h).
#include "manager/rate_limiter.h"

namespace vgfs {

void RateLimiter::set_rate(uint64_t bytes_per_second, Clock::time_point now) {
  if (started_ && bytes_per_second == rate_) return;
  started_ = true;
  rate_ = bytes_per_second;
  budget_ = now;
}

bool RateLimiter::allowed(Clock::time_point now, Clock::time_point* at) {
  if (rate_ == 0) {
    budget_ = now;
    return true;
  }
  if (budget_ > now) {
    if (at) *at = budget_;
    return false;
  }
  // A budget more than one burst behind is dropped (after a pause, or a
  // wait for the pool): start afresh from now.
  if (budget_ < now - kMaxBurst) budget_ = now;
  return true;
}

void RateLimiter::spent(uint64_t bytes) {
  if (rate_ == 0) return;
  // bytes / rate seconds, without the overflow of bytes * 1e9 for large counts.
  const uint64_t whole = bytes / rate_, rest = bytes % rate_;
  budget_ += std::chrono::seconds(whole) +
             std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(rest) * 1e9 / static_cast<double>(rate_)));
}

}  // namespace vgfs
