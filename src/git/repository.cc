#include "git/repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <utility>

#include "git/file_stamp.h"
#include "git/git_util.h"

namespace wtd::git {
namespace {

constexpr char kMainId[] = "main";
constexpr char kHeadsPrefix[] = "refs/heads/";

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads HEAD of `repo` (a worktree handle); `what` names the worktree.
Result<HeadInfo> ReadHeadOf(git_repository* repo, const std::string& what) {
  git_reference* raw = nullptr;
  int rc = git_reference_lookup(&raw, repo, "HEAD");
  ReferencePtr head(raw);
  if (rc < 0) return GitError(rc, "read HEAD of " + what);
  HeadInfo info;
  if (git_reference_type(head.get()) != GIT_REFERENCE_SYMBOLIC) {
    info.detached = true;
    info.sha = OidToString(git_reference_target(head.get()));
    return info;
  }
  std::string target = git_reference_symbolic_target(head.get());
  info.branch =
      target.rfind(kHeadsPrefix, 0) == 0 ? target.substr(sizeof(kHeadsPrefix) - 1) : target;
  git_reference* resolved_raw = nullptr;
  rc = git_reference_resolve(&resolved_raw, head.get());
  ReferencePtr resolved(resolved_raw);
  if (rc == GIT_ENOTFOUND) return info;  // unborn: the branch has no commit yet
  if (rc < 0) return GitError(rc, "resolve HEAD -> " + target + " of " + what);
  info.sha = OidToString(git_reference_target(resolved.get()));
  return info;
}

// Opens the repository at `path` (searching upwards unless `flags` forbid it).
Result<RepoPtr> OpenExact(const std::string& path, unsigned int flags) {
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), flags, nullptr);
  RepoPtr repo(raw);
  if (rc < 0) return GitError(rc, "open repository at " + path);
  return repo;
}

// Whether core.worktree is set for `repo` (libgit2's work dir is then that
// path, wherever the git dir lives).
bool HasCoreWorktree(git_repository* repo) {
  git_config* raw = nullptr;
  if (git_repository_config_snapshot(&raw, repo) < 0) {
    git_error_clear();
    return false;
  }
  std::unique_ptr<git_config, GitFree<git_config, git_config_free>> config(raw);
  const char* value = nullptr;
  bool set = git_config_get_string(&value, config.get(), "core.worktree") == 0;
  git_error_clear();
  return set;
}

// The main worktree's root. `candidate` is the work dir libgit2 gives for
// it; when core.worktree is not set that is only a guess (the parent of the
// git dir), so it is taken only if its `.git` leads back to `common` as a
// main worktree. A git dir made with `--separate-git-dir` does not record its
// work tree, so reached through it (or a linked worktree) it is refused.
Result<std::string> MainRoot(git_repository* repo, const char* candidate, const std::string& common,
                             const std::string& opened_at) {
  if (candidate == nullptr) {
    return Status::NotSupported("repository at " + opened_at + " has a bare common dir " + common +
                                " (no main worktree); not supported");
  }
  WTD_ASSIGN_OR_RETURN(std::string root, RealPath(StripTrailingSlash(candidate)));
  if (HasCoreWorktree(repo)) return root;
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, root.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  RepoPtr back(raw);
  git_error_clear();
  if (rc == 0 && !git_repository_is_bare(back.get()) && !git_repository_is_worktree(back.get())) {
    Result<std::string> back_common =
        RealPath(StripTrailingSlash(git_repository_commondir(back.get())));
    if (back_common.ok() && *back_common == common) return root;
  }
  return Status::NotSupported(
      "cannot tell where the main worktree of the repository at " + opened_at +
      " is: its git dir " + common +
      " is apart from its work tree (git init or clone --separate-git-dir) and does not say "
      "where that is; give a path inside the main worktree instead (with --worktrees all or a "
      "list of paths to watch linked worktrees)");
}

// The admin name of the linked worktree `repo` was opened in.
Result<std::string> LinkedWorktreeId(git_repository* repo, const std::string& path) {
  git_worktree* raw = nullptr;
  int rc = git_worktree_open_from_repository(&raw, repo);
  WorktreePtr wt(raw);
  if (rc < 0) return GitError(rc, "find the worktree containing " + path);
  return std::string(git_worktree_name(wt.get()));
}

}  // namespace

Status EnableGitdirFsync(bool on) {
  InitLibgit2();
  int rc = git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, on ? 1 : 0);
  if (rc < 0) return GitError(rc, "set GIT_OPT_ENABLE_FSYNC_GITDIR");
  return Status::OK();
}

void Repository::Closer::operator()(git_repository* repo) const { git_repository_free(repo); }

Repository::Repository(Handle main, std::string root, std::string common_dir, std::string opened_id)
    : main_(std::move(main)),
      root_(std::move(root)),
      common_dir_(std::move(common_dir)),
      opened_worktree_id_(std::move(opened_id)) {}

Repository::~Repository() = default;

