// Tests of git::Repository against the less common layouts: a git dir apart
// from its work tree (--separate-git-dir, core.worktree).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "git/repository.h"
#include "git_fixture.h"

namespace wtd::git {
namespace {

namespace fs = std::filesystem;

class LayoutsTest : public GitFixture {
 protected:
  std::unique_ptr<Repository> OpenOk(const std::string& path) {
    auto repo = Repository::Open(path);
    EXPECT_TRUE(repo.ok()) << path << ": " << repo.status().ToString();
    return repo.ok() ? std::move(repo).value() : nullptr;
  }

  std::vector<WorktreeInfo> ListOk(Repository* repo) {
    auto list = repo->ListWorktrees();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    return list.ok() ? *list : std::vector<WorktreeInfo>{};
  }

  // Expects Open(path) to refuse with NotSupported naming the git dir.
  void ExpectUnknownMainWorktree(const std::string& path, const std::string& git_dir) {
    auto repo = Repository::Open(path);
    ASSERT_FALSE(repo.ok()) << path << " opened with root " << repo.value()->root();
    EXPECT_EQ(repo.status().code(), Status::Code::kNotSupported) << repo.status().ToString();
    EXPECT_NE(repo.status().message().find(git_dir), std::string::npos) << repo.status().ToString();
    EXPECT_NE(repo.status().message().find("main worktree"), std::string::npos)
        << repo.status().ToString();
  }
};

TEST_F(LayoutsTest, SeparateGitDirRootIsTheWorkTreeNotTheGitDirsParent) {
  fs::create_directories(Path("x"));
  Git(Path("x"),
      {"init", "-q", "-b", "main", "--separate-git-dir", Path("x/meta.git"), Path("x/work")});
  std::string work = Path("x/work");
  std::string first = Commit(work, "src/a.txt", "a", "first");
  for (const std::string& from : {work, work + "/src"}) {
    auto repo = OpenOk(from);
    ASSERT_NE(repo, nullptr);
    EXPECT_EQ(repo->root(), work) << "opened at " << from;
    EXPECT_EQ(repo->common_dir(), Path("x/meta.git"));
    EXPECT_EQ(repo->opened_worktree_id(), "main");
    std::vector<WorktreeInfo> wts = ListOk(repo.get());
    ASSERT_EQ(wts.size(), 1u);
    EXPECT_EQ(wts[0].path, work);
    EXPECT_EQ(wts[0].gitdir, Path("x/meta.git"));
    EXPECT_EQ(repo->ReadHead(wts[0])->sha, first);
  }
  auto root = ResolveRepoRoot(work + "/src");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(*root, work);
}

TEST_F(LayoutsTest, LinkedWorktreesOfASeparateGitDirAreListedWhereTheyAre) {
  fs::create_directories(Path("x"));
  Git(Path("x"),
      {"init", "-q", "-b", "main", "--separate-git-dir", Path("x/meta.git"), Path("x/work")});
  std::string work = Path("x/work");
  std::string first = Commit(work, "a.txt", "a", "first");
  Git(work, {"worktree", "add", "-q", "-b", "side", Path("x/wt1")});
  std::string side = Commit(Path("x/wt1"), "b.txt", "b", "on side");
  auto repo = OpenOk(work);
  ASSERT_NE(repo, nullptr);
  std::vector<WorktreeInfo> wts = ListOk(repo.get());
  ASSERT_EQ(wts.size(), 2u);
  EXPECT_EQ(wts[0].path, work);
  EXPECT_EQ(wts[1].id, "wt1");
  EXPECT_EQ(wts[1].path, Path("x/wt1"));
  EXPECT_EQ(wts[1].gitdir, Path("x/meta.git/worktrees/wt1"));
  EXPECT_EQ(repo->ReadHead(wts[0])->sha, first);
  EXPECT_EQ(repo->ReadHead(wts[1])->sha, side);
  // From the linked worktree or the git dir itself nothing says where the
  // main worktree is (git lists it as the git dir): refused, not guessed.
  ExpectUnknownMainWorktree(Path("x/wt1"), Path("x/meta.git"));
  ExpectUnknownMainWorktree(Path("x/meta.git"), Path("x/meta.git"));
  EXPECT_FALSE(ResolveRepoRoot(Path("x/wt1")).ok());
}

TEST_F(LayoutsTest, CloneWithSeparateGitDirOpensAtItsWorkTree) {
  std::string origin = InitRepo("origin");
  Commit(origin, "a.txt", "a", "first");
  Git(base_, {"clone", "-q", "--separate-git-dir", Path("c.git"), origin, Path("clone")});
  auto repo = OpenOk(Path("clone"));
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(repo->root(), Path("clone"));
  EXPECT_EQ(repo->common_dir(), Path("c.git"));
  EXPECT_EQ(ListOk(repo.get()).at(0).path, Path("clone"));
}

TEST_F(LayoutsTest, GitDirsParentIsTakenOnlyWhenItLeadsBack) {
  // The usual layout: the parent of <root>/.git is the root, from anywhere.
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("linked")});
  for (const std::string& from : {dir + "/.git", dir + "/.git/refs", Path("linked")}) {
    auto repo = OpenOk(from);
    ASSERT_NE(repo, nullptr);
    EXPECT_EQ(repo->root(), dir) << "opened at " << from;
  }
  // core.worktree names the work tree wherever the git dir is.
  fs::create_directories(Path("cw/tree"));
  std::string env =
      "GIT_DIR=" + Quote(Path("cw/g.git")) + " GIT_WORK_TREE=" + Quote(Path("cw/tree"));
  Git(base_, {"init", "-q", "-b", "main"}, env);
  auto repo = OpenOk(Path("cw/g.git"));
  ASSERT_NE(repo, nullptr);
  EXPECT_EQ(repo->root(), Path("cw/tree"));
}

}  // namespace
}  // namespace wtd::git
