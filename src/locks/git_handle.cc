#include "locks/git_handle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <mutex>

namespace wtd::locks {

void InitLibgit2() {
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });
}

Status EnableGitdirFsyncOnce() {
  InitLibgit2();
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] { rc = git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1); });
  if (rc < 0) return GitError(rc, "set GIT_OPT_ENABLE_FSYNC_GITDIR");
  return Status::OK();
}

Status GitError(int code, std::string_view what) {
  const git_error* err = git_error_last();
  std::string msg(what);
  msg += ": ";
  msg += (err != nullptr && err->message != nullptr) ? err->message : "unknown libgit2 error";
  msg += " (libgit2 error " + std::to_string(code) + ")";
  switch (code) {
    case GIT_ENOTFOUND:
      return Status::NotFound(std::move(msg));
    case GIT_EEXISTS:
      return Status::Busy(std::move(msg));
    case GIT_EMODIFIED:
      return Status::Aborted(std::move(msg));
    case GIT_ELOCKED:
    case GIT_EOWNER:
      return Status::FailedPrecondition(std::move(msg));
    case GIT_EINVALIDSPEC:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::IOError(std::move(msg));
  }
}

std::string OidToString(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return std::string(buf);
}

Status ParseOid(const std::string& hex, std::string_view what, git_oid* out) {
  bool ok = hex.size() == GIT_OID_HEXSZ;
  for (char c : hex) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok || git_oid_fromstr(out, hex.c_str()) != 0) {
    return Status::InvalidArgument(std::string(what) + " '" + hex + "' is not a 40-hex object id");
  }
  return Status::OK();
}

namespace {

Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open directory " + dir + " to fsync it", errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return Status::FromErrno("fsync directory " + dir, err);
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<GitHandle>> GitHandle::Open(const std::string& path) {
  WTD_RETURN_IF_ERROR(EnableGitdirFsyncOnce());
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), 0, nullptr);
  RepoPtr repo(raw);
  if (rc < 0) return GitError(rc, "open repository " + path);
  std::string common = git_repository_commondir(repo.get());
  while (common.size() > 1 && common.back() == '/') common.pop_back();
  return std::unique_ptr<GitHandle>(new GitHandle(std::move(repo), path, std::move(common)));
}

GitHandle::GitHandle(RepoPtr repo, std::string path, std::string common_dir)
    : repo_(std::move(repo)), path_(std::move(path)), common_dir_(std::move(common_dir)) {}

Status GitHandle::SyncDirsTo(const std::string& rel_file) {
  // Every '/' of rel_file ends one directory D; D's entry lives in its parent.
  for (size_t slash = rel_file.find('/'); slash != std::string::npos;
       slash = rel_file.find('/', slash + 1)) {
    std::string rel_dir = rel_file.substr(0, slash);
    std::string dir = common_dir_ + "/" + rel_dir;
    struct statx stx {};
    if (statx(AT_FDCWD, dir.c_str(), 0, STATX_INO | STATX_BTIME, &stx) != 0) {
      return Status::FromErrno("statx " + dir, errno);
    }
    bool has_btime = (stx.stx_mask & STATX_BTIME) != 0;
    DirId id{stx.stx_dev_major * 4096ul + stx.stx_dev_minor, stx.stx_ino, stx.stx_btime.tv_sec,
             stx.stx_btime.tv_nsec};
    auto it = synced_.find(rel_dir);
    if (has_btime && it != synced_.end() && it->second == id) continue;
    std::string parent = dir.substr(0, dir.find_last_of('/'));
    WTD_RETURN_IF_ERROR(FsyncDir(parent));
    if (has_btime) synced_[rel_dir] = id;
  }
  return Status::OK();
}

Status GitHandle::SyncParentOf(const std::string& rel_file) {
  std::string path = common_dir_ + "/" + rel_file;
  return FsyncDir(path.substr(0, path.find_last_of('/')));
}

Result<bool> GitHandle::RemoveStaleRefLock(const std::string& ref, int64_t older_than_ms) {
  if (older_than_ms <= 0) return false;
  std::string path = common_dir_ + "/" + ref + ".lock";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return Status::IOError(Where() + ": stat " + path + ": " + std::strerror(errno));
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t age_ms = (static_cast<int64_t>(now.tv_sec) - st.st_mtim.tv_sec) * 1000 +
                   (now.tv_nsec - st.st_mtim.tv_nsec) / 1'000'000;
  if (age_ms <= older_than_ms) return false;
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;  // its writer finished meanwhile
    return Status::IOError(Where() + ": remove the stale " + path + ": " + std::strerror(errno));
  }
  WTD_RETURN_IF_ERROR(SyncParentOf(ref + ".lock"));
  return true;
}

}  // namespace wtd::locks
