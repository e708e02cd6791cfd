// Internal helpers of the git module: one-time libgit2 initialisation, the
// conversion of libgit2 error codes to Status, oid parsing and RAII owners for
// libgit2 objects. Only src/git/*.cc include this header; libgit2 types never
// reach the module's public header.
//
// Thread-safety: InitLibgit2 may be called from any thread; the rest are plain
// functions over caller-owned values.
#ifndef WTD_GIT_GIT_UTIL_H_
#define WTD_GIT_GIT_UTIL_H_

#include <git2.h>

#include <memory>
#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd::git {

// Calls git_libgit2_init() exactly once per process (never shut down, so
// handles may outlive any particular user).
void InitLibgit2();

// Converts libgit2 return code `code` (< 0) to a Status whose message is
// "<what>: <git_error_last()->message>". GIT_ENOTFOUND and GIT_EUNBORNBRANCH
// map to NotFound, GIT_EINVALIDSPEC/GIT_EAMBIGUOUS to InvalidArgument,
// GIT_EOWNER (safe.directory ownership check) to FailedPrecondition,
// GIT_ELOCKED to Busy, GIT_EEXISTS/GIT_EMODIFIED to Aborted, anything else to
// IOError.
Status GitError(int code, std::string_view what);

// Parses a full 40-hex sha. InvalidArgument naming `sha` otherwise.
Status ParseOid(const std::string& sha, git_oid* out);

// The 40-hex form of `oid`.
std::string OidToString(const git_oid* oid);

// realpath(3) of `path`; NotFound/IOError naming `path` when it fails.
Result<std::string> RealPath(const std::string& path);

// `path` without trailing '/' (but "/" stays "/").
std::string StripTrailingSlash(std::string path);

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const { Free(p); }
};

using RepoPtr = std::unique_ptr<git_repository, GitFree<git_repository, git_repository_free>>;
using WorktreePtr = std::unique_ptr<git_worktree, GitFree<git_worktree, git_worktree_free>>;
using ReferencePtr = std::unique_ptr<git_reference, GitFree<git_reference, git_reference_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitFree<git_commit, git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, GitFree<git_tree, git_tree_free>>;
using TreeEntryPtr = std::unique_ptr<git_tree_entry, GitFree<git_tree_entry, git_tree_entry_free>>;
using BlobPtr = std::unique_ptr<git_blob, GitFree<git_blob, git_blob_free>>;
using DiffPtr = std::unique_ptr<git_diff, GitFree<git_diff, git_diff_free>>;

// Owns the strings of a git_strarray filled by libgit2.
class StrArray {
 public:
  StrArray() = default;
  ~StrArray() { git_strarray_dispose(&array_); }
  StrArray(const StrArray&) = delete;
  StrArray& operator=(const StrArray&) = delete;
  git_strarray* get() { return &array_; }
  size_t size() const { return array_.count; }
  const char* operator[](size_t i) const { return array_.strings[i]; }

 private:
  git_strarray array_ = {nullptr, 0};
};

}  // namespace wtd::git

#endif  // WTD_GIT_GIT_UTIL_H_
