#include "base/crash_point.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/mutex.h"

namespace wtd {
namespace {

// Lifecycle order. docs/design/crash-points.md describes each.
constexpr std::string_view kCrashPointNames[] = {
    "after_store_open",              // store opened, incarnation bumped
    "after_enqueue_commit",          // runs enqueued + cursor advanced
    "after_lease_acquire_commit",    // pending -> leased + held lease row; no ref yet
    "after_lock_contended_commit",   // leased -> retry_wait, lease row deleted
    "after_ref_create",              // lock ref created, receipts not looked at yet
    "after_lease_commit",            // pending -> leased committed
    "after_ready_commit",            // -> ready committed
    "after_spawn",                   // child spawned, held behind the handshake pipe
    "before_running_commit",         // about to commit running{pid, start time, boot id}
    "after_running_commit",          // running committed, child not yet released
    "after_release",                 // child released to exec the job
    "before_outcome_commit",         // child reaped, outcome not yet committed
    "after_outcome_commit",          // terminal or retry_wait committed
    "after_lease_renew_commit",      // a lease's expiry and ref blob moved
    "after_finishing_commit",        // running -> finishing: outcome recorded, no receipt yet
    "after_receipt",                 // receipt appended, run still finishing
    "after_finish_complete_commit",  // finishing -> its target, lease releasing; ref not deleted
    "after_skip_commit",             // leased | finishing -> skipped, lease releasing
    "after_ref_delete",              // lock ref deleted, lease row not dropped yet
    "after_lease_drop_commit",       // a releasing lease row deleted
    "after_watched_repos_commit",    // the watched repositories recorded
    "after_reap_record",             // a reap record committed, the stale ref not deleted yet
    "after_slot_record",             // a slot recorded creating, no idempotency record yet
    "after_intent_commit",           // worktree_add in_progress with its rollback payload
    "after_branch_create",           // the creation's branch made, no worktree yet
    "after_worktree_add",            // worktree added (detached, branch gone), not completed
    "after_idem_complete",           // worktree_add completed, the slot still creating
    "before_slot_checkout",          // a slot recorded busy for a run, not checked out yet
    "after_slot_checkout",           // the slot at the run's sha, run not ready yet
    "after_slot_removing",           // a slot recorded removing, its pieces still there
    "after_slot_dir_remove",         // a removed slot's work dir gone, admin entry not yet
    "after_gc_commit",               // retention: run records deleted, their files not yet
    "during_recovery",               // recovery pass, after each action it commits
    "during_shutdown",               // graceful stop: jobs past the grace; before the clean marker
};

// Wedge points (WTD_WEDGE_POINT): the thread stops instead of the process.
constexpr std::string_view kWedgePointNames[] = {
    "wedge_loop",  // scheduler loop, after a completed step, before its step hook
};

Mutex g_mu;
std::string g_name GUARDED_BY(g_mu);
int g_remaining GUARDED_BY(g_mu) = 0;
std::function<void(std::string_view)> g_action GUARDED_BY(g_mu);

bool Known(std::string_view name) {
  return std::find(std::begin(kCrashPointNames), std::end(kCrashPointNames), name) !=
             std::end(kCrashPointNames) ||
         std::find(std::begin(kWedgePointNames), std::end(kWedgePointNames), name) !=
             std::end(kWedgePointNames);
}

// Counts a pass through `name`; true on the armed pass (then disarmed), with
// the replacement action, if any, in *action.
bool Fires(std::string_view name, std::function<void(std::string_view)>* action) {
  MutexLock lock(&g_mu);
  if (name != g_name || g_remaining <= 0) return false;
  if (--g_remaining > 0) return false;
  internal::g_crash_armed.store(false, std::memory_order_relaxed);
  *action = g_action;
  return true;
}

}  // namespace

namespace internal {
std::atomic<bool> g_crash_armed{false};

void MaybeCrashSlow(std::string_view name) {
  std::function<void(std::string_view)> action;
  if (!Fires(name, &action)) return;
  if (action) {
    action(name);
    return;
  }
  _exit(kCrashExitCode);
}

void MaybeWedgeSlow(std::string_view name) {
  std::function<void(std::string_view)> action;
  if (!Fires(name, &action)) return;
  if (action) {
    action(name);
    return;
  }
  std::string line = "wtd: wedge point " + std::string(name) + ": this thread stops here\n";
  ssize_t n = write(2, line.data(), line.size());
  (void)n;
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}
}  // namespace internal

std::span<const std::string_view> CrashPointNames() { return kCrashPointNames; }
std::span<const std::string_view> WedgePointNames() { return kWedgePointNames; }

Status ArmCrashPoint(std::string_view name, int nth) {
  if (!Known(name))
    return Status::InvalidArgument("unknown crash point '" + std::string(name) + "'");
  if (nth < 1) return Status::InvalidArgument("crash point count must be >= 1");
  MutexLock lock(&g_mu);
  g_name = std::string(name);
  g_remaining = nth;
  internal::g_crash_armed.store(true, std::memory_order_relaxed);
  return Status::OK();
}

Status ArmCrashPointSpec(std::string_view spec) {
  if (spec.empty()) return Status::OK();
  std::string_view name = spec;
  int nth = 1;
  size_t colon = spec.find(':');
  if (colon != std::string_view::npos) {
    name = spec.substr(0, colon);
    std::string_view count = spec.substr(colon + 1);
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), nth);
    if (ec != std::errc() || end != count.data() + count.size()) {
      return Status::InvalidArgument("WTD_CRASH_AT: bad count in '" + std::string(spec) + "'");
    }
  }
  return ArmCrashPoint(name, nth).WithContext("WTD_CRASH_AT");
}

Status ArmCrashPointFromEnv() {
  const char* spec = std::getenv("WTD_CRASH_AT");
  return ArmCrashPointSpec(spec ? spec : "");
}

void DisarmCrashPoints() {
  MutexLock lock(&g_mu);
  g_remaining = 0;
  g_name.clear();
  internal::g_crash_armed.store(false, std::memory_order_relaxed);
}

void SetCrashAction(std::function<void(std::string_view)> action) {
  MutexLock lock(&g_mu);
  g_action = std::move(action);
}

}  // namespace wtd
