// Tests of git::Repository: opening, worktree enumeration, HEAD reads, a
// vanished repository and watch directories.
#include "git/repository.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "git_fixture.h"

namespace wtd::git {
namespace {

namespace fs = std::filesystem;

class RepositoryTest : public GitFixture {
 protected:
  std::unique_ptr<Repository> OpenOk(const std::string& path) {
    auto repo = Repository::Open(path);
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(repo).value() : nullptr;
  }

  std::vector<WorktreeInfo> ListOk(Repository* repo) {
    auto list = repo->ListWorktrees();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    return list.ok() ? *list : std::vector<WorktreeInfo>{};
  }

  static std::vector<std::string> Ids(const std::vector<WorktreeInfo>& wts) {
    std::vector<std::string> ids;
    for (const auto& wt : wts) ids.push_back(wt.id);
    return ids;
  }

  static const WorktreeInfo* Find(const std::vector<WorktreeInfo>& wts, const std::string& id) {
    for (const auto& wt : wts) {
      if (wt.id == id) return &wt;
    }
    return nullptr;
  }
};

TEST_F(RepositoryTest, OpensFromSubdirectoryOfMainWorktree) {
  std::string dir = InitRepo("repo");
  Commit(dir, "src/a.txt", "a", "first");
  auto repo = OpenOk(dir + "/src");
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(repo->root(), dir);
  EXPECT_EQ(repo->common_dir(), dir + "/.git");
  EXPECT_EQ(repo->opened_worktree_id(), "main");
}

TEST_F(RepositoryTest, OpensFromLinkedWorktreeWithMainRoot) {
  std::string dir = InitRepo("repo");
  Commit(dir, "src/a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "feat", Path("wt-one")});
  auto repo = OpenOk(Path("wt-one") + "/src");
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(repo->root(), dir);
  EXPECT_EQ(repo->common_dir(), dir + "/.git");
  EXPECT_EQ(repo->opened_worktree_id(), "wt-one");
  EXPECT_EQ(Ids(ListOk(repo.get())), (std::vector<std::string>{"main", "wt-one"}));
}

TEST_F(RepositoryTest, ResolvesSymlinkedPathsToRealPaths) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  fs::create_directory_symlink(dir, Path("link"));
  auto repo = OpenOk(Path("link"));
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(repo->root(), dir);
  auto root = ResolveRepoRoot(Path("link"));
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(*root, dir);
}

TEST_F(RepositoryTest, OpenOutsideAnyRepositoryIsNotFound) {
  fs::create_directories(Path("plain"));
  auto repo = Repository::Open(Path("plain"));
  ASSERT_FALSE(repo.ok());
  EXPECT_TRUE(repo.status().IsNotFound()) << repo.status().ToString();
  EXPECT_NE(repo.status().message().find(Path("plain")), std::string::npos);
  auto missing = Repository::Open(Path("does-not-exist"));
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
}

TEST_F(RepositoryTest, ResolveRepoRootFromLinkedWorktreeGivesMainRoot) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "feat", Path("linked")});
  auto root = ResolveRepoRoot(Path("linked"));
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(*root, dir);
}

