#include "git/worktree_ops.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "git/git_util.h"

namespace wtd {
namespace {

using git::GitError;
using git::RepoPtr;

Result<RepoPtr> Open(const std::string& path) {
  git::InitLibgit2();
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc < 0) return GitError(rc, "open repository " + path);
  return RepoPtr(raw);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

bool ValidAdminName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// Whether `a` and `b` name one existing file (paths may differ by symlinks).
bool SamePath(const std::string& a, const std::string& b) {
  if (a == b) return true;
  Result<std::string> ra = git::RealPath(a), rb = git::RealPath(b);
  return ra.ok() && rb.ok() && *ra == *rb;
}

Result<git_object*> LookupCommit(git_repository* repo, const std::string& sha) {
  git_oid oid;
  WTD_RETURN_IF_ERROR(git::ParseOid(sha, &oid));
  git_object* obj = nullptr;
  int rc = git_object_lookup(&obj, repo, &oid, GIT_OBJECT_COMMIT);
  if (rc < 0) return GitError(rc, "commit " + sha);
  return obj;
}

}  // namespace

Result<std::string> GitCommonDir(const std::string& repo) {
  WTD_ASSIGN_OR_RETURN(RepoPtr r, Open(repo));
  return git::StripTrailingSlash(git_repository_commondir(r.get()));
}

Status AddDetachedWorktree(const std::string& repo, const std::string& name,
                           const std::string& path, const std::string& branch,
                           const std::string& sha) {
  if (!ValidAdminName(name)) return Status::InvalidArgument("worktree name '" + name + "'");
  WTD_ASSIGN_OR_RETURN(RepoPtr r, Open(repo));
  WTD_ASSIGN_OR_RETURN(git_object * obj, LookupCommit(r.get(), sha));
  std::unique_ptr<git_object, git::GitFree<git_object, git_object_free>> commit(obj);
  git_reference* raw_branch = nullptr;
  int rc = git_branch_create(&raw_branch, r.get(), branch.c_str(),
                             reinterpret_cast<git_commit*>(commit.get()), /*force=*/0);
  if (rc < 0) return GitError(rc, "create branch " + branch + " at " + sha + " in " + repo);
  git::ReferencePtr branch_ref(raw_branch);
  WTD_CRASH_POINT("after_branch_create");

  git_worktree_add_options opts;
  git_worktree_add_options_init(&opts, GIT_WORKTREE_ADD_OPTIONS_VERSION);
  opts.ref = branch_ref.get();
  opts.checkout_options.checkout_strategy = GIT_CHECKOUT_FORCE;
  git_worktree* raw_wt = nullptr;
  rc = git_worktree_add(&raw_wt, r.get(), name.c_str(), path.c_str(), &opts);
  if (rc < 0) return GitError(rc, "add worktree " + name + " at " + path + " in " + repo);
  git::WorktreePtr wt(raw_wt);

  // Detach the new worktree's HEAD, then the branch is nobody's HEAD.
  WTD_ASSIGN_OR_RETURN(RepoPtr w, Open(path));
  git_oid oid;
  WTD_RETURN_IF_ERROR(git::ParseOid(sha, &oid));
  rc = git_repository_set_head_detached(w.get(), &oid);
  if (rc < 0) return GitError(rc, "detach HEAD of worktree " + path + " at " + sha);
  rc = git_branch_delete(branch_ref.get());
  if (rc < 0) return GitError(rc, "delete branch " + branch + " in " + repo);
  return Status::OK();
}

Status CheckoutDetached(const std::string& path, const std::string& sha) {
  WTD_ASSIGN_OR_RETURN(RepoPtr w, Open(path));
  WTD_ASSIGN_OR_RETURN(git_object * obj, LookupCommit(w.get(), sha));
  std::unique_ptr<git_object, git::GitFree<git_object, git_object_free>> commit(obj);
  git_checkout_options opts;
  git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
  opts.checkout_strategy =
      GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
  int rc = git_checkout_tree(w.get(), commit.get(), &opts);
  if (rc < 0) return GitError(rc, "check out " + sha + " in worktree " + path);
  git_oid oid;
  WTD_RETURN_IF_ERROR(git::ParseOid(sha, &oid));
  rc = git_repository_set_head_detached(w.get(), &oid);
  if (rc < 0) return GitError(rc, "detach HEAD of worktree " + path + " at " + sha);
  return Status::OK();
}

Result<std::string> ResolveCommit(const std::string& repo, const std::string& ref) {
  WTD_ASSIGN_OR_RETURN(RepoPtr r, Open(repo));
  git_object* raw = nullptr;
  int rc = git_revparse_single(&raw, r.get(), ref.c_str());
  if (rc < 0) return GitError(rc, "revision " + ref + " in " + repo);
  std::unique_ptr<git_object, git::GitFree<git_object, git_object_free>> obj(raw);
  git_object* peeled = nullptr;
  rc = git_object_peel(&peeled, obj.get(), GIT_OBJECT_COMMIT);
  if (rc < 0) return GitError(rc, "revision " + ref + " in " + repo + " is not a commit");
  std::string sha = git::OidToString(git_object_id(peeled));
  git_object_free(peeled);
  return sha;
}

Result<std::vector<AdminEntry>> ListAdminEntries(const std::string& repo) {
  WTD_ASSIGN_OR_RETURN(std::string common, GitCommonDir(repo));
  std::string root = JoinPath(common, "worktrees");
  std::vector<AdminEntry> out;
  DIR* d = opendir(root.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return Status::IOError("list " + root + ": " + std::strerror(errno));
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    AdminEntry a;
    a.name = name;
    a.dir = JoinPath(root, name);
    struct stat st;
    if (lstat(a.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    Result<std::string> gitdir = ReadFile(JoinPath(a.dir, "gitdir"));
    if (gitdir.ok()) a.gitdir = Trim(*gitdir);
    Result<std::string> locked = ReadFile(JoinPath(a.dir, "locked"));
    if (locked.ok()) {
      a.locked = true;
      a.lock_reason = Trim(*locked);
    }
    out.push_back(std::move(a));
  }
  closedir(d);
  std::sort(out.begin(), out.end(),
            [](const AdminEntry& a, const AdminEntry& b) { return a.name < b.name; });
  return out;
}

Status RemoveAdminEntry(const std::string& repo, const std::string& name) {
  if (!ValidAdminName(name)) return Status::InvalidArgument("admin entry name '" + name + "'");
  WTD_ASSIGN_OR_RETURN(std::string common, GitCommonDir(repo));
  return RemoveTree(JoinPath(JoinPath(common, "worktrees"), name));
}

Result<int> RemoveWorktreeLockFiles(const std::string& repo, const std::string& name) {
  if (!ValidAdminName(name)) return Status::InvalidArgument("admin entry name '" + name + "'");
  WTD_ASSIGN_OR_RETURN(std::string common, GitCommonDir(repo));
  std::string admin = JoinPath(JoinPath(common, "worktrees"), name);
  int removed = 0;
  for (const char* lock : {"HEAD.lock", "index.lock", "ORIG_HEAD.lock"}) {
    std::string path = JoinPath(admin, lock);
    if (unlink(path.c_str()) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      return Status::IOError("remove " + path + ": " + std::strerror(errno));
    }
  }
  return removed;
}

Result<bool> RemoveBranchLockFile(const std::string& repo, const std::string& branch) {
  if (branch.empty() || branch.find("..") != std::string::npos) {
    return Status::InvalidArgument("branch name '" + branch + "'");
  }
  WTD_ASSIGN_OR_RETURN(std::string common, GitCommonDir(repo));
  std::string path = JoinPath(common, "refs/heads/" + branch + ".lock");
  if (unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  return Status::IOError("remove " + path + ": " + std::strerror(errno));
}

Result<bool> BranchExists(const std::string& repo, const std::string& branch) {
  WTD_ASSIGN_OR_RETURN(RepoPtr r, Open(repo));
  git_reference* raw = nullptr;
  int rc = git_branch_lookup(&raw, r.get(), branch.c_str(), GIT_BRANCH_LOCAL);
  if (rc == GIT_ENOTFOUND) return false;
  if (rc < 0) return GitError(rc, "look up branch " + branch + " in " + repo);
  git_reference_free(raw);
  return true;
}

Result<bool> DeleteBranchIfAt(const std::string& repo, const std::string& branch,
                              const std::string& sha) {
  WTD_ASSIGN_OR_RETURN(RepoPtr r, Open(repo));
  git_reference* raw = nullptr;
  int rc = git_branch_lookup(&raw, r.get(), branch.c_str(), GIT_BRANCH_LOCAL);
  if (rc == GIT_ENOTFOUND) return false;
  if (rc < 0) return GitError(rc, "look up branch " + branch + " in " + repo);
  git::ReferencePtr ref(raw);
  const git_oid* target = git_reference_target(ref.get());
  if (target == nullptr || git::OidToString(target) != sha) return false;
  // By compare-and-swap: a branch moved meanwhile is not deleted.
  std::string full = "refs/heads/" + branch;
  git_oid expected;
  WTD_RETURN_IF_ERROR(git::ParseOid(sha, &expected));
  git_reference* check = nullptr;
  rc = git_reference_lookup(&check, r.get(), full.c_str());
  if (rc < 0) return GitError(rc, "look up " + full + " in " + repo);
  git::ReferencePtr check_ref(check);
  if (git_oid_cmp(git_reference_target(check_ref.get()), &expected) != 0) return false;
  rc = git_reference_delete(check_ref.get());
  if (rc == GIT_EMODIFIED) return false;
  if (rc < 0) return GitError(rc, "delete branch " + branch + " in " + repo);
  return true;
}

Result<std::string> VerifyWorktree(const std::string& repo, const std::string& name,
                                   const std::string& path) {
  WTD_ASSIGN_OR_RETURN(std::string common, GitCommonDir(repo));
  std::string admin = JoinPath(JoinPath(common, "worktrees"), name);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("work dir " + path + " is missing");
  }
  Result<std::string> gitdir = ReadFile(JoinPath(admin, "gitdir"));
  if (!gitdir.ok()) {
    return Status::FailedPrecondition("admin entry " + admin + " is missing or has no gitdir");
  }
  std::string dotgit = JoinPath(path, ".git");
  if (!SamePath(Trim(*gitdir), dotgit)) {
    return Status::FailedPrecondition("admin entry " + admin + " names " + Trim(*gitdir) +
                                      ", not " + dotgit);
  }
  Result<std::string> link = ReadFile(dotgit);
  std::string named = link.ok() ? Trim(*link) : "";
  if (named.rfind("gitdir: ", 0) != 0 || !SamePath(named.substr(8), admin)) {
    return Status::FailedPrecondition(dotgit + " does not name " + admin);
  }
  Result<RepoPtr> w = Open(path);
  if (!w.ok()) return Status::FailedPrecondition("worktree " + path + ": " + w.status().message());
  git_oid oid;
  int rc = git_reference_name_to_id(&oid, w->get(), "HEAD");
  if (rc < 0) {
    return Status::FailedPrecondition("HEAD of worktree " + path +
                                      " unreadable: " + GitError(rc, "HEAD").message());
  }
  return git::OidToString(&oid);
}

}  // namespace wtd
