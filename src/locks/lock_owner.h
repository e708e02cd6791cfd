// LockOwner: who holds a lock, as the JSON blob a lock ref points at
// (docs/design/locks.md, "The owner blob").
//
// The encoding is deterministic — the same owner always gives the same
// bytes — so the blob id is known before anything is written (BlobIdOf).
// Parsing is strict: every required field must be there with the right JSON
// type and range, else Corruption naming the field; fields it does not know
// are ignored (a newer writer may add some); a `version` newer than
// kLockOwnerVersion is refused (NotSupported): such a lock is unreadable to
// this build.
//
// Thread-safety: plain values and functions.
#ifndef WTD_LOCKS_LOCK_OWNER_H_
#define WTD_LOCKS_LOCK_OWNER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd::locks {

inline constexpr uint32_t kLockOwnerVersion = 1;

struct LockOwner {
  uint32_t version = kLockOwnerVersion;
  std::string host;             // gethostname(2) of the owner daemon
  std::string boot_id;          // /proc/sys/kernel/random/boot_id there
  int32_t pid = 0;              // the owner daemon
  uint64_t pid_start_time = 0;  // its start time (clock ticks since boot)
  uint64_t incarnation = 0;     // of the owner's state store
  uint64_t run_id = 0;
  uint64_t token = 0;  // fencing token of the lease
  int64_t acquired_at_ms = 0;
  int64_t expires_at_ms = 0;
  // The job's process once it runs; 0 (and absent from the JSON) before.
  int32_t job_pid = 0;
  uint64_t job_start_time = 0;

  friend bool operator==(const LockOwner&, const LockOwner&) = default;
};

// The blob's bytes: one JSON object on one line, keys in the order of the
// struct, then "\n". job_pid and job_start_time are written only when
// job_pid != 0.
std::string EncodeOwner(const LockOwner& owner);

// Parses a blob. Corruption "lock owner: ..." naming the field for a missing
// or mistyped field, an out-of-range number, an empty host, a pid <= 0, or
// text that is not one JSON object; NotSupported for a newer version.
Result<LockOwner> ParseOwner(std::string_view blob);

// The git blob id (40 hex) of EncodeOwner(owner), hashed the way libgit2
// would store it (git_odb_hash), without writing anything.
Result<std::string> BlobIdOf(const LockOwner& owner);

}  // namespace wtd::locks

#endif  // WTD_LOCKS_LOCK_OWNER_H_
