// Repository methods that read objects: commits, diffs and trees (the
// history walk is in commit_walk.cc). They all go through the main handle
// (objects are shared by every worktree). Each first checks that the repository still exists:
// libgit2 1.5.1 leaks a little memory on every object lookup in a deleted repository.
#include <set>
#include <utility>

#include "git/git_util.h"
#include "git/repository.h"

namespace wtd::git {
namespace {

Result<CommitPtr> LoadCommit(git_repository* repo, const std::string& sha,
                             const std::string& root) {
  git_oid oid;
  WTD_RETURN_IF_ERROR(ParseOid(sha, &oid));
  git_commit* raw = nullptr;
  int rc = git_commit_lookup(&raw, repo, &oid);
  CommitPtr commit(raw);
  if (rc < 0) return GitError(rc, "look up commit " + sha + " in " + root);
  return commit;
}

Result<TreePtr> CommitTree(git_commit* commit, const std::string& sha, const std::string& root) {
  git_tree* raw = nullptr;
  int rc = git_commit_tree(&raw, commit);
  TreePtr tree(raw);
  if (rc < 0) return GitError(rc, "read the tree of commit " + sha + " in " + root);
  return tree;
}

// The tree at `dir` inside `tree`; a null pointer when there is none (absent,
// or not a directory).
Result<TreePtr> SubTree(git_repository* repo, git_tree* tree, const std::string& dir,
                        const std::string& what) {
  git_tree_entry* raw = nullptr;
  int rc = git_tree_entry_bypath(&raw, tree, dir.c_str());
  TreeEntryPtr entry(raw);
  if (rc == GIT_ENOTFOUND) {
    git_error_clear();
    return TreePtr();
  }
  if (rc < 0) return GitError(rc, "find '" + dir + "' in " + what);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE) return TreePtr();
  git_tree* sub_raw = nullptr;
  rc = git_tree_lookup(&sub_raw, repo, git_tree_entry_id(entry.get()));
  TreePtr sub(sub_raw);
  if (rc < 0) return GitError(rc, "read directory '" + dir + "' of " + what);
  return sub;
}

std::string TrimSlashes(const std::string& path) {
  size_t begin = path.find_first_not_of('/');
  if (begin == std::string::npos) return "";
  size_t end = path.find_last_not_of('/');
  return path.substr(begin, end - begin + 1);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<CommitInfo> Repository::LookupCommit(const std::string& sha) {
  WTD_RETURN_IF_ERROR(CheckPresent());
  WTD_ASSIGN_OR_RETURN(CommitPtr commit, LoadCommit(main_.get(), sha, root_));
  CommitInfo info;
  info.sha = OidToString(git_commit_id(commit.get()));
  unsigned int parents = git_commit_parentcount(commit.get());
  for (unsigned int i = 0; i < parents; ++i) {
    info.parents.push_back(OidToString(git_commit_parent_id(commit.get(), i)));
  }
  const git_signature* author = git_commit_author(commit.get());
  if (author != nullptr) {
    info.author_name = author->name != nullptr ? author->name : "";
    info.author_email = author->email != nullptr ? author->email : "";
  }
  info.time_s = static_cast<int64_t>(git_commit_time(commit.get()));
  const char* message = git_commit_message(commit.get());
  info.message = message != nullptr ? message : "";
  info.subject = info.message.substr(0, info.message.find('\n'));
  return info;
}

Result<std::vector<std::string>> Repository::ChangedPaths(const std::string& sha) {
  WTD_RETURN_IF_ERROR(CheckPresent());
  WTD_ASSIGN_OR_RETURN(CommitPtr commit, LoadCommit(main_.get(), sha, root_));
  WTD_ASSIGN_OR_RETURN(TreePtr tree, CommitTree(commit.get(), sha, root_));
  TreePtr parent_tree;
  if (git_commit_parentcount(commit.get()) > 0) {
    git_commit* p_raw = nullptr;
    int rc = git_commit_parent(&p_raw, commit.get(), 0);
    CommitPtr parent(p_raw);
    if (rc < 0) return GitError(rc, "read the first parent of " + sha + " in " + root_);
    WTD_ASSIGN_OR_RETURN(parent_tree, CommitTree(parent.get(), sha + "^", root_));
  }
  git_diff_options opts;
  int rc = git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
  if (rc < 0) return GitError(rc, "init diff options for " + sha);
  opts.flags |= GIT_DIFF_SKIP_BINARY_CHECK;
  git_diff* d_raw = nullptr;
  rc = git_diff_tree_to_tree(&d_raw, main_.get(), parent_tree.get(), tree.get(), &opts);
  DiffPtr diff(d_raw);
  if (rc < 0) return GitError(rc, "diff commit " + sha + " against its parent in " + root_);
  std::set<std::string> paths;
  size_t n = git_diff_num_deltas(diff.get());
  for (size_t i = 0; i < n; ++i) {
    const git_diff_delta* delta = git_diff_get_delta(diff.get(), i);
    if (delta->old_file.path != nullptr) paths.insert(delta->old_file.path);
    if (delta->new_file.path != nullptr) paths.insert(delta->new_file.path);
  }
  return std::vector<std::string>(paths.begin(), paths.end());
}

Result<std::map<std::string, std::string>> Repository::ReadTreeFiles(const std::string& sha,
                                                                     const std::string& dir,
                                                                     const std::string& suffix) {
  WTD_RETURN_IF_ERROR(CheckPresent());
  WTD_ASSIGN_OR_RETURN(CommitPtr commit, LoadCommit(main_.get(), sha, root_));
  WTD_ASSIGN_OR_RETURN(TreePtr tree, CommitTree(commit.get(), sha, root_));
  const std::string what = "commit " + sha + " in " + root_;
  std::string rel = TrimSlashes(dir);
  std::map<std::string, std::string> files;
  if (!rel.empty()) {
    WTD_ASSIGN_OR_RETURN(tree, SubTree(main_.get(), tree.get(), rel, what));
    if (!tree) return files;
  }
  size_t n = git_tree_entrycount(tree.get());
  for (size_t i = 0; i < n; ++i) {
    const git_tree_entry* entry = git_tree_entry_byindex(tree.get(), i);
    std::string name = git_tree_entry_name(entry);
    if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB ||
        git_tree_entry_filemode(entry) == GIT_FILEMODE_LINK || !EndsWith(name, suffix)) {
      continue;
    }
    git_blob* b_raw = nullptr;
    int rc = git_blob_lookup(&b_raw, main_.get(), git_tree_entry_id(entry));
    BlobPtr blob(b_raw);
    if (rc < 0) return GitError(rc, "read '" + rel + "/" + name + "' of " + what);
    const char* data = static_cast<const char*>(git_blob_rawcontent(blob.get()));
    files.emplace(std::move(name),
                  std::string(data, static_cast<size_t>(git_blob_rawsize(blob.get()))));
  }
  return files;
}

}  // namespace wtd::git
