#include "runs/retry_policy.h"

#include <algorithm>

namespace wtd {

RetryPolicy::RetryPolicy(int64_t cap_ms, double jitter, uint64_t seed)
    : cap_ms_(std::max<int64_t>(cap_ms, 0)), jitter_(std::clamp(jitter, 0.0, 1.0)), rng_(seed) {}

RetryPolicy::RetryPolicy(const RetryPolicy& other)
    : cap_ms_(other.cap_ms_), jitter_(other.jitter_) {
  MutexLock lock(&other.mu_);
  rng_ = other.rng_;
}

RetryPolicy& RetryPolicy::operator=(const RetryPolicy& other) {
  if (this == &other) return *this;
  // One lock at a time, so two threads assigning a = b and b = a cannot
  // deadlock: the generator's state is copied out under other's lock first.
  std::mt19937_64 rng;
  {
    MutexLock lock(&other.mu_);
    rng = other.rng_;
  }
  MutexLock lock(&mu_);
  cap_ms_ = other.cap_ms_;
  jitter_ = other.jitter_;
  rng_ = rng;
  return *this;
}

int64_t RetryPolicy::Delay(int64_t base_ms, uint32_t n) const {
  if (base_ms <= 0 || n == 0) return 0;
  int64_t d = base_ms;
  for (uint32_t i = 1; i < n && d < cap_ms_; ++i) d *= 2;  // stops before overflow
  d = std::min(d, cap_ms_);
  double u;
  {
    MutexLock lock(&mu_);
    u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  return d - static_cast<int64_t>(jitter_ * static_cast<double>(d) * u);
}

}  // namespace wtd