Result<std::unique_ptr<Repository>> Repository::Open(const std::string& path) {
  InitLibgit2();
  WTD_ASSIGN_OR_RETURN(std::string real, RealPath(path));
  WTD_ASSIGN_OR_RETURN(RepoPtr opened, OpenExact(real, 0));
  if (git_repository_is_bare(opened.get())) {
    return Status::NotSupported("bare repository at " + real + " is not supported");
  }
  std::string opened_id = kMainId;
  if (git_repository_is_worktree(opened.get())) {
    WTD_ASSIGN_OR_RETURN(opened_id, LinkedWorktreeId(opened.get(), real));
  }
  WTD_ASSIGN_OR_RETURN(std::string common,
                       RealPath(StripTrailingSlash(git_repository_commondir(opened.get()))));
  WTD_ASSIGN_OR_RETURN(RepoPtr main, OpenExact(common, GIT_REPOSITORY_OPEN_NO_SEARCH));
  // The main worktree's root comes from libgit2's work dir of a handle that
  // found it: the one opened at `real` when that is in the main worktree
  // (through its `.git` file when the git dir is separate). Opened at the
  // common dir, libgit2 can only guess the git dir's parent.
  const bool in_main = opened_id == kMainId;
  WTD_ASSIGN_OR_RETURN(
      std::string root,
      MainRoot(in_main ? opened.get() : main.get(),
               git_repository_workdir(in_main ? opened.get() : main.get()), common, real));
  // The main handle's own work dir is that guess: nothing reads it, but keep
  // it true. Only when it differs: libgit2 1.5 leaks its path buffer when
  // set_workdir is given the work dir it already has.
  const char* current = git_repository_workdir(main.get());
  if (current == nullptr || StripTrailingSlash(current) != root) {
    int rc = git_repository_set_workdir(main.get(), root.c_str(), /*update_gitlink=*/0);
    if (rc < 0) return GitError(rc, "set the work dir of " + common + " to " + root);
  }
  return std::unique_ptr<Repository>(new Repository(Handle(main.release()), std::move(root),
                                                    std::move(common), std::move(opened_id)));
}

Status Repository::CheckPresent() const {
  if (!IsDirectory(common_dir_)) {
    return Status::NotFound("repository " + root_ + " is gone: git dir " + common_dir_ +
                            " does not exist");
  }
  return Status::OK();
}

Result<std::vector<WorktreeInfo>> Repository::ListWorktrees() {
  WTD_RETURN_IF_ERROR(CheckPresent());
  if (list_stamps_.StillValid()) return list_;
  int64_t taken = RealtimeNs();
  std::vector<std::string> paths;
  std::vector<FileStamp> stamps;
  auto stamp = [&](const std::string& path) {
    paths.push_back(path);
    stamps.push_back(StampFile(path));
  };
  list_stamps_ = FileStamps();
  WTD_ASSIGN_OR_RETURN(list_, ReadWorktreeList(stamp));
  list_stamps_ = FileStamps(std::move(paths), std::move(stamps), taken);
  ++list_reads_;
  return list_;
}

Result<std::vector<WorktreeInfo>> Repository::ReadWorktreeList(
    const std::function<void(const std::string&)>& stamp) {
  stamp(common_dir_ + "/worktrees");  // entries added or removed
  StrArray names;
  int rc = git_worktree_list(names.get(), main_.get());
  if (rc < 0) return GitError(rc, "list worktrees of " + root_);
  std::vector<WorktreeInfo> linked;
  for (size_t i = 0; i < names.size(); ++i) {
    std::string admin = common_dir_ + "/worktrees/" + names[i];
    stamp(admin + "/gitdir");  // rewritten by `git worktree move`
    git_worktree* raw = nullptr;
    rc = git_worktree_lookup(&raw, main_.get(), names[i]);
    WorktreePtr wt(raw);
    // A half-made or broken admin entry, or one whose work dir is gone
    // (prunable), is deliberately skipped: it has no HEAD to watch.
    if (rc < 0) continue;
    std::string listed = StripTrailingSlash(git_worktree_path(wt.get()));
    stamp(listed);  // the work dir: removed, or back
    if (git_worktree_validate(wt.get()) != 0) continue;
    Result<std::string> path = RealPath(listed);
    if (!path.ok() || !IsDirectory(*path)) continue;
    linked.push_back(WorktreeInfo{names[i], *path, admin, false});
  }
  git_error_clear();
  std::sort(linked.begin(), linked.end(),
            [](const WorktreeInfo& a, const WorktreeInfo& b) { return a.id < b.id; });
  std::vector<WorktreeInfo> all;
  all.push_back(WorktreeInfo{kMainId, root_, common_dir_, true});
  std::set<std::string> live;
  for (WorktreeInfo& wt : linked) {
    live.insert(wt.gitdir);
    all.push_back(std::move(wt));
  }
  std::erase_if(worktrees_, [&](const auto& entry) { return live.count(entry.first) == 0; });
  std::erase_if(heads_, [&](const auto& entry) {
    return entry.first != common_dir_ && live.count(entry.first) == 0;
  });
  return all;
}