TEST_F(RepositoryTest, ListsLinkedWorktreesByAdminNameSortedAfterMain) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "zeta-branch", Path("zeta")});
  Git(dir, {"worktree", "add", "-q", "-b", "alpha-branch", Path("alpha")});
  // Same basename as an existing worktree: git picks the admin name "alpha1".
  fs::create_directories(Path("other"));
  Git(dir, {"worktree", "add", "-q", "-b", "second", Path("other/alpha")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(Ids(wts), (std::vector<std::string>{"main", "alpha", "alpha1", "zeta"}));
  EXPECT_TRUE(wts[0].is_main);
  EXPECT_EQ(wts[0].path, dir);
  EXPECT_EQ(wts[0].gitdir, dir + "/.git");
  EXPECT_FALSE(wts[1].is_main);
  EXPECT_EQ(wts[1].path, Path("alpha"));
  EXPECT_EQ(wts[1].gitdir, dir + "/.git/worktrees/alpha");
  EXPECT_EQ(wts[2].path, Path("other/alpha"));
  EXPECT_EQ(wts[3].gitdir, dir + "/.git/worktrees/zeta");
}

TEST_F(RepositoryTest, PicksUpWorktreesAddedAndRemovedSinceLastList) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(Ids(ListOk(repo.get())), (std::vector<std::string>{"main"}));
  Git(dir, {"worktree", "add", "-q", "-b", "b1", Path("one")});
  Git(dir, {"worktree", "add", "-q", "-b", "b2", Path("two")});
  auto wts = ListOk(repo.get());
  EXPECT_EQ(Ids(wts), (std::vector<std::string>{"main", "one", "two"}));
  ASSERT_NE(Find(wts, "one"), nullptr);
  EXPECT_TRUE(repo->ReadHead(*Find(wts, "one")).ok());
  Git(dir, {"worktree", "remove", Path("one")});
  EXPECT_EQ(Ids(ListOk(repo.get())), (std::vector<std::string>{"main", "two"}));
}

TEST_F(RepositoryTest, SkipsLinkedWorktreeWhoseDirectoryIsMissing) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "b1", Path("gone")});
  Git(dir, {"worktree", "add", "-q", "-b", "b2", Path("kept")});
  fs::remove_all(Path("gone"));  // prunable, not yet pruned
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(Ids(ListOk(repo.get())), (std::vector<std::string>{"main", "kept"}));
}

TEST_F(RepositoryTest, ReadsBranchAndShaOfEachWorktree) {
  std::string dir = InitRepo("repo");
  std::string first = Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "feature/x", Path("fx")});
  std::string second = Commit(Path("fx"), "b.txt", "b", "second");
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  auto main_head = repo->ReadHead(wts[0]);
  ASSERT_TRUE(main_head.ok()) << main_head.status().ToString();
  EXPECT_EQ(main_head->sha, first);
  EXPECT_EQ(main_head->branch, "main");
  EXPECT_FALSE(main_head->detached);
  auto fx_head = repo->ReadHead(wts[1]);
  ASSERT_TRUE(fx_head.ok()) << fx_head.status().ToString();
  EXPECT_EQ(fx_head->sha, second);
  EXPECT_EQ(fx_head->branch, "feature/x");
}

TEST_F(RepositoryTest, ReadHeadSeesNewCommitsThroughCachedHandle) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("side")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  ASSERT_TRUE(repo->ReadHead(wts[0]).ok());
  ASSERT_TRUE(repo->ReadHead(wts[1]).ok());
  std::string main2 = Commit(dir, "a.txt", "a2", "main moves");
  std::string side2 = Commit(Path("side"), "s.txt", "s", "side moves");
  Git(dir, {"pack-refs", "--all"});  // the branch now lives in packed-refs only
  std::string main3 = Commit(dir, "a.txt", "a3", "main moves again");
  EXPECT_EQ(repo->ReadHead(wts[0])->sha, main3);
  EXPECT_EQ(repo->ReadHead(wts[1])->sha, side2);
  EXPECT_NE(main2, main3);
}

