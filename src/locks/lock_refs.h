// LockRefs: locks as git refs in one repository (docs/design/locks.md).
//
// Lock `<worktree-id>/<job>/<sha>` is the ref `<root>/<worktree-id>/<job>/<sha>`
// pointing at a blob that holds its LockOwner as JSON. Every write is a
// compare-and-swap done by libgit2 under the ref's `.lock` file, so several
// daemons (processes, hosts sharing the repository) can race on one lock and
// exactly one wins:
//   Create  makes the ref only if it does not exist (never forced);
//   Update  moves it only if it still points at the blob the caller saw;
//   Delete  removes it only if it still points at the blob the caller saw.
// Nothing here decides whether a lock may be taken over: that is JudgeLock
// (stale.h) and the caller's write-ahead record.
//
// Durability: when Create or Update returns OK, the blob, the ref and every
// directory entry leading to them are on disk (fsynced); when Delete returns
// OK the removal is (see "What is fsynced" in locks.md).
//
// The Status codes callers act on (each means one thing in every call):
//   OK                  done
//   Busy                Create: the lock exists (someone holds it; Read it)
//   Aborted             Update/Delete: the ref points at another blob (lost the CAS)
//   NotFound            Update/Delete/Read: no such ref (Delete: treat as done)
//   FailedPrecondition  the ref's `.lock` file is there: another writer is changing
//                       this ref right now (retry), or one that crashed left it
//                       less than stale_ref_lock_ms ago
//   InvalidArgument     an invalid lock name, blob id or root
//   IOError, ...        the repository or disk failed
// Every message names the repository and the ref.
//
// Thread-safety: thread-safe. One libgit2 handle, used under the object's
// mutex, so calls on one LockRefs run one at a time. For parallel writers
// open several LockRefs (or several processes): they coordinate through the
// ref files exactly as separate daemons do.
#ifndef WTD_LOCKS_LOCK_REFS_H_
#define WTD_LOCKS_LOCK_REFS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "locks/lock_name.h"
#include "locks/lock_owner.h"
#include "wtd/status.h"

namespace wtd::locks {

class GitHandle;

inline bool IsHeld(const Status& s) { return s.IsBusy(); }
inline bool IsChanged(const Status& s) { return s.IsAborted(); }
inline bool IsRefLockFilePresent(const Status& s) { return s.IsFailedPrecondition(); }

// One lock ref as read from the repository.
struct LockEntry {
  std::string ref;                 // full ref name
  std::optional<LockName> name;    // absent when the ref's name is not a lock name
  std::string blob;                // 40-hex id the ref points at
  std::optional<LockOwner> owner;  // absent when unreadable
  std::string error;               // why name or owner is absent; empty otherwise

  bool readable() const { return owner.has_value(); }
};

struct LockRefsOptions {
  std::string locks_root = kDefaultLocksRoot;
  // A ref's `.lock` file older than this (by its mtime) was left by a writer
  // killed mid-write: it is removed and the write tried once more (for the
  // notes ref too). A live writer holds one for milliseconds. <= 0: never.
  int64_t stale_ref_lock_ms = 60'000;
};

class LockRefs {
 public:
  // Opens the repository containing `repo_path` (any path inside it or one
  // of its worktrees; bare repositories too). Turns on libgit2's
  // GIT_OPT_ENABLE_FSYNC_GITDIR for the process first (once; it is
  // process-wide and stays on). InvalidArgument for a bad locks root,
  // NotFound when `repo_path` is not in a repository.
  static Result<std::unique_ptr<LockRefs>> Open(const std::string& repo_path,
                                                LockRefsOptions options = {});
  ~LockRefs();
  LockRefs(const LockRefs&) = delete;
  LockRefs& operator=(const LockRefs&) = delete;

  const std::string& repo_path() const { return repo_path_; }
  const std::string& locks_root() const { return options_.locks_root; }
  const LockRefsOptions& options() const { return options_; }

  // Writes the owner blob and creates the ref pointing at it, only if the ref
  // does not exist. Returns the blob id (BlobIdOf(owner)). Busy when the
  // lock exists.
  Result<std::string> Create(const LockName& name, const LockOwner& owner);

  // Points the ref at a new blob for `new_owner`, only if it points at
  // `expected_blob` now. Returns the new blob id. Aborted when it points
  // elsewhere, NotFound when it is gone.
  Result<std::string> Update(const LockName& name, const std::string& expected_blob,
                             const LockOwner& new_owner);

  // Deletes the ref only if it points at `expected_blob` (loose or packed).
  // Aborted (ref untouched) when it points elsewhere, NotFound when it is gone.
  Status Delete(const LockName& name, const std::string& expected_blob);

  // The lock as it is now. NotFound when there is no such ref; an unreadable
  // blob is an entry without owner, not an error.
  Result<LockEntry> Read(const LockName& name);

  // Every ref under the locks root, sorted by ref name. A ref whose name or
  // blob cannot be read is listed with its error.
  Result<std::vector<LockEntry>> List();

 private:
  friend struct ReceiptsAccess;  // receipts.cc uses the same handle and mutex

  LockRefs(std::unique_ptr<GitHandle> git, std::string repo_path, LockRefsOptions options);
  // "repository PATH, ref REF: " prefix for messages.
  std::string Where(const std::string& ref) const;
  Result<std::string> WriteBlob(const std::string& ref, const LockOwner& owner) REQUIRES(mu_);
  Result<LockEntry> ReadRef(const std::string& ref) REQUIRES(mu_);
  // Removes `ref`'s `.lock` file if it is older than
  // options_.stale_ref_lock_ms; true when the write may be tried again.
  bool StaleLockRemoved(const std::string& ref) REQUIRES(mu_);

  mutable Mutex mu_;
  std::unique_ptr<GitHandle> git_ PT_GUARDED_BY(mu_);
  const std::string repo_path_;
  const LockRefsOptions options_;
};

}  // namespace wtd::locks

#endif  // WTD_LOCKS_LOCK_REFS_H_
