#include "locks/lock_name.h"

#include <git2.h>

#include <vector>

#include "locks/git_handle.h"

namespace wtd::locks {
namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    parts.push_back(
        s.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return parts;
    start = slash + 1;
  }
}

// True when git accepts `ref` as it is: valid and already in normal form.
bool GitAcceptsRef(const std::string& ref) {
  InitLibgit2();
  int valid = 0;
  if (git_reference_name_is_valid(&valid, ref.c_str()) < 0 || !valid) return false;
  char normalized[1024];
  if (git_reference_normalize_name(normalized, sizeof normalized, ref.c_str(),
                                   GIT_REFERENCE_FORMAT_NORMAL) < 0) {
    return false;
  }
  return ref == normalized;
}

// One part of a lock name: non-empty, not `.` or `..`, no `/`, and valid in
// a ref under `root`.
Status CheckPart(const std::string& root, const char* what, const std::string& part) {
  std::string quoted = std::string(what) + " '" + part + "'";
  if (part.empty())
    return Status::InvalidArgument(std::string("invalid lock name: ") + what + " is empty");
  if (part == "." || part == "..")
    return Status::InvalidArgument("invalid lock name: " + quoted + " is a dot part");
  if (part.find('/') != std::string::npos) {
    return Status::InvalidArgument("invalid lock name: " + quoted + " contains '/'");
  }
  if (!GitAcceptsRef(root + "/" + part)) {
    return Status::InvalidArgument("invalid lock name: " + quoted +
                                   " is not allowed in a git ref name (git check-ref-format)");
  }
  return Status::OK();
}

Status CheckRefRoot(const std::string& root, const char* what, const std::string& prefix,
                    size_t min_parts) {
  std::string quoted = std::string(what) + " '" + root + "'";
  if (root.compare(0, prefix.size(), prefix) != 0) {
    return Status::InvalidArgument(quoted + " does not start with '" + prefix + "'");
  }
  std::vector<std::string> parts = Split(root);
  if (parts.size() < min_parts) return Status::InvalidArgument(quoted + " has too few parts");
  for (const std::string& p : parts) {
    if (p.empty() || p == "." || p == "..") {
      return Status::InvalidArgument(quoted + " has an empty, '.' or '..' part");
    }
  }
  if (!GitAcceptsRef(root)) {
    return Status::InvalidArgument(quoted + " is not a valid git ref name (git check-ref-format)");
  }
  return Status::OK();
}

}  // namespace

Status ValidateLocksRoot(const std::string& root) {
  return CheckRefRoot(root, "locks root", "refs/", 2);
}

Status ValidateNotesRef(const std::string& ref) {
  return CheckRefRoot(ref, "notes ref", "refs/notes/", 3);
}

Status ValidateSha(const std::string& sha) {
  bool hex = sha.size() == 40;
  for (char c : sha) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex) return Status::InvalidArgument("'" + sha + "' is not a 40-digit lowercase hex sha");
  return Status::OK();
}

Result<std::string> LockRefName(const std::string& root, const LockName& name) {
  WTD_RETURN_IF_ERROR(ValidateLocksRoot(root));
  WTD_RETURN_IF_ERROR(CheckPart(root, "worktree id", name.worktree_id));
  WTD_RETURN_IF_ERROR(CheckPart(root, "job", name.job));
  Status sha = ValidateSha(name.sha);
  if (!sha.ok()) return Status::InvalidArgument("invalid lock name: sha " + sha.message());
  std::string ref = root + "/" + name.ToString();
  // Each part passed on its own; the whole is checked once more so that
  // nothing but exactly this ref under the root can come out.
  if (!GitAcceptsRef(ref) || ref.compare(0, root.size() + 1, root + "/") != 0) {
    return Status::InvalidArgument("invalid lock name: ref '" + ref + "' is not a valid git ref");
  }
  return ref;
}

Result<LockName> ParseLockName(const std::string& root, const std::string& text) {
  std::vector<std::string> parts = Split(text);
  if (parts.size() != 3) {
    return Status::InvalidArgument("lock name '" + text +
                                   "' is not <worktree-id>/<job>/<sha> (3 parts)");
  }
  LockName name{parts[0], parts[1], parts[2]};
  WTD_ASSIGN_OR_RETURN(std::string ref, LockRefName(root, name));
  (void)ref;
  return name;
}

Result<LockName> ParseLockRef(const std::string& root, const std::string& ref) {
  std::string prefix = root + "/";
  if (ref.compare(0, prefix.size(), prefix) != 0) {
    return Status::InvalidArgument("ref '" + ref + "' is not under the locks root '" + root + "'");
  }
  Result<LockName> name = ParseLockName(root, ref.substr(prefix.size()));
  if (!name.ok()) return name.status().WithContext("ref '" + ref + "'");
  return name;
}

}  // namespace wtd::locks
