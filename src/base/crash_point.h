// Named crash points: places where a test can make the process die exactly as
// kill -9 would, to prove that recovery handles a crash there.
//
// Every build has them. When none is armed, WTD_CRASH_POINT costs one relaxed
// atomic load. Arm one with the environment variable
//   WTD_CRASH_AT=<name>[:<nth>]
// (read by ArmCrashPointFromEnv(), which mains call at start) or with
// ArmCrashPoint() in a test. On the nth pass (default 1) through the named
// point the process calls _exit(kCrashExitCode): no destructors, no flushing,
// nothing but what is already durable survives.
//
// A wedge point (WTD_WEDGE_POINT) is armed the same way, but on its nth pass
// the calling thread stops for good instead: it sleeps forever while the
// rest of the process goes on, as a thread stuck in a system call or a
// deadlock would. It proves that a supervisor notices a wedged thread.
//
// Every name used in the code must be listed in kCrashPointNames or
// kWedgePointNames (checked at runtime when armed, and by a test); docs/design/crash-points.md
// describes each.
//
// Thread-safety: all functions are safe to call from any thread.
#ifndef WTD_BASE_CRASH_POINT_H_
#define WTD_BASE_CRASH_POINT_H_

#include <atomic>
#include <functional>
#include <span>
#include <string_view>

#include "wtd/status.h"

namespace wtd {

inline constexpr int kCrashExitCode = 86;

// All crash point names, in lifecycle order.
std::span<const std::string_view> CrashPointNames();
// All wedge point names (armed the same way, by the same functions).
std::span<const std::string_view> WedgePointNames();

// Arms `name` to fire on its nth pass. InvalidArgument for an unknown name or
// nth < 1.
Status ArmCrashPoint(std::string_view name, int nth = 1);
// Parses "<name>[:<nth>]" and arms it. OK and nothing armed when spec is empty.
Status ArmCrashPointSpec(std::string_view spec);
// Arms from $WTD_CRASH_AT, if set.
Status ArmCrashPointFromEnv();
void DisarmCrashPoints();

// Replaces the action taken when a point fires (default: _exit(86)). For
// in-process tests: the action may throw to unwind to the test.
void SetCrashAction(std::function<void(std::string_view name)> action);

namespace internal {
extern std::atomic<bool> g_crash_armed;
void MaybeCrashSlow(std::string_view name);
void MaybeWedgeSlow(std::string_view name);
}  // namespace internal

inline void MaybeCrash(std::string_view name) {
  if (internal::g_crash_armed.load(std::memory_order_relaxed)) internal::MaybeCrashSlow(name);
}

// On the armed pass: the crash action if one is set (it may throw), else
// the calling thread sleeps forever. Writes "wtd: wedge point NAME: this
// thread stops here" to stderr first, so a test can tell when it happened.
inline void MaybeWedge(std::string_view name) {
  if (internal::g_crash_armed.load(std::memory_order_relaxed)) internal::MaybeWedgeSlow(name);
}

}  // namespace wtd

#define WTD_CRASH_POINT(name) ::wtd::MaybeCrash(name)
#define WTD_WEDGE_POINT(name) ::wtd::MaybeWedge(name)

#endif  // WTD_BASE_CRASH_POINT_H_
