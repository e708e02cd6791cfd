// git::Repository: a thin libgit2 adapter for the poller. It opens one
// repository by any path inside any of its worktrees, enumerates worktrees,
// reads each worktree's HEAD through kept-open handles, walks new commits and
// reads job files from commit trees. It never runs the git CLI.
//
// Every error is a Status naming the repository path, ref or sha that failed
// plus libgit2's own message. A repository deleted after Open gives NotFound
// or IOError from every call, never a crash; Open it again once it is back.
//
// Thread-safety: a Repository is not thread-safe; one thread uses it. Distinct
// Repository objects may be used from different threads.
#ifndef WTD_GIT_REPOSITORY_H_
#define WTD_GIT_REPOSITORY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "git/file_stamp.h"
#include "wtd/status.h"

struct git_repository;

namespace wtd::git {

struct WorktreeInfo {
  std::string id;  // "main" for the main worktree, else the admin name under <commondir>/worktrees/
  std::string path;    // absolute worktree root, no trailing slash
  std::string gitdir;  // absolute: <commondir> for main, <commondir>/worktrees/<id> for linked
  bool is_main = false;
};

struct HeadInfo {
  std::string sha;     // 40 hex; empty when HEAD is unborn (no commits yet)
  std::string branch;  // short name ("main", "feature/x"); empty when detached
  bool detached = false;
};

struct CommitInfo {
  std::string sha;
  std::vector<std::string> parents;
  std::string author_name, author_email;
  int64_t time_s = 0;   // committer time, seconds since epoch
  std::string subject;  // first line of the message
  std::string message;  // full message
};

// One commit of a NewHistory.
struct WalkedCommit {
  std::string sha;
  std::vector<std::string> parents;  // every parent, readable or not
  int64_t time_s = 0;                // committer time
};

// What Repository::WalkNew found.
struct NewHistory {
  std::vector<WalkedCommit> commits;  // the new commits, oldest first
  // Commits older than min_time_s met first on the way back from `head`:
  // they and their ancestors count as processed.
  std::vector<std::string> cut_off;
  // Where history ended early: "SHA: reason" (shallow boundary, a parent
  // that cannot be read).
  std::vector<std::string> truncated;
  size_t unknown_hidden = 0;  // shas of `hide` that name no readable commit
  size_t visited = 0;         // commits read by the walk (for tests and benchmarks)
};

// Sets GIT_OPT_ENABLE_FSYNC_GITDIR (off by default in libgit2): with it on,
// refs and objects libgit2 writes are fsynced. Process-wide.
Status EnableGitdirFsync(bool on);

// One repository opened by any path inside any of its worktrees. Keeps
// libgit2 handles open (repository + one per worktree, cached by gitdir) so a
// HEAD read costs microseconds. Not thread-safe: one thread uses it.
//
// Bare repositories are not supported (Open gives NotSupported).
class Repository {
 public:
  // Opens the repository containing `path` (searching upwards). All paths
  // are resolved with realpath. NotFound when `path` is not inside a
  // repository.
  //
  // root() is libgit2's work dir for the main worktree, taken from the
  // handle that found it: when `path` is in the main worktree, through its
  // `.git` (a directory, or a file naming a separate git dir). From a linked
  // worktree (or the git dir itself) libgit2 can only guess the git dir's
  // parent; that guess is taken when core.worktree names it or its `.git`
  // leads back to the same git dir, and otherwise Open gives NotSupported:
  // a git dir made with `--separate-git-dir` does not record its work tree.
  static Result<std::unique_ptr<Repository>> Open(const std::string& path);

  ~Repository();
  Repository(const Repository&) = delete;
  Repository& operator=(const Repository&) = delete;

  const std::string& root() const { return root_; }              // main worktree root
  const std::string& common_dir() const { return common_dir_; }  // the common .git dir
  // The worktree containing the path given to Open (its id); "main" if it is the main one.
  const std::string& opened_worktree_id() const { return opened_worktree_id_; }

  // Main worktree first, then linked ones sorted by id. A linked worktree
  // whose directory is missing (prunable) is skipped. Worktrees added,
  // removed or moved since the last call are seen: the list is read again
  // unless <commondir>/worktrees, every admin dir's `gitdir` file and every
  // worktree directory stamp the same as when it was last read (FileStamps).
  // NotFound when the repository itself has vanished.
  Result<std::vector<WorktreeInfo>> ListWorktrees();

  // HEAD of one worktree, through a cached handle (re-opened when the
  // worktree's path changed or the last read failed). The HEAD file,
  // packed-refs and the branch's loose ref are stamped before each read; while
  // they stamp the same, the last answer is returned without reading.
  // REQUIRES: `wt` came from ListWorktrees() of this repository.
  Result<HeadInfo> ReadHead(const WorktreeInfo& wt);

