// Clock: wall and monotonic time behind an interface so that tests can drive
// time by hand (tests/fakes/fake_clock.h).
//
// Thread-safety: implementations must be safe to call from any thread.
#ifndef WTD_BASE_CLOCK_H_
#define WTD_BASE_CLOCK_H_

#include <cstdint>

namespace wtd {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC). Stored in records.
  virtual int64_t NowMs() = 0;
  // Microseconds from an arbitrary origin; never goes backwards. For
  // durations and deadlines within one process.
  virtual int64_t MonotonicUs() = 0;
};

// The real clock (CLOCK_REALTIME / CLOCK_MONOTONIC). Never null; lives for the
// whole process.
Clock* SystemClock();

}  // namespace wtd

#endif  // WTD_BASE_CLOCK_H_
