// RetryPolicy: exponential backoff with jitter and a cap, used both for a
// job's failed attempts (base = the job's retry_backoff_s) and for the
// scheduler's error backoff (base = --backoff-ms, cap = --max-backoff-ms).
//
// Delay(n) for the nth consecutive failure (n >= 1) is
//   d = min(cap, base * 2^(n-1)),  returned as d - jitter * d * u,
// with u uniform in [0, 1) from the policy's own generator ("equal jitter"
// when jitter = 0.5): never above the cap, never below (1 - jitter) * d.
//
// Thread-safety: Delay is safe to call concurrently.
#ifndef WTD_RUNS_RETRY_POLICY_H_
#define WTD_RUNS_RETRY_POLICY_H_

#include <cstdint>
#include <random>

#include "base/mutex.h"

namespace wtd {

class RetryPolicy {
 public:
  RetryPolicy(int64_t cap_ms = 3'600'000, double jitter = 0.5,
              uint64_t seed = std::random_device{}());
  RetryPolicy(const RetryPolicy& other);
  RetryPolicy& operator=(const RetryPolicy& other);

  // Delay before retry after the nth consecutive failure with the given base.
  int64_t Delay(int64_t base_ms, uint32_t n) const EXCLUDES(mu_);

  int64_t cap_ms() const { return cap_ms_; }
  // Not safe concurrently with Delay.
  void set_cap_ms(int64_t cap_ms) { cap_ms_ = cap_ms < 0 ? 0 : cap_ms; }
  double jitter() const { return jitter_; }

 private:
  int64_t cap_ms_;
  double jitter_;
  mutable Mutex mu_;
  mutable std::mt19937_64 rng_ GUARDED_BY(mu_);
};

// Error backoff for one failing thing (a repository, a spawn path): call
// Failure() after each error and Success() after a success; Ready(now) says
// whether to try again.
class Backoff {
 public:
  Backoff(int64_t base_ms, int64_t cap_ms, uint64_t seed = std::random_device{}())
      : base_ms_(base_ms), policy_(cap_ms, 0.5, seed) {}
  void Failure(int64_t now_ms) { next_ms_ = now_ms + policy_.Delay(base_ms_, ++failures_); }
  // New base and cap (a reload), from the next Failure on; the failure count
  // and the retry already scheduled stay.
  void SetLimits(int64_t base_ms, int64_t cap_ms) {
    base_ms_ = base_ms;
    policy_.set_cap_ms(cap_ms);
  }
  void Success() { failures_ = 0, next_ms_ = 0; }
  bool Ready(int64_t now_ms) const { return now_ms >= next_ms_; }
  uint32_t failures() const { return failures_; }
  int64_t next_ms() const { return next_ms_; }

 private:
  int64_t base_ms_;
  RetryPolicy policy_;
  uint32_t failures_ = 0;
  int64_t next_ms_ = 0;
};

}  // namespace wtd

#endif  // WTD_RUNS_RETRY_POLICY_H_
