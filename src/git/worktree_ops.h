// The git side of daemon-owned worktrees (docs/design/worktrees.md): adding
// a detached worktree, moving one to another commit, and the pieces a
// rollback removes one by one (admin entry, branch). libgit2 only; no
// libgit2 type appears here.
//
// libgit2 1.5's git_worktree_add has no rollback of its own and, without a
// branch to check out, creates one named after the worktree. So
// AddDetachedWorktree names the branch itself (the caller records it
// before), creates it at the base commit, adds the worktree on it, detaches
// the new worktree's HEAD and deletes the branch; a crash anywhere in
// between leaves only pieces the caller's record names.
//
// Thread-safety: plain functions; each opens its own repository handles.
// Two calls on one worktree at once are the caller's to prevent.
#ifndef WTD_GIT_WORKTREE_OPS_H_
#define WTD_GIT_WORKTREE_OPS_H_

#include <string>
#include <vector>

#include "wtd/status.h"

namespace wtd {

// The repository's common git directory (".git" of the main worktree, or
// the bare/separate git dir), without a trailing '/'.
Result<std::string> GitCommonDir(const std::string& repo);

// Adds the worktree `name` (its admin entry <common>/worktrees/<name>) at
// `path` (which must not exist), detached at `sha`: branch `branch`
// (refs/heads/<branch>, which must not exist: Aborted) is created at `sha`,
// the worktree added on it, its HEAD detached at `sha`, the branch deleted.
// Errors name the step; what the failed step left is the caller's to roll
// back.
Status AddDetachedWorktree(const std::string& repo, const std::string& name,
                           const std::string& path, const std::string& branch,
                           const std::string& sha);

// Moves the worktree at `path` to `sha`: a forced checkout from its HEAD's
// tree (only what differs is written; untracked and ignored files are
// removed; local changes are discarded), then HEAD detached at `sha`.
Status CheckoutDetached(const std::string& path, const std::string& sha);

// The commit `ref` (any revision git understands: HEAD, a branch, a sha)
// names in the repository at `repo`, as 40 hex digits.
Result<std::string> ResolveCommit(const std::string& repo, const std::string& ref);

// One entry of <common>/worktrees/.
struct AdminEntry {
  std::string name;
  std::string dir;     // <common>/worktrees/<name>
  std::string gitdir;  // the contents of its `gitdir` file: <worktree>/.git ("" if unreadable)
  bool locked = false;
  std::string lock_reason;  // the `locked` file's contents
};
// Every admin entry; none when <common>/worktrees does not exist.
Result<std::vector<AdminEntry>> ListAdminEntries(const std::string& repo);

// Removes <common>/worktrees/<name> with everything in it (its `locked`
// file included). OK when it does not exist. InvalidArgument for a name
// that is empty, ".", ".." or holds '/'.
Status RemoveAdminEntry(const std::string& repo, const std::string& name);

// Removes the lock files git leaves in the admin entry of worktree `name`
// when a process dies while writing them (HEAD.lock, index.lock,
// ORIG_HEAD.lock). Only for a worktree no other process may be using.
// Returns how many it removed.
Result<int> RemoveWorktreeLockFiles(const std::string& repo, const std::string& name);

// Removes <common>/refs/heads/<branch>.lock, which a process killed while
// writing the branch leaves behind. Only for a branch no other process
// writes. Returns whether there was one.
Result<bool> RemoveBranchLockFile(const std::string& repo, const std::string& branch);

// Deletes refs/heads/<branch> when it points at `sha`; returns whether it
// did. False (OK) when it is absent or points elsewhere.
Result<bool> DeleteBranchIfAt(const std::string& repo, const std::string& branch,
                              const std::string& sha);
// Whether refs/heads/<branch> exists.
Result<bool> BranchExists(const std::string& repo, const std::string& branch);

// Checks the worktree `name` at `path` on disk: its admin entry present and
// naming <path>/.git, <path>/.git naming the admin entry back, HEAD
// readable. Returns HEAD's sha; FailedPrecondition saying what is damaged.
Result<std::string> VerifyWorktree(const std::string& repo, const std::string& name,
                                   const std::string& path);

}  // namespace wtd

#endif  // WTD_GIT_WORKTREE_OPS_H_
