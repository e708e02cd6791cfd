// Internal to the locks module (only src/locks/*.cc include it): libgit2
// set-up, error conversion, RAII owners, and GitHandle, the one repository
// handle a LockRefs holds, with the directory syncing that makes its writes
// durable (docs/design/locks.md, "What is fsynced").
//
// Thread-safety: InitLibgit2 and EnableGitdirFsyncOnce may be called from any
// thread. A GitHandle is used under its owner's mutex only.
#ifndef WTD_LOCKS_GIT_HANDLE_H_
#define WTD_LOCKS_GIT_HANDLE_H_

#include <git2.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd::locks {

// git_libgit2_init() once per process (never shut down).
void InitLibgit2();

// Turns on GIT_OPT_ENABLE_FSYNC_GITDIR for the whole process, once, before
// the first repository is opened: libgit2 1.5 reads it when a repository's
// ref database is first used (it then fsyncs a written loose ref, its
// directory and packed-refs) and at every loose object write (the object
// file and its fan-out directory).
Status EnableGitdirFsyncOnce();

// libgit2 error `code` (< 0) as a Status "<what>: <libgit2 message>":
// GIT_ENOTFOUND NotFound, GIT_EEXISTS Busy, GIT_EMODIFIED Aborted,
// GIT_ELOCKED FailedPrecondition, GIT_EINVALIDSPEC InvalidArgument, GIT_EOWNER
// FailedPrecondition, anything else IOError (the codes of lock_refs.h).
Status GitError(int code, std::string_view what);

std::string OidToString(const git_oid& oid);
// A 40-hex object id. InvalidArgument naming `what` otherwise.
Status ParseOid(const std::string& hex, std::string_view what, git_oid* out);

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const { Free(p); }
};
using RepoPtr = std::unique_ptr<git_repository, GitFree<git_repository, git_repository_free>>;
using ReferencePtr = std::unique_ptr<git_reference, GitFree<git_reference, git_reference_free>>;
using BlobPtr = std::unique_ptr<git_blob, GitFree<git_blob, git_blob_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitFree<git_commit, git_commit_free>>;
using NotePtr = std::unique_ptr<git_note, GitFree<git_note, git_note_free>>;
using SignaturePtr = std::unique_ptr<git_signature, GitFree<git_signature, git_signature_free>>;
using RefIteratorPtr =
    std::unique_ptr<git_reference_iterator,
                    GitFree<git_reference_iterator, git_reference_iterator_free>>;

// One opened repository and what is known to be on disk about its
// directories.
class GitHandle {
 public:
  // Opens the repository containing `path` (searching upwards), after
  // EnableGitdirFsyncOnce. Bare repositories are accepted.
  static Result<std::unique_ptr<GitHandle>> Open(const std::string& path);

  git_repository* repo() { return repo_.get(); }
  const std::string& path() const { return path_; }              // as given to Open
  const std::string& common_dir() const { return common_dir_; }  // no trailing '/'

  // Makes the entry of every directory between the common dir and
  // `<common dir>/<rel_file>` durable in its parent: for each such directory
  // D (`refs`, `refs/wtd`, ... down to the file's parent), fsync(parent of D)
  // unless this handle already did so for the same directory (same device,
  // inode and birth time: a directory removed and made again is synced
  // again). The file itself and its parent's entry for it are libgit2's
  // (with the fsync option on), or SyncParentOf's.
  Status SyncDirsTo(const std::string& rel_file);

  // fsync of the directory holding `<common dir>/<rel_file>` (an entry in it
  // was removed or replaced).
  Status SyncParentOf(const std::string& rel_file);

  // Removes `<common dir>/<ref>.lock` when its modification time is more
  // than `older_than_ms` before the wall clock (a writer killed mid-write
  // left it: a live writer holds one for milliseconds), then syncs its
  // directory. Returns whether it removed one. `older_than_ms` <= 0: never.
  Result<bool> RemoveStaleRefLock(const std::string& ref, int64_t older_than_ms);

  // Message prefix "repository PATH".
  std::string Where() const { return "repository " + path_; }

 private:
  struct DirId {
    unsigned long dev = 0, ino = 0;
    long long btime_s = 0;
    unsigned btime_ns = 0;
    bool operator==(const DirId&) const = default;
  };
  GitHandle(RepoPtr repo, std::string path, std::string common_dir);

  RepoPtr repo_;
  std::string path_;
  std::string common_dir_;
  std::map<std::string, DirId> synced_;  // relative dir -> identity whose entry was synced
};

}  // namespace wtd::locks

#endif  // WTD_LOCKS_GIT_HANDLE_H_
