// JudgeLock: whether a lock may be reaped, from its owner alone
// (docs/design/locks.md, "Stale locks"). Pure: the process table and the
// time are given, nothing is read or written.
//
//   unreadable owner (blob missing or unparsable)    held by "unknown": never stale
//   same host, same known boot: the owner daemon (pid + pid_start_time) and
//     the job (job_pid + job_start_time, when recorded) both not alive   stale: pid gone / pid
//     reused
//   same host, another boot id                       stale: other boot
//   any host, now > expires_at_ms + grace_ms          stale: expired
//   otherwise (another host before expiry + grace)   held
//
// "Not alive" is: no such pid (pid gone), or a live pid whose start time
// differs (pid reused). When the daemon and the job both are not alive, the
// reason is the daemon's. A process table error (other than NotFound) counts
// as alive: a lock is never reaped on a guess. When this host's or the
// owner's boot id is unknown (kUnknownBootId or empty), pids cannot be
// trusted and only expiry applies.
//
// Thread-safety: a pure function; `processes` must be safe to call.
#ifndef WTD_LOCKS_STALE_H_
#define WTD_LOCKS_STALE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/process_table.h"
#include "locks/lock_owner.h"
#include "locks/lock_refs.h"

namespace wtd::locks {

enum class LockReason { kHeld, kPidGone, kPidReused, kOtherBoot, kExpired, kUnreadable };

// "held", "pid gone", "pid reused", "other boot", "expired", "unreadable".
std::string_view ReasonName(LockReason reason);

struct LockVerdict {
  bool stale = false;
  LockReason reason = LockReason::kHeld;
  std::string detail;  // e.g. "daemon pid 12 gone; job pid 40 reused", "owner unknown"
};

struct JudgeContext {
  ProcessTable* processes = nullptr;  // this host's
  int64_t now_ms = 0;
  std::string my_host;
  std::string my_boot_id;
  int64_t grace_ms = 60'000;
};

// `owner` absent means the blob could not be read or parsed.
LockVerdict JudgeLock(const std::optional<LockOwner>& owner, const JudgeContext& ctx);
inline LockVerdict JudgeLock(const LockEntry& entry, const JudgeContext& ctx) {
  return JudgeLock(entry.owner, ctx);
}
inline LockVerdict JudgeLock(const LockEntry& entry, ProcessTable& processes, int64_t now_ms,
                             const std::string& my_host, const std::string& my_boot_id,
                             int64_t grace_ms) {
  return JudgeLock(entry.owner, JudgeContext{&processes, now_ms, my_host, my_boot_id, grace_ms});
}

// The write-ahead record of one reap or forced release, committed to the
// store (RunStore::RecordLockReap) before the ref is deleted by
// compare-and-swap on `blob`: who reaped which lock, seen at which blob, and
// why. Its JSON form is the record's value (docs/design/wtctl.md).
struct ReapRecord {
  std::string repo;
  std::string name;  // <worktree-id>/<job>/<sha>
  std::string ref;
  std::string blob;
  std::string reason;  // "pid gone (daemon pid 12 gone)", "released by hand by ..."
  std::string by;      // "locks reap", "recover", "run 42", "released by hand by ..."
  int64_t at_ms = 0;

  std::string ToJson() const;
};

}  // namespace wtd::locks

#endif  // WTD_LOCKS_STALE_H_
