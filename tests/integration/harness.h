// Integration-test harness: the real wtd and wtctl binaries (paths compiled
// in as WTD_BIN and WTCTL_BIN) against throw-away git repositories made with
// the git CLI, each test with its own state directory under /tmp.
//
// Nothing here sleeps and hopes: every wait polls a condition against a
// deadline and reports what it was waiting for when the deadline passes.
// Every process started here is killed (kill -9) and reaped when its owner
// dies, so a failing test leaves no daemon behind.
//
// Thread-safety: none; one test thread drives everything.
#ifndef WTD_TESTS_INTEGRATION_HARNESS_H_
#define WTD_TESTS_INTEGRATION_HARNESS_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace wtd::itest {

using json = nlohmann::json;

// Deadlines are generous: two shared cores, and sanitizer builds run the
// daemon 3-5x slower. WTD_IT_TIMEOUT_SCALE (a number) stretches them further.
int64_t ScaledMs(int64_t ms);

// Output of a finished command.
struct CommandResult {
  int exit_code = -1;            // exit status, or -1 when killed by a signal
  int term_signal = 0;           // the signal that ended it, 0 if it exited
  bool timed_out = false;        // killed because it overran its timeout
  std::string out;               // stdout
  std::string err;               // stderr
  std::string Describe() const;  // for failure messages
};

// Runs `argv` (argv[0] searched in PATH) with `env` (NAME=value entries)
// added to this process's environment, stdin /dev/null. Kills it with
// SIGKILL after `timeout_ms`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {}, int64_t timeout_ms = 60000);

// Polls `done` every `interval_ms` until it returns true or `timeout_ms`
// passes. Returns the last result of `done`.
bool WaitFor(const std::function<bool()>& done, int64_t timeout_ms, int64_t interval_ms = 50);

std::string ReadFileOr(const std::string& path, const std::string& otherwise = "");
void WriteFileOrDie(const std::string& path, const std::string& content);
std::vector<std::string> Lines(const std::string& text);

// A git repository (or a linked worktree of one) driven with the git CLI.
// Identity is set in the repository's own config; the caller's global and
// system configs are ignored (see IsolateGitConfig).
class GitRepo {
 public:
  explicit GitRepo(std::string dir) : dir_(std::move(dir)) {}

  // `git init -b main` in dir with user.name/email set.
  void Init();
  const std::string& dir() const { return dir_; }

  // `git -C dir args...`; a non-zero exit fails the test. Returns stdout
  // without trailing newlines.
  std::string Git(const std::vector<std::string>& args) const;
  // Writes `file` (relative to dir) without committing it.
  void Write(const std::string& file, const std::string& content) const;
  // Writes `file` (relative to dir), stages everything and commits with the
  // current time. Returns the new HEAD sha.
  std::string Commit(const std::string& file, const std::string& content,
                     const std::string& message) const;
  // Commits jobs/<name>.job with `body`.
  std::string CommitJob(const std::string& name, const std::string& body,
                        const std::string& message = "") const;
  std::string Head() const { return Git({"rev-parse", "HEAD"}); }
  // Every commit reachable from `rev`.
  std::vector<std::string> RevList(const std::string& rev = "HEAD") const;

 private:
  std::string dir_;
};

// Makes every git child of this process ignore the user's and the system's
// git configuration.
void IsolateGitConfig();

// One wtd process started by the test. Destruction kills it with SIGKILL
// (if it still runs) and reaps it.
class DaemonProcess {
 public:
  // Starts WTD_BIN with `args`, `env` added, stdout+stderr to `log_path`.
  // The child gets PR_SET_PDEATHSIG=SIGKILL so it dies with the test.
  DaemonProcess(const std::vector<std::string>& args, const std::vector<std::string>& env,
                std::string log_path);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True while the process has not exited (reaps it when it has).
  bool Running();
  // The exit code once it has exited (128 + signal if killed), else nullopt.
  std::optional<int> exit_code();
  // Waits up to `timeout_ms` for it to exit; returns its exit code.
  std::optional<int> WaitExit(int64_t timeout_ms);
  // kill -9 and reap. Returns its exit code (137 unless it had exited).
  int Kill9();
  void Signal(int sig);
  std::string Log() const { return ReadFileOr(log_path_); }
  const std::string& log_path() const { return log_path_; }

 private:
  void Reap(int status);
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// A run as `wtctl --json runs` prints it, the fields the tests look at.
struct RunRow {
  uint64_t id = 0;
  std::string worktree, job, sha, branch, state, error, log_path;
  int64_t attempt = 0;
  std::optional<int64_t> exit_code, term_signal;
};
std::vector<RunRow> ParseRuns(const json& array);
bool IsTerminalState(const std::string& state);

// "a1b2c3d4e5f6..." -> first 12 characters, for messages.
std::string Short(const std::string& sha);
std::string RunsToString(const std::vector<RunRow>& runs);

}  // namespace wtd::itest

#endif  // WTD_TESTS_INTEGRATION_HARNESS_H_