  // The worktree whose id is `id` ("main": the main worktree) as
  // ListWorktrees lists it now, wherever it was moved. nullopt when it is
  // gone: a linked worktree whose admin entry <commondir>/worktrees/<id> no
  // longer exists (removed or pruned). FailedPrecondition when the entry is
  // still there but the worktree is not listed (its directory is missing:
  // mid-move, or deleted without `git worktree remove`); the repository's own
  // errors as from ListWorktrees.
  Result<std::optional<WorktreeInfo>> FindWorktree(const std::string& id);

  // How many times the worktree list and a HEAD were actually read (not
  // answered from stamps). For tests and benchmarks.
  uint64_t worktree_list_reads() const { return list_reads_; }
  uint64_t head_reads() const { return head_reads_; }

  // NotFound when `sha` names no commit; InvalidArgument when it is not 40 hex.
  Result<CommitInfo> LookupCommit(const std::string& sha);

  // The commits reachable from `head` and from none of `hide`, oldest first
  // (every commit after its parents that are in the set; ties by committer
  // time, then sha), with the shallow boundary and unreadable parents taken
  // as the end of history. With min_time_s > 0, a commit older than it is
  // cut off like a hidden one, together with everything behind it, and
  // named in `NewHistory::cut_off`. A sha in `hide` that names no readable
  // commit (collected away) is ignored and counted. NotFound when `head`
  // cannot be read. See docs/design/loop.md for how the poller uses it.
  Result<NewHistory> WalkNew(const std::string& head, const std::vector<std::string>& hide,
                             int64_t min_time_s);

  // NotFound naming the repository when its common dir is gone: a read
  // error with it present is the object's own problem, not the repository's.
  Status CheckPresent() const;

  // Paths (repo-relative, '/'-separated, sorted, unique) changed by commit
  // `sha` against its first parent (a root commit: every file in its tree).
  // A rename counts as both paths.
  Result<std::vector<std::string>> ChangedPaths(const std::string& sha);

  // Blobs directly inside directory `dir` (repo-relative, e.g. "jobs" or
  // "ci/jobs"; "" is the root) of commit `sha`'s tree whose names end in
  // `suffix`: name -> content. Submodules are skipped. An absent dir (or a
  // dir that is a blob) gives an empty map, not an error.
  //
  // A symlink is followed within the same commit's tree: its target (the
  // blob's content) is resolved against the symlink's directory, `..`
  // included, through at most kMaxSymlinkHops links (symlinked directories on
  // the way count too), and must end at a regular or executable file. One
  // that cannot be followed (absolute target, leaving the tree, too long a
  // chain, dangling, a directory or submodule) is left out of the map and,
  // when `refused` is given, put there: name -> why, naming its target.
  Result<std::map<std::string, std::string>> ReadTreeFiles(
      const std::string& sha, const std::string& dir, const std::string& suffix,
      std::map<std::string, std::string>* refused = nullptr);
  static constexpr int kMaxSymlinkHops = 8;

  // Directories whose changes mean HEAD or a branch of `wt` may have moved:
  // wt.gitdir (HEAD lives there), <commondir> (packed-refs), and
  // <commondir>/refs/heads plus its existing subdirectories (inotify is not
  // recursive). Unique, in that order.
  std::vector<std::string> WatchDirs(const WorktreeInfo& wt) const;
  // The same for several worktrees of this repository: their gitdirs, then
  // the shared directories once.
  std::vector<std::string> WatchDirs(const std::vector<WorktreeInfo>& wts) const;

 private:
  struct Closer {
    void operator()(git_repository* repo) const;
  };
  using Handle = std::unique_ptr<git_repository, Closer>;
  struct CachedWorktree {
    std::string path;
    Handle repo;
  };
  struct CachedHead {
    std::string path;  // the worktree's path when read
    FileStamps stamps;
    HeadInfo head;
  };

  Repository(Handle main, std::string root, std::string common_dir, std::string opened_id);

  // The handle for `wt`'s HEAD: main_ for the main worktree, else cached.
  Result<git_repository*> WorktreeHandle(const WorktreeInfo& wt);
  // Reads the worktree list (no stamps); `stamp` is called with each path
  // to stamp before the file is read.
  Result<std::vector<WorktreeInfo>> ReadWorktreeList(
      const std::function<void(const std::string&)>& stamp);

  Handle main_;  // opened at common_dir_; objects and refs are shared
  std::string root_;
  std::string common_dir_;
  std::string opened_worktree_id_;
  std::map<std::string, CachedWorktree> worktrees_;  // by gitdir
  FileStamps list_stamps_;                           // of list_
  std::vector<WorktreeInfo> list_;
  std::map<std::string, CachedHead> heads_;  // by gitdir
  uint64_t list_reads_ = 0, head_reads_ = 0;
};

// The main-worktree root of the repository containing `path` (for config
// defaults). NotFound when `path` is not inside a repository.
Result<std::string> ResolveRepoRoot(const std::string& path);

}  // namespace wtd::git

#endif  // WTD_GIT_REPOSITORY_H_