// Ages every file and directory below `dir` (their mtimes 10 s into the
// past), so FileStamps may trust them.
void AgeTree(const std::string& dir) {
  timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= 10;
  times[1] = times[0];
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    utimensat(AT_FDCWD, it->path().c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  utimensat(AT_FDCWD, dir.c_str(), times, 0);
}

TEST_F(RepositoryTest, UnchangedHeadsAndWorktreeListAreAnsweredFromStamps) {
  std::string dir = InitRepo("repo");
  std::string first = Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("side")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  AgeTree(dir);
  AgeTree(Path("side"));
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  for (int i = 0; i < 2; ++i) {  // the second read stamps the branch's loose ref too
    ASSERT_EQ(repo->ReadHead(wts[0])->sha, first);
    ASSERT_EQ(repo->ReadHead(wts[1])->sha, first);
  }
  uint64_t lists = repo->worktree_list_reads(), heads = repo->head_reads();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ListOk(repo.get()).size(), 2u);
    EXPECT_EQ(repo->ReadHead(wts[0])->sha, first);
    EXPECT_EQ(repo->ReadHead(wts[1])->sha, first);
  }
  EXPECT_EQ(repo->worktree_list_reads(), lists) << "an unchanged list was read again";
  EXPECT_EQ(repo->head_reads(), heads) << "unchanged HEADs were read again";

  // Each change is seen on the next call.
  std::string side2 = Commit(Path("side"), "s.txt", "s", "side moves");
  EXPECT_EQ(repo->ReadHead(wts[1])->sha, side2);
  EXPECT_EQ(repo->ReadHead(wts[0])->sha, first);
  Git(dir, {"pack-refs", "--all"});
  std::string main2 = Commit(dir, "a.txt", "a2", "main moves");
  EXPECT_EQ(repo->ReadHead(wts[0])->sha, main2);
  Git(dir, {"checkout", "-q", "-b", "other"});
  EXPECT_EQ(repo->ReadHead(wts[0])->branch, "other");
  Git(dir, {"worktree", "add", "-q", "-b", "third", Path("third")});
  EXPECT_EQ(ListOk(repo.get()).size(), 3u);
  for (const char* d : {"repo", "side", "third"}) AgeTree(Path(d));
  ASSERT_EQ(ListOk(repo.get()).size(), 3u);
  lists = repo->worktree_list_reads();
  ASSERT_EQ(ListOk(repo.get()).size(), 3u);
  ASSERT_EQ(repo->worktree_list_reads(), lists);
  std::filesystem::remove_all(Path("third"));
  EXPECT_EQ(ListOk(repo.get()).size(), 2u) << "a removed work dir is seen";
}

TEST_F(RepositoryTest, ReadsDetachedHead) {
  std::string dir = InitRepo("repo");
  std::string first = Commit(dir, "a.txt", "a", "first");
  Commit(dir, "a.txt", "b", "second");
  Git(dir, {"checkout", "-q", "--detach", first});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto head = repo->ReadHead(ListOk(repo.get()).at(0));
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_TRUE(head->detached);
  EXPECT_EQ(head->sha, first);
  EXPECT_EQ(head->branch, "");
}

TEST_F(RepositoryTest, ReadsUnbornHeadAsEmptySha) {
  std::string dir = InitRepo("empty");
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto head = repo->ReadHead(ListOk(repo.get()).at(0));
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->sha, "");
  EXPECT_EQ(head->branch, "main");
  EXPECT_FALSE(head->detached);
}

TEST_F(RepositoryTest, ReopensWorktreeHandleWhenIdMovesToNewPath) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  fs::create_directories(Path("x"));
  fs::create_directories(Path("y"));
  Git(dir, {"worktree", "add", "-q", "-b", "one", Path("x/wt")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  ASSERT_TRUE(repo->ReadHead(wts[1]).ok());
  Git(dir, {"worktree", "remove", Path("x/wt")});
  Git(dir, {"worktree", "add", "-q", "-b", "two", Path("y/wt")});
  std::string moved = Commit(Path("y/wt"), "t.txt", "t", "on two");
  wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  EXPECT_EQ(wts[1].id, "wt");
  EXPECT_EQ(wts[1].path, Path("y/wt"));
  auto head = repo->ReadHead(wts[1]);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->branch, "two");
  EXPECT_EQ(head->sha, moved);
}

TEST_F(RepositoryTest, ReadHeadOfRemovedWorktreeIsNotFound) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("side")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  ASSERT_TRUE(repo->ReadHead(wts[1]).ok());
  Git(dir, {"worktree", "remove", Path("side")});
  auto head = repo->ReadHead(wts[1]);
  ASSERT_FALSE(head.ok());
  EXPECT_TRUE(head.status().IsNotFound()) << head.status().ToString();
  EXPECT_NE(head.status().message().find("'side'"), std::string::npos) << head.status().ToString();
  EXPECT_TRUE(repo->ReadHead(wts[0]).ok());
}

