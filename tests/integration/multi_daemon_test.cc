// Two real wtd processes with two state dirs on one repository and worktree
// (docs/design/locks.md, "Several daemons"): they share nothing but the
// repository, whose lock refs and receipts in notes decide who runs what.
// Without kills each commit's job runs once; with kill -9 and restarts each
// (worktree, job, sha) still has exactly one `succeeded` across the two
// stores and one receipt, and nothing stays locked.
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

constexpr char kJob[] = "effect";
constexpr char kWorktree[] = "main";

class MultiDaemonTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    state_dirs_ = {state_dir_, dir_.Sub("s2")};
  }

  // Starts the daemon of state_dirs_[i] (a short lease, so a lost race is
  // retried within a second).
  DaemonProcess* Start(size_t i) { return StartDaemonIn(state_dirs_[i], {"--lease-ttl-s", "3"}); }

  // Waits until the daemon of state_dirs_[i] answers `wtctl status` as d.
  void WaitReadyIn(size_t i, DaemonProcess* d) {
    bool exited = false;
    bool ok = WaitFor(
        [&] {
          if (!d->Running()) return exited = true;
          CommandResult r = WtctlIn(state_dirs_[i], {"--json", "status"});
          json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
          return r.exit_code == 0 && j.is_object() && j.value("pid", 0) == d->pid();
        },
        ScaledMs(60000), 50);
    ASSERT_FALSE(exited) << "wtd pid " << d->pid() << " on " << state_dirs_[i] << " exited with "
                         << d->exit_code().value_or(-1);
    ASSERT_TRUE(ok) << "wtd pid " << d->pid() << " on " << state_dirs_[i] << " never answered";
  }

  std::optional<std::vector<RunRow>> RunsIn(size_t i) const {
    CommandResult r = WtctlIn(state_dirs_[i], {"--json", "runs", "--limit", "0"});
    if (r.exit_code != 0) return std::nullopt;
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (!j.is_array()) return std::nullopt;
    return ParseRuns(j);
  }

  // True when each store, on its own, has a terminal run of kJob for every
  // sha of `shas` and no active run (one that lost the lock to the other
  // daemon may still be waiting to look again). *seen gets both stores' runs.
  bool BothSettled(const std::vector<std::string>& shas, std::string* why,
                   std::vector<std::vector<RunRow>>* seen) const {
    seen->assign(state_dirs_.size(), {});
    for (size_t i = 0; i < state_dirs_.size(); ++i) {
      std::optional<std::vector<RunRow>> runs = RunsIn(i);
      if (!runs) {
        *why = "wtctl runs failed on " + state_dirs_[i];
        return false;
      }
      (*seen)[i] = *runs;
      std::set<std::string> done;
      for (const RunRow& r : *runs) {
        if (!IsTerminalState(r.state)) {
          *why = state_dirs_[i] + ": run " + std::to_string(r.id) + " is " + r.state;
          return false;
        }
        if (r.job == kJob && r.worktree == kWorktree) done.insert(r.sha);
      }
      for (const std::string& sha : shas) {
        if (!done.count(sha)) {
          *why = state_dirs_[i] + ": no run for " + Short(sha);
          return false;
        }
      }
    }
    return true;
  }

  // Waits until BothSettled; *stores gets each store's runs. On a timeout
  // the message shows them, and the git lock files present (a writer killed
  // while it held one leaves it behind).
  void WaitBothSettled(const std::vector<std::string>& shas,
                       std::vector<std::vector<RunRow>>* stores, int64_t timeout_ms = 120000) {
    std::string why;
    bool ok = WaitFor([&] { return BothSettled(shas, &why, stores); }, ScaledMs(timeout_ms), 100);
    ASSERT_TRUE(ok) << "the two stores did not settle in time (" << why << ")\n"
                    << "lock files: "
                    << RunCommand({"find", repo_.dir() + "/.git", "-name", "*.lock"}).out << "\n"
                    << Describe(*stores);
  }

  std::string Describe(const std::vector<std::vector<RunRow>>& stores) const {
    std::string out;
    for (size_t i = 0; i < stores.size(); ++i) {
      out += state_dirs_[i] + ": " + RunsToString(stores[i]);
    }
    return out;
  }

  // Receipt lines of (kWorktree, kJob) in the note of `sha`.
  int ReceiptLines(const std::string& sha) const {
    CommandResult r = RunCommand({"git", "-C", repo_.dir(), "notes", "--ref=wtd", "show", sha});
    if (r.exit_code != 0) return 0;  // no note
    int n = 0;
    for (const std::string& line : Lines(r.out)) {
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      n += j.is_object() && j.value("job", "") == kJob && j.value("worktree", "") == kWorktree;
    }
    return n;
  }

  // For every sha: exactly one `succeeded` run of kJob across the stores and
  // exactly one receipt line. With `others_skipped`, every other run of that
  // sha is `skipped`.
  void ExpectOneSuccessAndReceiptPerSha(const std::vector<std::vector<RunRow>>& stores,
                                        const std::vector<std::string>& shas, bool others_skipped) {
    std::map<std::string, int> succeeded;
    for (const std::vector<RunRow>& runs : stores) {
      for (const RunRow& r : runs) {
        if (r.job != kJob || r.worktree != kWorktree) continue;
        if (r.state == "succeeded") {
          ++succeeded[r.sha];
        } else if (others_skipped) {
          EXPECT_EQ(r.state, "skipped") << "run " << r.id << " on " << Short(r.sha);
          EXPECT_EQ(r.error.rfind("done by ", 0), 0u) << "run " << r.id << ": " << r.error;
        }
      }
    }
    std::string wrong;
    for (const std::string& sha : shas) {
      int receipts = ReceiptLines(sha);
      if (succeeded[sha] != 1 || receipts != 1) {
        wrong += "  " + Short(sha) + ": " + std::to_string(succeeded[sha]) + " succeeded, " +
                 std::to_string(receipts) + " receipt line(s)\n";
      }
    }
    EXPECT_EQ(wrong, "") << "want 1 succeeded and 1 receipt line per sha\n" << Describe(stores);
  }

  // No lock ref in the repository, no lease row in either store.
  void ExpectNothingLocked() {
    EXPECT_EQ(repo_.Git({"for-each-ref", "refs/wtd/locks"}), "");
    for (const std::string& s : state_dirs_) {
      CommandResult r = WtctlIn(s, {"--json", "locks"});
      ASSERT_EQ(r.exit_code, 0) << r.Describe();
      json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
      ASSERT_TRUE(j.is_object() && j.contains("locks")) << r.out;
      EXPECT_TRUE(j["locks"].empty()) << s << ": " << j.dump(2);
    }
  }

  std::vector<std::string> state_dirs_;
};

