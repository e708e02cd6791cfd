// FakeClock: time that moves only when a test says so.
#ifndef WTD_TESTS_FAKES_FAKE_CLOCK_H_
#define WTD_TESTS_FAKES_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "base/clock.h"

namespace wtd {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMs() override { return now_ms_.load(); }
  int64_t MonotonicUs() override { return now_ms_.load() * 1000; }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }
  void SetMs(int64_t ms) { now_ms_ = ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace wtd

#endif  // WTD_TESTS_FAKES_FAKE_CLOCK_H_
