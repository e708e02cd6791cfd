// The job filters against a real repository: `branches` globs, `paths`
// against the commit's changes versus its first parent, `message` regexes.
// A job `all` without filters runs for every commit, so waiting for its runs
// means the daemon has seen (and matched the filtered jobs against) each one.
#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class FiltersTest : public IntegrationTest {
 protected:
  // Commits the jobs `all` (no filter) and `filtered` (`filter` lines).
  void CommitJobs(const std::string& filter) {
    repo_.Write("jobs/all.job", "run = true\n");
    repo_.Commit("jobs/filtered.job", "run = true\n" + filter, "add the jobs");
  }
  // `git checkout -b branch from`, a commit on it, and waits until the
  // daemon ran it. Returns its sha.
  std::string CommitOnNewBranch(const std::string& branch, const std::string& from) {
    repo_.Git({"checkout", "-q", "-b", branch, from});
    std::string sha = repo_.Commit(branch + ".txt", branch, "on " + branch);
    WaitSettled({sha}, "all");
    return sha;
  }
  // Waits until every commit on HEAD ran `all` and the daemon is quiet, then
  // checks `filtered` ran exactly for `want` and `all` for every commit.
  std::vector<RunRow> ExpectFilteredRanFor(const std::vector<std::string>& want) {
    std::vector<std::string> shas = repo_.RevList();
    WaitSettled(shas, "all");
    if (HasFatalFailure()) return {};
    WaitQuietTicks();
    if (HasFatalFailure()) return {};
    std::vector<RunRow> runs = Runs();
    ExpectExactlyOnce(runs, want, "filtered");
    ExpectExactlyOnce(runs, shas, "all");
    return runs;
  }
};

TEST_F(FiltersTest, BranchesGlobsSelectTheBranchesAJobRunsOn) {
  CommitJobs("branches = release/* hotfix\n");
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "all"));
  std::vector<std::string> base = repo_.RevList();  // on main: not matched

  std::string release = CommitOnNewBranch("release/1.0", "main");
  std::string nested = CommitOnNewBranch("release/2.x/rc", "main");  // '*' spans '/'
  std::string hotfix = CommitOnNewBranch("hotfix", "main");
  std::string feature = CommitOnNewBranch("feature/x", "main");
  std::string hotfix2 = CommitOnNewBranch("hotfix-2", "main");          // not "hotfix"
  std::string prefixed = CommitOnNewBranch("old-release/1.0", "main");  // anchored
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());

  std::vector<RunRow> runs = Runs();
  // A new branch runs only the commits new to the repository: the main
  // commits it starts from were processed on main (where the filter left
  // them out) and do not run again.
  ExpectExactlyOnce(runs, {release, nested, hotfix}, "filtered");
  std::vector<std::string> all = base;
  all.insert(all.end(), {release, nested, hotfix, feature, hotfix2, prefixed});
  ExpectExactlyOnce(runs, all, "all");
  for (const RunRow& r : runs) {
    if (r.job != "filtered") continue;
    EXPECT_TRUE(r.branch == "release/1.0" || r.branch == "release/2.x/rc" || r.branch == "hotfix")
        << "run " << r.id << " of the filtered job on branch " << r.branch;
  }
  StopDaemon(d);
}

TEST_F(FiltersTest, PathsMatchTheChangesAgainstTheFirstParent) {
  CommitJobs("paths = src/** docs/*.md\n");
  DaemonProcess* d = StartReady();
  std::vector<std::string> want;
  want.push_back(repo_.Commit("src/a/b.c", "int b;\n", "deep source file"));  // src/**
  repo_.Commit("README.md", "readme\n", "top-level file");
  want.push_back(repo_.Commit("docs/guide.md", "guide\n", "doc page"));  // docs/*.md
  repo_.Commit("docs/sub/deep.md", "deep\n", "nested doc page");         // '*' stops at '/'
  repo_.Commit("docs/guide.txt", "txt\n", "doc, other extension");
  repo_.Git({"rm", "-q", "src/a/b.c"});
  want.push_back(repo_.Commit("notes.txt", "removed b.c\n", "delete a source file"));

  // A merge whose first parent changed src/ but whose own change against
  // that first parent is only notes: not matched (against the second parent
  // it would be).
  repo_.Git({"branch", "side"});
  want.push_back(repo_.Commit("src/x.c", "int x;\n", "source on main"));
  repo_.Git({"checkout", "-q", "side"});
  std::string side = repo_.Commit("notes.txt", "side notes\n", "notes on side");
  repo_.Git({"checkout", "-q", "main"});
  repo_.Git({"merge", "-q", "--no-ff", "-m", "merge side", "side"});
  std::string merge = repo_.Head();
  // And a merge that brings a source change in from the second parent.
  repo_.Git({"checkout", "-q", "-b", "side2", "main"});
  want.push_back(repo_.Commit("src/y.c", "int y;\n", "source on side2"));
  repo_.Git({"checkout", "-q", "main"});
  repo_.Commit("other.txt", "o\n", "unrelated on main");
  repo_.Git({"merge", "-q", "--no-ff", "-m", "merge side2", "side2"});
  want.push_back(repo_.Head());

  std::vector<RunRow> runs;
  ASSERT_NO_FATAL_FAILURE(runs = ExpectFilteredRanFor(want));
  for (const RunRow& r : runs) {
    EXPECT_FALSE(r.job == "filtered" && (r.sha == merge || r.sha == side))
        << "run " << r.id << ": the first-parent diff of " << Short(r.sha)
        << " touches no src/ file";
  }
  StopDaemon(d);
}

TEST_F(FiltersTest, MessageRegexSelectsTheCommitsAJobRunsFor) {
  // (A trailing blank would be trimmed from the value: "[ ]" keeps it.)
  CommitJobs("message = ^(feat|fix)(\\([a-z]+\\))?:[ ]\n");
  DaemonProcess* d = StartReady();
  std::vector<std::string> want;
  want.push_back(repo_.Commit("1", "1", "feat: one"));
  repo_.Commit("2", "2", "docs: two");
  want.push_back(repo_.Commit("3", "3", "fix(core): three"));
  repo_.Commit("4", "4", "refactor: feat: four");  // '^' anchors at the start
  repo_.Commit("5", "5", "Feat: five");            // case-sensitive
  repo_.Commit("6", "6", "feat:six");              // the space is required
  ASSERT_NO_FATAL_FAILURE(ExpectFilteredRanFor(want));
  StopDaemon(d);
}

}  // namespace
}  // namespace wtd::itest