TEST_F(MultiDaemonTest, TwoDaemonsRunEachCommitOnceWithoutKills) {
  repo_.CommitJob(kJob, EffectJob());
  DaemonProcess* a = Start(0);
  DaemonProcess* b = Start(1);
  ASSERT_NO_FATAL_FAILURE(WaitReadyIn(0, a));
  ASSERT_NO_FATAL_FAILURE(WaitReadyIn(1, b));
  for (int i = 0; i < 24; ++i) {
    repo_.Commit("f" + std::to_string(i % 3), std::to_string(i), "linear " + std::to_string(i));
    if (i == 10) {
      // A side branch, checked out in the watched worktree for a while, then
      // merged with a merge commit.
      repo_.Git({"checkout", "-q", "-b", "side"});
      for (int k = 0; k < 3; ++k) {
        repo_.Commit("side" + std::to_string(k), "s", "side " + std::to_string(k));
      }
      repo_.Git({"checkout", "-q", "main"});
    }
  }
  repo_.Git({"merge", "-q", "--no-ff", "-m", "merge side", "side"});
  repo_.Commit("last", "x", "after the merge");
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_GE(shas.size(), 30u);
  ASSERT_NE(repo_.Git({"rev-list", "--merges", "HEAD"}), "");

  std::vector<std::vector<RunRow>> stores;
  ASSERT_NO_FATAL_FAILURE(WaitBothSettled(shas, &stores));
  ExpectOneSuccessAndReceiptPerSha(stores, shas, /*others_skipped=*/true);
  std::vector<std::string> effects = Effects();
  std::map<std::string, int> times;
  for (const std::string& line : effects) ++times[line];
  for (const std::string& sha : shas) {
    EXPECT_EQ(times[sha], 1) << "the job's effect for " << Short(sha);
  }
  EXPECT_EQ(effects.size(), shas.size()) << "effect lines";
  ExpectNothingLocked();
}

