// Repository methods that read objects: commits, diffs and trees (the
// history walk is in commit_walk.cc). They all go through the main handle
// (objects are shared by every worktree). Each first checks that the repository still exists:
// libgit2 1.5.1 leaks a little memory on every object lookup in a deleted repository.
#include <set>
#include <string>
#include <utility>
#include <vector>

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

namespace {

// Splits `path` at '/' (empty parts kept: the caller skips them).
std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    size_t slash = path.find('/', begin);
    parts.push_back(path.substr(begin, slash - begin));
    if (slash == std::string::npos) return parts;
    begin = slash + 1;
  }
}

std::string JoinParts(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

// Where a symlink in a commit's tree leads: the blob, or why it is not
// followed.
struct LinkTarget {
  BlobPtr blob;         // null when refused
  std::string refused;  // why, when `blob` is null
};

Result<BlobPtr> LoadBlob(git_repository* repo, const git_oid* id, const std::string& path,
                         const std::string& what) {
  git_blob* raw = nullptr;
  int rc = git_blob_lookup(&raw, repo, id);
  BlobPtr blob(raw);
  if (rc < 0) return GitError(rc, "read '" + path + "' of " + what);
  return blob;
}

std::string BlobText(git_blob* blob) {
  const char* data = static_cast<const char*>(git_blob_rawcontent(blob));
  return std::string(data, static_cast<size_t>(git_blob_rawsize(blob)));
}

// Follows the symlink at `link` (repo-relative path; `target` is its
// content) through `root`, the commit's tree, as the kernel would in a
// checkout of it: each component looked up in turn, `..` going up from the
// directory reached so far, and a symlink met on the way (a directory or the
// last component) replaced by its own target, resolved against its own
// directory. It never leaves the tree.
Result<LinkTarget> FollowLink(git_repository* repo, git_tree* root, const std::string& link,
                              const std::string& target, const std::string& what) {
  std::vector<std::string> done = SplitPath(link);
  done.pop_back();  // the link's own directory
  std::vector<std::string> todo;
  int hops = 0;
  std::string via = link, via_target = target;  // the link followed last
  // "it" for the link itself, "'a' -> 'b'" for one further down the chain.
  auto subject = [&] { return via == link ? "it" : "'" + via + "' -> '" + via_target + "'"; };
  auto refuse = [](std::string why) { return LinkTarget{BlobPtr(), std::move(why)}; };
  // Queues the target of `via`; an empty string, or why it cannot be.
  auto take = [&]() -> std::string {
    if (++hops > Repository::kMaxSymlinkHops) {
      return "more than " + std::to_string(Repository::kMaxSymlinkHops) + " symlinks in a chain";
    }
    if (via_target.empty()) return subject() + " is empty";
    if (via_target[0] == '/') return subject() + " is an absolute path";
    std::vector<std::string> next = SplitPath(via_target);
    todo.insert(todo.begin(), next.begin(), next.end());
    return "";
  };
  if (std::string why = take(); !why.empty()) return refuse(why);
  while (!todo.empty()) {
    std::string part = todo.front();
    todo.erase(todo.begin());
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (done.empty()) return refuse(subject() + " leads outside the commit's tree");
      done.pop_back();
      continue;
    }
    done.push_back(part);
    std::string path = JoinParts(done);
    git_tree_entry* raw = nullptr;
    int rc = git_tree_entry_bypath(&raw, root, path.c_str());
    TreeEntryPtr entry(raw);
    if (rc == GIT_ENOTFOUND) {
      git_error_clear();
      return refuse(subject() + " names '" + path + "', which is not in the commit");
    }
    if (rc < 0) return GitError(rc, "find '" + path + "' in " + what);
    git_filemode_t mode = git_tree_entry_filemode(entry.get());
    if (mode == GIT_FILEMODE_LINK) {
      WTD_ASSIGN_OR_RETURN(BlobPtr next,
                           LoadBlob(repo, git_tree_entry_id(entry.get()), path, what));
      done.pop_back();
      via = path;
      via_target = BlobText(next.get());
      if (std::string why = take(); !why.empty()) return refuse(why);
      continue;
    }
    if (mode == GIT_FILEMODE_TREE) {
      if (todo.empty()) return refuse(subject() + " names '" + path + "', a directory");
      continue;
    }
    if (mode == GIT_FILEMODE_COMMIT) {
      return refuse(subject() + " names '" + path + "', a submodule");
    }
    if (!todo.empty()) {
      return refuse(subject() + " goes through '" + path + "', a file, as if a directory");
    }
    WTD_ASSIGN_OR_RETURN(BlobPtr blob, LoadBlob(repo, git_tree_entry_id(entry.get()), path, what));
    return LinkTarget{std::move(blob), ""};
  }
  // Nothing but '.' and '..': a directory (or the root).
  return refuse(subject() + " names a directory");
}

}  // namespace

Result<std::map<std::string, std::string>> Repository::ReadTreeFiles(
    const std::string& sha, const std::string& dir, const std::string& suffix,
    std::map<std::string, std::string>* refused) {
  WTD_RETURN_IF_ERROR(CheckPresent());
  WTD_ASSIGN_OR_RETURN(CommitPtr commit, LoadCommit(main_.get(), sha, root_));
  WTD_ASSIGN_OR_RETURN(TreePtr root_tree, CommitTree(commit.get(), sha, root_));
  const std::string what = "commit " + sha + " in " + root_;
  std::string rel = TrimSlashes(dir);
  std::map<std::string, std::string> files;
  git_tree* tree = root_tree.get();
  TreePtr sub;
  if (!rel.empty()) {
    WTD_ASSIGN_OR_RETURN(sub, SubTree(main_.get(), root_tree.get(), rel, what));
    if (!sub) return files;
    tree = sub.get();
  }
  size_t n = git_tree_entrycount(tree);
  for (size_t i = 0; i < n; ++i) {
    const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
    std::string name = git_tree_entry_name(entry);
    if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB || !EndsWith(name, suffix)) continue;
    std::string path = rel.empty() ? name : rel + "/" + name;
    WTD_ASSIGN_OR_RETURN(BlobPtr blob, LoadBlob(main_.get(), git_tree_entry_id(entry), path, what));
    if (git_tree_entry_filemode(entry) != GIT_FILEMODE_LINK) {
      files.emplace(std::move(name), BlobText(blob.get()));
      continue;
    }
    WTD_ASSIGN_OR_RETURN(LinkTarget target, FollowLink(main_.get(), root_tree.get(), path,
                                                       BlobText(blob.get()), what));
    if (target.blob) {
      files.emplace(std::move(name), BlobText(target.blob.get()));
    } else if (refused != nullptr) {
      refused->emplace(std::move(name),
                       "symlink to '" + BlobText(blob.get()) + "' not followed: " + target.refused);
    }
  }
  return files;
}

}  // namespace wtd::git