Result<std::optional<WorktreeInfo>> Repository::FindWorktree(const std::string& id) {
  WTD_ASSIGN_OR_RETURN(std::vector<WorktreeInfo> list, ListWorktrees());
  const bool main = id == kMainId;
  for (WorktreeInfo& wt : list) {
    // A linked worktree may carry the admin name "main" too: the id names
    // the main worktree.
    if (wt.id == id && wt.is_main == main) return std::optional<WorktreeInfo>(std::move(wt));
  }
  if (!id.empty() && id.find('/') == std::string::npos && id != "." && id != ".." &&
      IsDirectory(common_dir_ + "/worktrees/" + id)) {
    return Status::FailedPrecondition("worktree " + id + " of " + root_ +
                                      " has no usable directory (its admin entry " + common_dir_ +
                                      "/worktrees/" + id +
                                      " remains: being moved, or deleted without `git worktree "
                                      "remove`)");
  }
  return std::optional<WorktreeInfo>();
}

Result<git_repository*> Repository::WorktreeHandle(const WorktreeInfo& wt) {
  if (wt.is_main) return main_.get();
  if (!IsDirectory(wt.gitdir)) {
    worktrees_.erase(wt.gitdir);
    return Status::NotFound("worktree '" + wt.id + "' of " + root_ + " is gone: " + wt.gitdir +
                            " does not exist");
  }
  auto it = worktrees_.find(wt.gitdir);
  if (it != worktrees_.end() && it->second.path == wt.path) return it->second.repo.get();
  worktrees_.erase(wt.gitdir);
  git_worktree* wt_raw = nullptr;
  int rc = git_worktree_lookup(&wt_raw, main_.get(), wt.id.c_str());
  WorktreePtr handle(wt_raw);
  if (rc < 0) return GitError(rc, "look up worktree '" + wt.id + "' of " + root_);
  git_repository* repo_raw = nullptr;
  rc = git_repository_open_from_worktree(&repo_raw, handle.get());
  Handle repo(repo_raw);
  if (rc < 0) return GitError(rc, "open worktree '" + wt.id + "' at " + wt.path);
  git_repository* result = repo.get();
  worktrees_[wt.gitdir] = CachedWorktree{wt.path, std::move(repo)};
  return result;
}

Result<HeadInfo> Repository::ReadHead(const WorktreeInfo& wt) {
  auto cached = heads_.find(wt.gitdir);
  if (cached != heads_.end() && cached->second.path == wt.path &&
      cached->second.stamps.StillValid()) {
    return cached->second.head;
  }
  // Stamp before reading. The branch's loose ref is the one HEAD named last
  // time; if HEAD now names another, the answer is not kept.
  int64_t taken = RealtimeNs();
  std::string guess = cached != heads_.end() ? cached->second.head.branch : "";
  std::vector<std::string> paths = {wt.gitdir + "/HEAD", common_dir_ + "/packed-refs"};
  if (!guess.empty()) paths.push_back(common_dir_ + "/refs/heads/" + guess);
  FileStamps stamps(std::move(paths), taken);
  heads_.erase(wt.gitdir);

  WTD_RETURN_IF_ERROR(CheckPresent());
  WTD_ASSIGN_OR_RETURN(git_repository * repo, WorktreeHandle(wt));
  Result<HeadInfo> head = ReadHeadOf(repo, "worktree '" + wt.id + "' at " + wt.path);
  ++head_reads_;
  if (!head.ok()) {
    if (!wt.is_main) worktrees_.erase(wt.gitdir);  // re-open next time
    return head;
  }
  // A branch outside refs/heads keeps its full name ("refs/..."): its loose
  // ref may live elsewhere (per-worktree refs), so it is never answered from
  // stamps.
  bool under_heads = head->detached || head->branch.rfind("refs/", 0) != 0;
  if (head->branch == guess || (head->detached && guess.empty())) {
    if (under_heads) heads_[wt.gitdir] = CachedHead{wt.path, std::move(stamps), *head};
  } else {
    heads_[wt.gitdir] = CachedHead{wt.path, FileStamps(), *head};  // stamped next time
  }
  return head;
}

std::vector<std::string> Repository::WatchDirs(const WorktreeInfo& wt) const {
  return WatchDirs(std::vector<WorktreeInfo>{wt});
}

std::vector<std::string> Repository::WatchDirs(const std::vector<WorktreeInfo>& wts) const {
  std::vector<std::string> dirs;
  auto add = [&dirs](const std::string& dir) {
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  };
  for (const WorktreeInfo& wt : wts) add(wt.gitdir);
  add(common_dir_);
  // Shared by every worktree: walked once, however many worktrees there are.
  std::string heads = common_dir_ + "/refs/heads";
  add(heads);
  std::error_code ec;
  std::vector<std::string> nested;
  for (std::filesystem::recursive_directory_iterator it(heads, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) nested.push_back(it->path().string());
  }
  std::sort(nested.begin(), nested.end());
  for (const std::string& dir : nested) add(dir);
  return dirs;
}

Result<std::string> ResolveRepoRoot(const std::string& path) {
  WTD_ASSIGN_OR_RETURN(std::unique_ptr<Repository> repo, Repository::Open(path));
  return repo->root();
}

}  // namespace wtd::git
