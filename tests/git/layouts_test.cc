// Tests of git::Repository against the less common layouts: a git dir apart
// from its work tree (--separate-git-dir, core.worktree), worktrees moved or
// removed (FindWorktree), and job files that are symlinks.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "git/repository.h"
#include "git_fixture.h"

namespace wtd::git {
namespace {

namespace fs = std::filesystem;
using Files = std::map<std::string, std::string>;

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

TEST_F(LayoutsTest, FindWorktreeFollowsMovesAndKnowsRemovedOnes) {
  std::string dir = InitRepo("repo");
  Commit(dir, "a.txt", "a", "first");
  Git(dir, {"worktree", "add", "-q", "-b", "side", Path("wt1")});
  auto repo = OpenOk(dir);
  ASSERT_NE(repo, nullptr);
  auto found = repo->FindWorktree("wt1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->path, Path("wt1"));
  auto main = repo->FindWorktree("main");
  ASSERT_TRUE(main.ok() && main->has_value()) << main.status().ToString();
  EXPECT_EQ((*main)->path, dir);
  EXPECT_TRUE((*main)->is_main);

  fs::create_directories(Path("elsewhere"));
  Git(dir, {"worktree", "move", Path("wt1"), Path("elsewhere/wt1")});
  found = repo->FindWorktree("wt1");
  ASSERT_TRUE(found.ok() && found->has_value()) << found.status().ToString();
  EXPECT_EQ((*found)->path, Path("elsewhere/wt1"));
  EXPECT_EQ((*found)->gitdir, dir + "/.git/worktrees/wt1");

  // Deleted by hand: the admin entry remains, so it may yet come back.
  fs::rename(Path("elsewhere/wt1"), Path("aside"));
  found = repo->FindWorktree("wt1");
  ASSERT_FALSE(found.ok());
  EXPECT_TRUE(found.status().IsFailedPrecondition()) << found.status().ToString();
  EXPECT_NE(found.status().message().find("worktree wt1 of " + dir), std::string::npos)
      << found.status().ToString();
  fs::rename(Path("aside"), Path("elsewhere/wt1"));

  Git(dir, {"worktree", "remove", Path("elsewhere/wt1")});
  found = repo->FindWorktree("wt1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_FALSE(found->has_value()) << "removed worktree found at " << (*found)->path;
  for (const char* id : {"never-was", "", "..", "a/b"}) {
    auto none = repo->FindWorktree(id);
    ASSERT_TRUE(none.ok()) << id << ": " << none.status().ToString();
    EXPECT_FALSE(none->has_value()) << id;
  }
}

class JobSymlinksTest : public LayoutsTest {
 protected:
  void SetUp() override {
    LayoutsTest::SetUp();
    dir_ = InitRepo("repo");
  }
  // jobs/<name> -> target, as git stores it (a blob with mode 120000).
  void Link(const std::string& path, const std::string& target) {
    fs::create_directories(fs::path(dir_ + "/" + path).parent_path());
    fs::create_symlink(target, dir_ + "/" + path);
  }
  Files Read(const std::string& sha, Files* refused) {
    auto repo = Repository::Open(dir_);
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    if (!repo.ok()) return {};
    auto files = (*repo)->ReadTreeFiles(sha, "jobs", ".job", refused);
    EXPECT_TRUE(files.ok()) << files.status().ToString();
    return files.ok() ? *files : Files{};
  }
  std::string dir_;
};

TEST_F(JobSymlinksTest, FollowsSymlinksThatStayInsideTheCommitsTree) {
  WriteFile(dir_ + "/shared/ci.job", "run = ci\n");
  WriteFile(dir_ + "/jobs/plain.job", "run = plain\n");
  Link("jobs/linked.job", "../shared/ci.job");
  Link("jobs/sibling.job", "plain.job");
  Link("jobs/dotted.job", "./../shared/../shared//ci.job");
  Link("jobs/chain.job", "chain2.job");  // -> chain2.job -> ../shared/ci.job
  Link("jobs/chain2.job", "../shared/ci.job");
  Link("linkdir", "shared");  // a symlinked directory on the way
  Link("jobs/viadir.job", "../linkdir/ci.job");
  Link("deep/up", "..");  // `..` after a symlinked directory is taken physically
  Link("jobs/physical.job", "../deep/up/shared/ci.job");
  Link("jobs/plain-target.job", "../shared/ci.job");
  std::string sha = CommitAll(dir_, "links");
  // The checkout is not what is read.
  WriteFile(dir_ + "/shared/ci.job", "run = uncommitted\n");
  Files refused;
  Files files = Read(sha, &refused);
  EXPECT_TRUE(refused.empty()) << refused.begin()->first << ": " << refused.begin()->second;
  for (const char* name : {"linked.job", "dotted.job", "chain.job", "chain2.job", "viadir.job",
                           "physical.job", "plain-target.job"}) {
    EXPECT_EQ(files[name], "run = ci\n") << name;
  }
  EXPECT_EQ(files["sibling.job"], "run = plain\n");
  EXPECT_EQ(files["plain.job"], "run = plain\n");
  EXPECT_EQ(files.size(), 9u);
}

TEST_F(JobSymlinksTest, RefusesEverySymlinkItCannotFollowAndSaysWhy) {
  WriteFile(dir_ + "/shared/ci.job", "run = ci\n");
  WriteFile(dir_ + "/jobs/good.job", "run = good\n");
  Link("jobs/absolute.job", "/etc/passwd");
  Link("jobs/escape.job", "../../outside.job");
  Link("jobs/escape-later.job", "../shared/up.job");  // a link further down escapes
  Link("shared/up.job", "../../x.job");
  Link("jobs/dangling.job", "../shared/missing.job");
  Link("jobs/dir.job", "../shared");
  Link("jobs/root.job", "..");
  Link("jobs/file-as-dir.job", "../shared/ci.job/x");
  Link("jobs/loop-a.job", "loop-b.job");
  Link("jobs/loop-b.job", "loop-a.job");
  // The longest chain followed: kMaxSymlinkHops links, long-ok.job -> c/1
  // -> ... -> c/<hops - 1> -> shared/ci.job; one more is refused.
  int hops = Repository::kMaxSymlinkHops;
  for (int i = 1; i < hops - 1; ++i) Link("c/" + std::to_string(i), std::to_string(i + 1));
  Link("c/" + std::to_string(hops - 1), "../shared/ci.job");
  Link("jobs/long-ok.job", "../c/1");
  Link("jobs/too-long.job", "long-ok.job");
  std::string sha = CommitAll(dir_, "bad links");
  // A gitlink (submodule) entry as a target.
  Git(dir_, {"update-index", "--add", "--cacheinfo", "160000," + sha + ",sub"});
  Link("jobs/submodule.job", "../sub");
  Git(dir_, {"add", "jobs/submodule.job"});
  Git(dir_, {"commit", "-q", "-m", "submodule link"});
  sha = Head(dir_);

  Files refused;
  Files files = Read(sha, &refused);
  EXPECT_EQ(files, (Files{{"good.job", "run = good\n"}, {"long-ok.job", "run = ci\n"}}));
  std::map<std::string, std::string> want = {
      {"absolute.job", "symlink to '/etc/passwd' not followed: it is an absolute path"},
      {"escape.job",
       "symlink to '../../outside.job' not followed: it leads outside the commit's tree"},
      {"escape-later.job",
       "symlink to '../shared/up.job' not followed: 'shared/up.job' -> '../../x.job' leads "
       "outside the commit's tree"},
      {"dangling.job",
       "symlink to '../shared/missing.job' not followed: it names 'shared/missing.job', which is "
       "not in the commit"},
      {"dir.job", "symlink to '../shared' not followed: it names 'shared', a directory"},
      {"root.job", "symlink to '..' not followed: it names a directory"},
      {"file-as-dir.job",
       "symlink to '../shared/ci.job/x' not followed: it goes through 'shared/ci.job', a file, "
       "as if a directory"},
      {"loop-a.job", "symlink to 'loop-b.job' not followed: more than " + std::to_string(hops) +
                         " symlinks in a chain"},
      {"loop-b.job", "symlink to 'loop-a.job' not followed: more than " + std::to_string(hops) +
                         " symlinks in a chain"},
      {"too-long.job", "symlink to 'long-ok.job' not followed: more than " + std::to_string(hops) +
                           " symlinks in a chain"},
      {"submodule.job", "symlink to '../sub' not followed: it names 'sub', a submodule"},
  };
  EXPECT_EQ(refused, want);
  // Without a place to report them they are still left out, not an error.
  EXPECT_EQ(Read(sha, nullptr).size(), 2u);
}

}  // namespace
}  // namespace wtd::git
