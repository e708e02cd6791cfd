// Tests of git::Repository's object reads: commits, the new-commit walk,
// changed paths and job files read from commit trees.
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
using Paths = std::vector<std::string>;

class HistoryTest : public GitFixture {
 protected:
  void SetUp() override {
    GitFixture::SetUp();
    dir_ = InitRepo("repo");
  }

  // Opens the repository (after the fixture commits exist).
  Repository* Repo() {
    if (!repo_) {
      auto repo = Repository::Open(dir_);
      EXPECT_TRUE(repo.ok()) << repo.status().ToString();
      if (repo.ok()) repo_ = std::move(repo).value();
    }
    return repo_.get();
  }

  // WalkNew's commits (shas, oldest first), failing the test on an error.
  Paths NewOk(const std::string& head, const Paths& hide, int64_t min_time_s = 0,
              NewHistory* full = nullptr) {
    auto walked = Repo()->WalkNew(head, hide, min_time_s);
    EXPECT_TRUE(walked.ok()) << walked.status().ToString();
    if (!walked.ok()) return Paths{};
    Paths out;
    for (const WalkedCommit& c : walked->commits) out.push_back(c.sha);
    if (full != nullptr) *full = *walked;
    return out;
  }

  Paths Changed(const std::string& sha) {
    auto paths = Repo()->ChangedPaths(sha);
    EXPECT_TRUE(paths.ok()) << paths.status().ToString();
    return paths.ok() ? *paths : Paths{};
  }

  std::string dir_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(HistoryTest, LooksUpCommitFields) {
  std::string first = Commit(dir_, "a.txt", "a", "first");
  std::string second = Commit(dir_, "a.txt", "b", "Subject line\n\nBody text.\n", 1700001234);
  auto info = Repo()->LookupCommit(second);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->sha, second);
  EXPECT_EQ(info->parents, Paths{first});
  EXPECT_EQ(info->author_name, "Ada Tester");
  EXPECT_EQ(info->author_email, "ada@example.com");
  EXPECT_EQ(info->time_s, 1700001234);
  EXPECT_EQ(info->subject, "Subject line");
  EXPECT_EQ(info->message, "Subject line\n\nBody text.\n");
  auto root = Repo()->LookupCommit(first);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->parents.empty());
}

TEST_F(HistoryTest, UnknownShaIsNotFoundAndMalformedShaIsInvalid) {
  Commit(dir_, "a.txt", "a", "first");
  std::string unknown(40, 'e');
  auto missing = Repo()->LookupCommit(unknown);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find(unknown), std::string::npos);
  EXPECT_NE(missing.status().message().find(dir_), std::string::npos);
  auto bad = Repo()->LookupCommit("HEAD");
  EXPECT_TRUE(bad.status().IsInvalidArgument()) << bad.status().ToString();
  EXPECT_TRUE(Repo()->WalkNew(unknown, {}, 0).status().IsNotFound());
  // An unknown hidden sha (a cursor whose commit was collected) is ignored.
  auto walked = Repo()->WalkNew(Head(dir_), {unknown, "HEAD"}, 0);
  ASSERT_TRUE(walked.ok()) << walked.status().ToString();
  EXPECT_EQ(walked->unknown_hidden, 2u);
  EXPECT_EQ(walked->commits.size(), 1u);
}

TEST_F(HistoryTest, WalkNewPutsParentsBeforeChildrenAcrossAMerge) {
  std::string a = Commit(dir_, "a.txt", "a", "A");
  Git(dir_, {"checkout", "-q", "-b", "side"});
  std::string b1 = Commit(dir_, "b.txt", "b1", "B1");
  std::string b2 = Commit(dir_, "b.txt", "b2", "B2");
  Git(dir_, {"checkout", "-q", "main"});
  std::string c = Commit(dir_, "c.txt", "c", "C");
  Git(dir_, {"merge", "-q", "--no-ff", "-m", "M", "side"});
  std::string m = Head(dir_);
  NewHistory full;
  Paths got = NewOk(m, {a}, 0, &full);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.back(), m);
  auto pos = [&got](const std::string& sha) {
    return std::find(got.begin(), got.end(), sha) - got.begin();
  };
  EXPECT_LT(pos(b1), pos(b2));
  EXPECT_LT(pos(c), pos(m));
  EXPECT_LT(pos(b2), pos(m));
  EXPECT_EQ(full.commits.back().parents, (Paths{c, b2}));
  Paths all = NewOk(m, {});
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front(), a);
  // Either side of the merge hidden: only the other side and the merge.
  EXPECT_EQ(NewOk(m, {b2}), (Paths{c, m}));
  EXPECT_EQ(NewOk(m, {c}), (Paths{b1, b2, m}));
  EXPECT_EQ(NewOk(m, {c, b1}), (Paths{b2, m}));
}

