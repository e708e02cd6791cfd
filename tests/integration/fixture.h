// IntegrationTest: the fixture of every integration test. A scratch dir with
// a repository `repo`, a state dir `s` and the job effect file `effect`, and
// helpers that start real daemons on them and read their runs through
// wtctl. Daemons started here are killed with SIGKILL and reaped at the end
// of the test, whatever its outcome; their logs are printed when it failed.
#ifndef WTD_TESTS_INTEGRATION_FIXTURE_H_
#define WTD_TESTS_INTEGRATION_FIXTURE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/temp_dir.h"
#include "integration/harness.h"

namespace wtd::itest {

class IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts wtd on repo_ with the test's state dir, --poll-ms 100 and `extra`
  // arguments; `env` adds variables (e.g. WTD_CRASH_AT=...). Does not wait.
  DaemonProcess* StartDaemon(const std::vector<std::string>& extra = {},
                             const std::vector<std::string>& env = {});
  // The same with another state dir: a second daemon on the same repository.
  DaemonProcess* StartDaemonIn(const std::string& state_dir,
                               const std::vector<std::string>& extra = {},
                               const std::vector<std::string>& env = {});
  // Starts one and waits until it answers `wtctl status`.
  DaemonProcess* StartReady(const std::vector<std::string>& extra = {});
  // Waits until `wtctl status` answers with d's pid; fails if d exits first.
  void WaitReady(DaemonProcess* d);
  // `wtctl stop`, then waits for d to exit 0.
  void StopDaemon(DaemonProcess* d);

  CommandResult Wtctl(const std::vector<std::string>& args, int64_t timeout_ms = 60000) const;
  CommandResult WtctlIn(const std::string& state_dir, const std::vector<std::string>& args,
                        int64_t timeout_ms = 60000) const;
  // `wtctl --json status`; nullopt when no daemon answers.
  std::optional<json> Status() const;
  // `wtctl --json runs --limit 0` (from the daemon or the store), newest
  // first; nullopt if wtctl fails (e.g. the daemon died mid-request).
  std::optional<std::vector<RunRow>> TryRuns() const;
  // The same; a failure of wtctl fails the test.
  std::vector<RunRow> Runs() const;

  // A job body that appends $WTD_SHA to effect_, then `extra` lines.
  std::string EffectJob(const std::string& extra = "") const;
  // The lines of effect_, in order, duplicates kept.
  std::vector<std::string> Effects() const { return Lines(ReadFileOr(effect_)); }

  // True when every sha of `shas` has a terminal run of `job` in `worktree`
  // and no run at all is active. Else false, with the reason in *why.
  bool IsSettled(const std::vector<std::string>& shas, const std::string& job,
                 const std::string& worktree, std::string* why,
                 std::vector<RunRow>* seen = nullptr) const;
  // Waits until IsSettled. Fails showing the runs seen.
  void WaitSettled(const std::vector<std::string>& shas, const std::string& job,
                   const std::string& worktree = "main", int64_t timeout_ms = 60000);
  // Waits until the daemon has finished `n` more poll ticks (with nothing
  // active, if `idle`), so a run that should not exist had every chance to
  // appear.
  void WaitQuietTicks(int n = 3, bool idle = true);
  // Expects `runs` to hold, for (worktree, job), exactly one run per sha of
  // `shas`, each in `state`, and no run for any other sha.
  void ExpectExactlyOnce(const std::vector<RunRow>& runs, const std::vector<std::string>& shas,
                         const std::string& job, const std::string& worktree = "main",
                         const std::string& state = "succeeded");

  // The receipt lines of (worktree, job) in the note of `sha` under
  // refs/notes/wtd, parsed; none when the commit has no note.
  std::vector<json> Receipts(const std::string& sha, const std::string& job,
                             const std::string& worktree = "main") const;
  // Expects what a settled daemon leaves of its locks: no ref under
  // refs/wtd/locks, no lease row in the store at `state_dir` (wtctl locks),
  // and exactly one receipt of (worktree, job) for each sha of `shas`.
  void ExpectLocksReleased(const std::string& state_dir, const std::vector<std::string>& shas,
                           const std::string& job, const std::string& worktree = "main");

  // A job body that, when its working tree is exactly its commit (HEAD at
  // $WTD_SHA, `git status --porcelain` empty), appends $WTD_SHA to effect_,
  // and otherwise appends "dirty SHA" and fails; then leaves an untracked
  // file behind, which the next run in that tree must not see.
  std::string TreeCheckedJob(const std::string& extra = "") const;
  // Expects the worktrees under <state_dir>/worktrees to be exactly those
  // `wtctl worktree list` records: no directory there, admin entry of
  // repo_ pointing there, `wtd/slots/` branch or `locked` file that no
  // record owns, and `git worktree list` agreeing.
  void ExpectWorktreesOwned(const std::string& state_dir);

  TempDir dir_;
  std::string state_dir_;
  std::string effect_;
  GitRepo repo_{""};
  std::vector<std::unique_ptr<DaemonProcess>> daemons_;
};

}  // namespace wtd::itest

#endif  // WTD_TESTS_INTEGRATION_FIXTURE_H_
