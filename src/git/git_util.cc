#include "git/git_util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <mutex>

namespace wtd::git {

void InitLibgit2() {
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });
}

Status GitError(int code, std::string_view what) {
  const git_error* err = git_error_last();
  std::string msg(what);
  msg += ": ";
  msg += (err != nullptr && err->message != nullptr) ? err->message : "unknown libgit2 error";
  msg += " (libgit2 error " + std::to_string(code) + ")";
  switch (code) {
    case GIT_ENOTFOUND:
    case GIT_EUNBORNBRANCH:
      return Status::NotFound(std::move(msg));
    case GIT_EINVALIDSPEC:
    case GIT_EAMBIGUOUS:
      return Status::InvalidArgument(std::move(msg));
    case GIT_EOWNER:
      return Status::FailedPrecondition(std::move(msg));
    case GIT_ELOCKED:
      return Status::Busy(std::move(msg));
    case GIT_EEXISTS:
    case GIT_EMODIFIED:
      return Status::Aborted(std::move(msg));
    default:
      return Status::IOError(std::move(msg));
  }
}

Status ParseOid(const std::string& sha, git_oid* out) {
  bool hex = sha.size() == GIT_OID_HEXSZ;
  for (char c : sha) {
    hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
  }
  if (!hex || git_oid_fromstr(out, sha.c_str()) != 0) {
    return Status::InvalidArgument("not a 40-hex commit sha: '" + sha + "'");
  }
  return Status::OK();
}

std::string OidToString(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof(buf), oid);
  return std::string(buf);
}

Result<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Status::NotFound("path does not exist: " + path);
    }
    return Status::FromErrno("realpath " + path, err);
  }
  return std::string(buf);
}

std::string StripTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace wtd::git
