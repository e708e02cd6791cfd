// What the lock commands (locks, recover) share: every lock seen from this
// store — its lease rows and the lock refs of each watched repository — with
// the stale verdict of each, and the write-ahead reap of one
// (docs/design/locks.md, "Operator commands").
//
// Thread-safety: plain functions; what they reach through CommandContext is
// thread-safe (RunStore, LockRefs), so handlers may call them concurrently.
#ifndef WTD_COMMANDS_LOCK_OPS_H_
#define WTD_COMMANDS_LOCK_OPS_H_

#include <optional>
#include <string>
#include <vector>

#include "commands/command.h"
#include "locks/lock_owner.h"
#include "locks/stale.h"

namespace wtd {

// One lock: a ref, a lease row of this store, or both.
struct LockRow {
  std::string name;  // <worktree-id>/<job>/<sha>
  std::string ref;   // full ref name under the locks root
  std::string repo;
  bool ref_present = false;
  std::string blob;                       // what the ref points at ("" without ref)
  std::optional<locks::LockOwner> owner;  // the blob's, else the lease's; absent: unreadable
  std::optional<Lease> lease;             // this store's row at (repo, name)
  bool foreign = false;                   // a ref with no lease of this store behind it
  locks::LockVerdict verdict;
};

struct LockListing {
  std::vector<LockRow> locks;       // by repo, then name
  std::vector<std::string> errors;  // repositories that could not be read
};

// The repositories to look in: WatchedRepos() and the repos of the lease
// rows, sorted, duplicates dropped.
Result<std::vector<std::string>> LockRepos(const CommandContext& ctx);

// Every lock: each ref under the locks root of each repository, matched with
// this store's lease row at the same (repo, name); then each lease row
// without a ref. A repository that cannot be opened or listed is named in
// `errors`; a lease listing that fails fails the call.
Result<LockListing> CollectLocks(const CommandContext& ctx);

// {name, ref, repo, ref_present, blob, owner: {...} | null, token,
//  acquired_at, expires_at, age_ms (now - acquired), stale, reason, detail,
//  foreign, lease: null | {state, run_id, token}}.
json LockRowToJson(const LockRow& row, int64_t now_ms);

// Who asked for a forced release: from the request's `by` field.
struct Requester {
  int64_t uid = -1;
  std::string user;
  int64_t pid = 0;
  std::string ToString() const;  // "uid 1000 (alice) pid 4242"
};
json RequesterJson();  // this process's uid, user and pid, for a request
Requester RequesterOf(const json& args);

// Reaps `row`'s ref: commits a reap record (meta key
// "lock_reap/<repo>\x1f<name>\x1f<blob>": {repo, name, ref, blob, reason,
// by, at_ms}) first, then deletes the ref by compare-and-swap on row.blob,
// then, when this store's lease row is behind that blob and its run no
// longer holds it, marks it releasing and drops it. Returns what was done
// ("ref deleted; lease token 7 dropped"). Aborted when the ref moved since it
// was read (nothing deleted); NotFound of the ref counts as done.
Result<std::string> ReapLock(const CommandContext& ctx, const LockRow& row,
                             const std::string& reason, const std::string& by);

}  // namespace wtd

#endif  // WTD_COMMANDS_LOCK_OPS_H_