// A kill in the middle of a ref write leaves that ref's `.lock` file; it is
// taken as abandoned once a minute old (docs/design/locks.md), and the loop
// retries the receipt or release meanwhile, so settling may take that long.
TEST_F(MultiDaemonTest, TwoDaemonsKilledAndRestartedRecordOneSuccessPerCommit) {
  repo_.CommitJob(kJob, EffectJob());
  std::vector<DaemonProcess*> up = {Start(0), Start(1)};
  ASSERT_NO_FATAL_FAILURE(WaitReadyIn(0, up[0]));
  ASSERT_NO_FATAL_FAILURE(WaitReadyIn(1, up[1]));
  std::vector<int> restart_at = {-1, -1};  // commit index; -1: running
  std::mt19937 rng(10);
  int kills = 0;
  for (int i = 0; i < 100; ++i) {
    std::string sha =
        repo_.Commit("f" + std::to_string(i % 5), std::to_string(i), "c" + std::to_string(i));
    if (rng() % 4 == 0) {
      // Kill one that runs, after a delay that lands it at some step of the
      // commit's handling (detection, lock, job, receipt, release).
      size_t victim = rng() % 2;
      int after_ms = static_cast<int>(rng() % 400);
      if (restart_at[victim] < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(after_ms));
        up[victim]->Kill9();
        ++kills;
        restart_at[victim] = i + static_cast<int>(rng() % 4);
      }
    }
    for (size_t d = 0; d < up.size(); ++d) {
      if (restart_at[d] >= 0 && restart_at[d] <= i) {
        up[d] = Start(d);
        restart_at[d] = -1;
      }
    }
    // Pace the commits: until the job ran for this one (or a while passed,
    // when both daemons are down or restarting).
    WaitFor(
        [&] {
          for (const std::string& line : Effects()) {
            if (line == sha) return true;
          }
          return false;
        },
        ScaledMs(1000), 20);
  }
  for (size_t d = 0; d < up.size(); ++d) {
    if (restart_at[d] >= 0) up[d] = Start(d);
  }
  ASSERT_NO_FATAL_FAILURE(WaitReadyIn(0, up[0]));
  ASSERT_NO_FATAL_FAILURE(WaitReadyIn(1, up[1]));
  EXPECT_GE(kills, 10) << "the schedule should kill often";

  std::vector<std::string> shas = repo_.RevList();
  std::vector<std::vector<RunRow>> stores;
  ASSERT_NO_FATAL_FAILURE(WaitBothSettled(shas, &stores, 200000));
  ExpectOneSuccessAndReceiptPerSha(stores, shas, /*others_skipped=*/false);
  std::set<std::string> ran;
  for (const std::string& line : Effects()) ran.insert(line);
  for (const std::string& sha : shas) {
    EXPECT_TRUE(ran.count(sha)) << "the job never ran for " << Short(sha);
  }
  ExpectNothingLocked();
}

}  // namespace
}  // namespace wtd::itest