TEST_F(HistoryTest, WalkNewStopsAtHiddenCommitsAndExcludesThem) {
  std::vector<std::string> shas;
  for (int i = 0; i < 5; ++i) shas.push_back(Commit(dir_, "f.txt", std::to_string(i), "c"));
  EXPECT_EQ(NewOk(shas[4], {shas[2]}), (Paths{shas[3], shas[4]}));
  EXPECT_TRUE(NewOk(shas[4], {shas[4]}).empty());
  // A hidden commit that is not an ancestor hides nothing of the head's.
  Git(dir_, {"checkout", "-q", "-b", "other", shas[1]});
  std::string o = Commit(dir_, "o.txt", "o", "O");
  EXPECT_EQ(NewOk(shas[4], {o}), (Paths{shas[2], shas[3], shas[4]}));
}

TEST_F(HistoryTest, WalkNewCutsOffCommitsOlderThanMinTimeAndAllBehindThem) {
  std::string t1 = Commit(dir_, "f.txt", "1", "old", 1000);
  std::string t2 = Commit(dir_, "f.txt", "2", "edge", 2000);
  std::string t3 = Commit(dir_, "f.txt", "3", "new", 3000);
  NewHistory full;
  EXPECT_EQ(NewOk(t3, {}, 2000, &full), (Paths{t2, t3}));
  EXPECT_EQ(full.cut_off, Paths{t1});
  EXPECT_EQ(NewOk(t3, {}, 2001, &full), (Paths{t3}));
  EXPECT_EQ(full.cut_off, Paths{t2});
  EXPECT_EQ(NewOk(t3, {}, 0, &full), (Paths{t1, t2, t3}));
  EXPECT_TRUE(full.cut_off.empty());
  // Clock skew: a commit dated after its child is still behind the old
  // child, so it is cut off with it.
  std::string skewed = Commit(dir_, "f.txt", "4", "dated late", 9000);
  std::string old = Commit(dir_, "f.txt", "5", "dated early", 1500);
  std::string top = Commit(dir_, "f.txt", "6", "top", 9500);
  EXPECT_EQ(NewOk(top, {}, 2500, &full), (Paths{top}));
  EXPECT_EQ(full.cut_off, Paths{old});
}

TEST_F(HistoryTest, WalkNewEndsAtTheShallowBoundary) {
  std::vector<std::string> shas;
  for (int i = 0; i < 5; ++i) shas.push_back(Commit(dir_, "f.txt", std::to_string(i), "c"));
  std::string clone = Path("shallow");
  Git(base_, {"clone", "-q", "--depth", "2", "file://" + dir_, clone});
  auto repo = Repository::Open(clone);
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  auto walked = (*repo)->WalkNew(shas[4], {}, 0);
  ASSERT_TRUE(walked.ok()) << walked.status().ToString();
  ASSERT_EQ(walked->commits.size(), 2u);
  EXPECT_EQ(walked->commits[0].sha, shas[3]);
  ASSERT_EQ(walked->truncated.size(), 1u);
  EXPECT_EQ(walked->truncated[0], shas[3] + ": shallow boundary");
}

TEST_F(HistoryTest, WalkNewEndsWhereAParentCannotBeRead) {
  std::string a = Commit(dir_, "f.txt", "a", "A");
  std::string b = Commit(dir_, "f.txt", "b", "B");
  std::string c = Commit(dir_, "f.txt", "c", "C");
  // Remove B's object (loose): a pruned or never-fetched commit.
  fs::remove(dir_ + "/.git/objects/" + b.substr(0, 2) + "/" + b.substr(2));
  NewHistory full;
  EXPECT_EQ(NewOk(c, {}, 0, &full), Paths{c});
  ASSERT_EQ(full.truncated.size(), 1u);
  EXPECT_NE(full.truncated[0].find("parent " + b + " cannot be read"), std::string::npos);
  EXPECT_EQ(NewOk(c, {a}), Paths{c});
}

TEST_F(HistoryTest, WalkNewHidesACommitReachedFirstThroughANewerPath) {
  // main: A - B - C; hidden X is a child of B dated before A (skew). The
  // head reaches B through C before the walk reaches X.
  std::string a = Commit(dir_, "f.txt", "a", "A", 1000);
  std::string b = Commit(dir_, "f.txt", "b", "B", 2000);
  std::string c = Commit(dir_, "f.txt", "c", "C", 3000);
  Git(dir_, {"checkout", "-q", "-b", "x", b});
  std::string x = Commit(dir_, "x.txt", "x", "X", 500);
  EXPECT_EQ(NewOk(c, {x}), Paths{c});
  EXPECT_EQ(NewOk(c, {a}), (Paths{b, c}));
}

