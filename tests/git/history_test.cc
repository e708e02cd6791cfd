// Tests of git::Repository's object reads: commits, history walks, ancestry,
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

  Paths NewOk(const std::string& head, const std::string& stop, int64_t min_time_s = 0,
              size_t limit = 100) {
    auto commits = Repo()->NewCommits(head, stop, min_time_s, limit);
    EXPECT_TRUE(commits.ok()) << commits.status().ToString();
    return commits.ok() ? *commits : Paths{};
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
  EXPECT_TRUE(Repo()->NewCommits(unknown, "", 0, 10).status().IsNotFound());
  EXPECT_TRUE(Repo()->NewCommits(Head(dir_), unknown, 0, 10).status().IsNotFound());
}

TEST_F(HistoryTest, NewCommitsPutsParentsBeforeChildrenAcrossAMerge) {
  std::string a = Commit(dir_, "a.txt", "a", "A");
  Git(dir_, {"checkout", "-q", "-b", "side"});
  std::string b1 = Commit(dir_, "b.txt", "b1", "B1");
  std::string b2 = Commit(dir_, "b.txt", "b2", "B2");
  Git(dir_, {"checkout", "-q", "main"});
  std::string c = Commit(dir_, "c.txt", "c", "C");
  Git(dir_, {"merge", "-q", "--no-ff", "-m", "M", "side"});
  std::string m = Head(dir_);
  Paths got = NewOk(m, a);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.back(), m);
  auto pos = [&got](const std::string& sha) {
    return std::find(got.begin(), got.end(), sha) - got.begin();
  };
  EXPECT_LT(pos(b1), pos(b2));
  EXPECT_LT(pos(c), pos(m));
  EXPECT_LT(pos(b2), pos(m));
  Paths all = NewOk(m, "");
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front(), a);
}

TEST_F(HistoryTest, NewCommitsStopsAtTheCursorAndExcludesIt) {
  std::vector<std::string> shas;
  for (int i = 0; i < 5; ++i) shas.push_back(Commit(dir_, "f.txt", std::to_string(i), "c"));
  EXPECT_EQ(NewOk(shas[4], shas[2]), (Paths{shas[3], shas[4]}));
  EXPECT_TRUE(NewOk(shas[4], shas[4]).empty());
}

TEST_F(HistoryTest, NewCommitsLimitKeepsTheOldest) {
  std::vector<std::string> shas;
  for (int i = 0; i < 5; ++i) shas.push_back(Commit(dir_, "f.txt", std::to_string(i), "c"));
  EXPECT_EQ(NewOk(shas[4], "", 0, 2), (Paths{shas[0], shas[1]}));
  EXPECT_EQ(NewOk(shas[4], shas[0], 0, 3), (Paths{shas[1], shas[2], shas[3]}));
  EXPECT_TRUE(NewOk(shas[4], "", 0, 0).empty());
}

TEST_F(HistoryTest, NewCommitsDropsCommitsOlderThanMinTime) {
  std::string t1 = Commit(dir_, "f.txt", "1", "old", 1000);
  std::string t2 = Commit(dir_, "f.txt", "2", "edge", 2000);
  std::string t3 = Commit(dir_, "f.txt", "3", "new", 3000);
  EXPECT_EQ(NewOk(t3, "", 2000), (Paths{t2, t3}));
  EXPECT_EQ(NewOk(t3, "", 2001), (Paths{t3}));
  EXPECT_EQ(NewOk(t3, "", 2000, 1), (Paths{t2}));
  EXPECT_EQ(NewOk(t3, "", 0), (Paths{t1, t2, t3}));
}

TEST_F(HistoryTest, IsAncestorFollowsHistoryAndDetectsRewrites) {
  std::string a = Commit(dir_, "f.txt", "a", "A");
  std::string b = Commit(dir_, "f.txt", "b", "B");
  EXPECT_TRUE(*Repo()->IsAncestor(a, b));
  EXPECT_FALSE(*Repo()->IsAncestor(b, a));
  EXPECT_TRUE(*Repo()->IsAncestor(b, b));
  // Rewrite: drop B and commit B' on top of A (a force push seen locally).
  Git(dir_, {"reset", "-q", "--hard", a});
  std::string b2 = Commit(dir_, "f.txt", "b-prime", "B'");
  auto rewritten = Repo()->IsAncestor(b, b2);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status().ToString();
  EXPECT_FALSE(*rewritten);
  EXPECT_TRUE(*Repo()->IsAncestor(a, b2));
  auto unknown = Repo()->IsAncestor(std::string(40, 'a'), b2);
  EXPECT_TRUE(unknown.status().IsNotFound()) << unknown.status().ToString();
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
  EXPECT_EQ(NewOk(third, first), (Paths{second, third}));
  Git(dir_, {"gc", "-q", "--prune=now"});
  auto files = Repo()->ReadTreeFiles(third, "jobs", ".job");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->at("a.job"), "v3");
  EXPECT_EQ(Changed(second), (Paths{"jobs/a.job"}));
}

}  // namespace
}  // namespace wtd::git