TEST_F(RepositoryTest, DeletedRepositoryGivesErrorsAndCanBeReopenedWhenBack) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("side")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  ASSERT_TRUE(repo->ReadHead(wts[1]).ok());
  fs::remove_all(dir);
  fs::remove_all(Path("side"));

  auto list = repo->ListWorktrees();
  ASSERT_FALSE(list.ok());
  EXPECT_TRUE(list.status().IsNotFound() || list.status().IsIOError()) << list.status().ToString();
  EXPECT_NE(list.status().message().find(dir), std::string::npos) << list.status().ToString();
  for (const WorktreeInfo& wt : wts) {
    auto head = repo->ReadHead(wt);
    ASSERT_FALSE(head.ok()) << wt.id;
    EXPECT_NE(head.status().message().find(dir), std::string::npos) << head.status().ToString();
  }
  auto commit = repo->LookupCommit(std::string(40, '0'));
  EXPECT_TRUE(commit.status().IsNotFound()) << commit.status().ToString();
  EXPECT_NE(commit.status().message().find(dir), std::string::npos);

  InitRepo("repo");
  std::string again = Commit(dir, "b.txt", "b", "recreated");
  auto reopened = OpenOk(dir);
  ASSERT_NE(reopened, nullptr);
  auto head = reopened->ReadHead(ListOk(reopened.get()).at(0));
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->sha, again);
}

TEST_F(RepositoryTest, WatchDirsExistAndCoverNestedBranchDirectories) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"branch", "feature/deep/x"});
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("side")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  std::vector<std::string> main_dirs = repo->WatchDirs(wts[0]);
  EXPECT_EQ(main_dirs.at(0), dir + "/.git");
  std::vector<std::string> side_dirs = repo->WatchDirs(wts[1]);
  EXPECT_EQ(side_dirs.at(0), dir + "/.git/worktrees/side");
  EXPECT_EQ(side_dirs.at(1), dir + "/.git");
  for (const std::string& want : {dir + "/.git/refs/heads", dir + "/.git/refs/heads/feature",
                                  dir + "/.git/refs/heads/feature/deep"}) {
    EXPECT_NE(std::find(side_dirs.begin(), side_dirs.end(), want), side_dirs.end()) << want;
  }
  for (const std::string& d : side_dirs) EXPECT_TRUE(fs::is_directory(d)) << d;
  for (const std::string& d : main_dirs) EXPECT_TRUE(fs::is_directory(d)) << d;
  // Both at once: each gitdir, then the shared directories once.
  std::vector<std::string> all = repo->WatchDirs(wts);
  std::vector<std::string> want = {dir + "/.git/worktrees/side", dir + "/.git/refs/heads",
                                   dir + "/.git/refs/heads/feature",
                                   dir + "/.git/refs/heads/feature/deep"};
  EXPECT_EQ(all.at(0), dir + "/.git");
  for (const std::string& w : want) {
    EXPECT_EQ(std::count(all.begin(), all.end(), w), 1) << w;
  }
  EXPECT_EQ(all.size(), side_dirs.size()) << "the main gitdir is the common dir";
}

TEST_F(RepositoryTest, LinkedWorktreeNamedMainIsKeptApartFromTheMainWorktree) {
  std::string dir = InitRepo("repo");
  std::string first = Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "other", Path("x/main")});
  std::string second = Commit(Path("x/main"), "b.txt", "b", "on other");
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  EXPECT_TRUE(wts[0].is_main);
  EXPECT_FALSE(wts[1].is_main);
  EXPECT_EQ(wts[1].id, "main");  // the admin name git chose; callers must check is_main
  EXPECT_EQ(wts[1].gitdir, dir + "/.git/worktrees/main");
  EXPECT_EQ(repo->ReadHead(wts[0])->sha, first);
  EXPECT_EQ(repo->ReadHead(wts[1])->sha, second);
  EXPECT_EQ(repo->ReadHead(wts[0])->sha, first);
}

TEST_F(RepositoryTest, EnablesAndDisablesGitdirFsync) {
  EXPECT_TRUE(EnableGitdirFsync(true).ok());
  EXPECT_TRUE(EnableGitdirFsync(false).ok());
}

}  // namespace
}  // namespace wtd::git