TEST_F(HistoryTest, ChangedPathsOfRootCommitListsItsWholeTree) {
  WriteFile(dir_ + "/a.txt", "a");
  WriteFile(dir_ + "/jobs/build.job", "x");
  std::string root = CommitAll(dir_, "root");
  EXPECT_EQ(Changed(root), (Paths{"a.txt", "jobs/build.job"}));
}

TEST_F(HistoryTest, ChangedPathsCoversModifyAddDeleteAndRename) {
  WriteFile(dir_ + "/keep.txt", "k");
  WriteFile(dir_ + "/mod.txt", "m1");
  WriteFile(dir_ + "/del.txt", "d");
  WriteFile(dir_ + "/old/name.txt", "a file long enough to be detected as a rename\n");
  CommitAll(dir_, "base");
  WriteFile(dir_ + "/mod.txt", "m2");
  WriteFile(dir_ + "/dir/new.txt", "n");
  fs::remove(dir_ + "/del.txt");
  fs::create_directories(dir_ + "/new");
  Git(dir_, {"mv", "old/name.txt", "new/name.txt"});
  std::string sha = CommitAll(dir_, "change");
  EXPECT_EQ(Changed(sha),
            (Paths{"del.txt", "dir/new.txt", "mod.txt", "new/name.txt", "old/name.txt"}));
}

TEST_F(HistoryTest, ChangedPathsOfMergeIsAgainstFirstParent) {
  Commit(dir_, "a.txt", "a", "A");
  Git(dir_, {"checkout", "-q", "-b", "side"});
  Commit(dir_, "side.txt", "s", "S");
  Git(dir_, {"checkout", "-q", "main"});
  Commit(dir_, "main.txt", "m", "M1");
  Git(dir_, {"merge", "-q", "--no-ff", "-m", "merge", "side"});
  EXPECT_EQ(Changed(Head(dir_)), (Paths{"side.txt"}));
}

TEST_F(HistoryTest, ReadTreeFilesReadsTheCommitNotTheCheckout) {
  WriteFile(dir_ + "/jobs/build.job", "cmd = make\n");
  WriteFile(dir_ + "/jobs/test.job", "cmd = ctest\n");
  WriteFile(dir_ + "/jobs/README.md", "docs");
  WriteFile(dir_ + "/jobs/nested/deep.job", "not direct");
  std::string sha = CommitAll(dir_, "jobs");
  WriteFile(dir_ + "/jobs/build.job", "cmd = uncommitted\n");
  WriteFile(dir_ + "/jobs/extra.job", "untracked");
  auto files = Repo()->ReadTreeFiles(sha, "jobs", ".job");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(*files, (std::map<std::string, std::string>{{"build.job", "cmd = make\n"},
                                                        {"test.job", "cmd = ctest\n"}}));
}

TEST_F(HistoryTest, ReadTreeFilesReadsNestedDirAndOlderCommits) {
  std::string first = Commit(dir_, "ci/jobs/a.job", "v1", "v1");
  std::string second = Commit(dir_, "ci/jobs/a.job", "v2", "v2");
  EXPECT_EQ(Repo()->ReadTreeFiles(first, "ci/jobs", ".job")->at("a.job"), "v1");
  EXPECT_EQ(Repo()->ReadTreeFiles(second, "ci/jobs/", ".job")->at("a.job"), "v2");
}

TEST_F(HistoryTest, ReadTreeFilesOfAbsentOrNonDirectoryIsEmpty) {
  WriteFile(dir_ + "/jobs", "a file, not a dir");
  std::string sha = CommitAll(dir_, "no jobs dir");
  auto blob = Repo()->ReadTreeFiles(sha, "jobs", ".job");
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_TRUE(blob->empty());
  auto absent = Repo()->ReadTreeFiles(sha, "ci/jobs", ".job");
  ASSERT_TRUE(absent.ok()) << absent.status().ToString();
  EXPECT_TRUE(absent->empty());
  EXPECT_TRUE(Repo()->ReadTreeFiles(std::string(40, 'c'), "jobs", ".job").status().IsNotFound());
}

TEST_F(HistoryTest, SeesObjectsWrittenAndRepackedAfterOpen) {
  std::string first = Commit(dir_, "jobs/a.job", "v1", "v1");
  ASSERT_TRUE(Repo()->LookupCommit(first).ok());
  std::string second = Commit(dir_, "jobs/a.job", "v2", "v2");
  Git(dir_, {"gc", "-q", "--prune=now"});
  std::string third = Commit(dir_, "jobs/a.job", "v3", "v3");
  EXPECT_EQ(NewOk(third, {first}), (Paths{second, third}));
  Git(dir_, {"gc", "-q", "--prune=now"});
  auto files = Repo()->ReadTreeFiles(third, "jobs", ".job");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->at("a.job"), "v3");
  EXPECT_EQ(Changed(second), (Paths{"jobs/a.job"}));
}

}  // namespace
}  // namespace wtd::git
