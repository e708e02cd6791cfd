// The per-run supervisor end to end (docs/design/supervisor.md), with the
// real wtd, wtctl and wtd-exec: a job outlives a kill -9 of its daemon, its
// log goes on, its timeout is enforced and its outcome recorded with no
// daemon there; the next daemon records that outcome or adopts the live
// supervisor; `wtctl restart` keeps jobs and locks; a supervisor killed
// while its daemon runs takes its job's group with it and the attempt is
// retried; a torn exit file is no outcome; a graceful stop still stops jobs.
//
// Each job waits on a gate file the test creates, so nothing depends on how
// long a sleep lasts, and appends "JOB SHA ATTEMPT" to an executions file,
// so every execution is counted.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <ostream>
#include <set>

#include "integration/fixture.h"

extern char** environ;

namespace wtd::itest {
namespace {

namespace fs = std::filesystem;

// True while `pid` names a process that has not exited (a zombie has).
bool Alive(pid_t pid) {
  if (pid <= 0) return false;
  std::string stat = ReadFileOr("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

// The command name of `pid` ("" when gone).
std::string Comm(pid_t pid) {
  std::string comm = ReadFileOr("/proc/" + std::to_string(pid) + "/comm");
  while (!comm.empty() && comm.back() == '\n') comm.pop_back();
  return comm;
}

// The pids of `parent`'s children that have exited and not been reaped.
std::vector<pid_t> ZombieChildren(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadFileOr(e.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) continue;
    char state = stat[close + 2];
    pid_t ppid = static_cast<pid_t>(std::atol(stat.c_str() + close + 4));
    if (ppid == parent && (state == 'Z' || state == 'X')) out.push_back(std::stoi(name));
  }
  return out;
}

// A wtctl left running in the background, its stdout in a file.
class Background {
 public:
  Background(const std::vector<std::string>& args, std::string out) : out_(std::move(out)) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Background() {
    if (Running()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool Running() {
    if (pid_ <= 0 || status_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
    status_ = status;
    return false;
  }
  // Its exit code once it has exited (-1 when killed by a signal).
  std::optional<int> WaitExit(int64_t timeout_ms) {
    WaitFor([&] { return !Running(); }, timeout_ms, 20);
    if (!status_) return std::nullopt;
    return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : -1;
  }
  std::string Out() const { return ReadFileOr(out_); }

 private:
  std::string out_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

class SupervisorTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    execs_ = dir_.Sub("execs");
  }

  void TearDown() override {
    // Whatever happened, no job waits on a gate past the test.
    for (const std::string& g : gates_) WriteFileOrDie(g, "");
    IntegrationTest::TearDown();
    // A background child a job started, left only when a test failed.
    for (const std::string& name : pid_files_) {
      for (const std::string& line : Lines(ReadFileOr(name))) {
        pid_t pid = static_cast<pid_t>(std::stol(line));
        if (Alive(pid) && Comm(pid) == "sleep") kill(pid, SIGKILL);
      }
    }
  }

  // A gate file (absent: closed) for the jobs to wait on.
  std::string Gate(const std::string& name) {
    gates_.push_back(dir_.Sub("gate-" + name));
    return gates_.back();
  }
  void Open(const std::string& gate) { WriteFileOrDie(gate, ""); }

  // A file the job's background children append their pids to.
  std::string PidFile(const std::string& name) {
    pid_files_.push_back(dir_.Sub("pids-" + name));
    return pid_files_.back();
  }

  // The body of job `job`: appends "JOB SHA ATTEMPT" to execs_ and its own
  // pid to dir/JOB.pid, runs `extra`, prints a tick every 50 ms until
  // `gate` exists (bounded: two minutes), then "finished attempt N" and
  // exits `exit_code`.
  std::string GatedJob(const std::string& job, const std::string& gate, int exit_code,
                       const std::string& extra = "", const std::string& keys = "") const {
    return "run = echo \"" + job + " $WTD_SHA $WTD_ATTEMPT\" >> " + execs_ + "; echo $$ >> " +
           JobPidFile(job) + "; " + extra + "i=0; while [ ! -e " + gate +
           " ]; do echo \"tick $i\"; i=$((i+1)); [ $i -lt 2400 ] || exit 99; sleep 0.05; done; "
           "echo \"finished attempt $WTD_ATTEMPT\"; exit " +
           std::to_string(exit_code) + "\n" + (keys.empty() ? "max_attempts = 1\n" : keys);
  }
  std::string JobPidFile(const std::string& job) const { return dir_.Sub(job + ".pid"); }
  // The pids of the job's shells, one per execution.
  std::vector<pid_t> JobPids(const std::string& job) const {
    std::vector<pid_t> out;
    for (const std::string& line : Lines(ReadFileOr(JobPidFile(job)))) {
      out.push_back(static_cast<pid_t>(std::stol(line)));
    }
    return out;
  }

  // The "SHA ATTEMPT" lines of `job`'s executions, in order.
  std::vector<std::string> Execs(const std::string& job) const {
    std::vector<std::string> out;
    for (const std::string& line : Lines(ReadFileOr(execs_))) {
      if (line.rfind(job + " ", 0) == 0) out.push_back(line.substr(job.size() + 1));
    }
    return out;
  }

  // Commits every job of `jobs` (name -> body) in one commit; its sha.
  std::string CommitJobs(const std::map<std::string, std::string>& jobs) {
    for (const auto& [name, body] : jobs) repo_.Write("jobs/" + name + ".job", body);
    return repo_.Commit("README", "jobs", "add jobs");
  }

  // Waits until `wtctl status` lists `n` running jobs, each at `attempt`
  // and executing it; returns them by job name.
  std::map<std::string, json> WaitRunning(size_t n, int attempt = 1) {
    std::map<std::string, json> running;
    std::optional<json> s;
    bool ok = WaitFor(
        [&] {
          s = Status();
          if (!s) return false;
          running.clear();
          for (const json& r : (*s)["running_jobs"]) running[r.value("job", "")] = r;
          if (running.size() != n) return false;
          for (const auto& [job, r] : running) {
            if (r.value("attempt", 0) != attempt) return false;
            if (Execs(job).size() < static_cast<size_t>(attempt)) return false;
          }
          return true;
        },
        ScaledMs(60000));
    EXPECT_TRUE(ok) << n << " jobs did not start attempt " << attempt
                    << "; last status: " << (s ? s->dump(2) : "none");
    return running;
  }

  // `wtctl --json runs --limit 0` as JSON, every field.
  json RawRuns() const {
    CommandResult r = Wtctl({"--json", "runs", "--limit", "0"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_array()) << r.out;
    return j.is_array() ? j : json::array();
  }
  // The one run of `job`; fails unless there is exactly one.
  // Run "job" on `sha` was interrupted: its second attempt starts; let
  // through `gate`, it succeeds, and the job ran twice.
  void ExpectSecondAttemptSucceeds(const std::string& gate, const std::string& sha) {
    std::map<std::string, json> running = WaitRunning(1, 2);
    ASSERT_EQ(running.size(), 1u) << "no second attempt";
    ExpectGateSucceedsAtAttemptTwo(gate, sha);
  }
  void ExpectGateSucceedsAtAttemptTwo(const std::string& gate, const std::string& sha) {
    Open(gate);
    ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "job"));
    json r = OnlyRunOf("job");
    EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
    EXPECT_EQ(r.value("attempt", 0), 2) << r.dump(2);
    EXPECT_EQ(Execs("job"), (std::vector<std::string>{sha + " 1", sha + " 2"}));
  }

  json OnlyRunOf(const std::string& job) const {
    json all = RawRuns();
    json found;
    int n = 0;
    for (const json& r : all) {
      if (r.value("job", "") == job) {
        found = r;
        ++n;
      }
    }
    EXPECT_EQ(n, 1) << "runs of " << job << ": " << all.dump(2);
    return found.is_null() ? json::object() : found;
  }

  std::string ExitPath(uint64_t id) const {
    return state_dir_ + "/runs/" + std::to_string(id) + ".exit";
  }
  std::string LogPath(uint64_t id) const {
    return state_dir_ + "/logs/runs/" + std::to_string(id) + ".log";
  }
  static uint64_t FileSize(const std::string& path) {
    std::error_code ec;
    uint64_t size = fs::file_size(path, ec);
    return ec ? 0 : size;
  }

  // The recovery summary of the daemon that answers.
  json Recovery() const {
    std::optional<json> s = Status();
    EXPECT_TRUE(s) << "no daemon answers";
    return s ? (*s)["recovery"] : json::object();
  }

  std::string execs_;
  std::vector<std::string> gates_;
  std::vector<std::string> pid_files_;
};

// 1. The daemon is killed while its jobs run: they go on (their logs grow),
// end with no daemon (their exit files appear), and the next daemon records
// each one's real outcome, once, without running it again.
TEST_F(SupervisorTest, AJobThatEndsWhileNoDaemonRunsIsRecordedWithItsOwnOutcome) {
  std::string fail_gate = Gate("fails"), pass_gate = Gate("passes");
  std::string sha = CommitJobs(
      {{"fails", GatedJob("fails", fail_gate, 3)}, {"passes", GatedJob("passes", pass_gate, 0)}});
  const std::vector<std::string> args = {"--concurrency", "2"};
  DaemonProcess* d = StartReady(args);
  std::map<std::string, json> running = WaitRunning(2);
  ASSERT_EQ(running.size(), 2u);
  uint64_t fails = running["fails"].value("id", uint64_t{0});
  uint64_t passes = running["passes"].value("id", uint64_t{0});
  EXPECT_EQ(running["fails"].value("adopted", true), false);
  EXPECT_EQ(d->Kill9(), 137);

  // Both jobs go on writing their logs with no daemon.
  for (uint64_t id : {fails, passes}) {
    uint64_t at_kill = FileSize(LogPath(id));
    ASSERT_TRUE(WaitFor([&] { return FileSize(LogPath(id)) > at_kill + 20; }, ScaledMs(30000)))
        << "the log of run " << id
        << " stopped growing with the daemon: " << ReadFileOr(LogPath(id));
  }
  EXPECT_FALSE(fs::exists(ExitPath(fails)));
  Open(fail_gate);
  Open(pass_gate);
  for (uint64_t id : {fails, passes}) {
    ASSERT_TRUE(WaitFor([&] { return fs::exists(ExitPath(id)); }, ScaledMs(30000)))
        << "run " << id << "'s supervisor wrote no exit file";
  }
  json fail_exit = json::parse(ReadFileOr(ExitPath(fails)), nullptr, false);
  EXPECT_EQ(fail_exit.value("exit_code", -7), 3) << fail_exit.dump();
  EXPECT_EQ(fail_exit.value("run", uint64_t{0}), fails) << fail_exit.dump();
  EXPECT_EQ(fail_exit.value("attempt", 0), 1) << fail_exit.dump();
  EXPECT_EQ(fail_exit.value("log_bytes", uint64_t{0}), FileSize(LogPath(fails)))
      << fail_exit.dump();

  StartReady(args);
  json recovery = Recovery();
  EXPECT_EQ(recovery["actions"].value("record_outcome", 0), 2) << recovery.dump();
  EXPECT_EQ(recovery["actions"].value("adopt_run", 0), 0) << recovery.dump();
  EXPECT_EQ(recovery["actions"].value("interrupt_run", 0), 0) << recovery.dump();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "fails"));
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "passes"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());

  json f = OnlyRunOf("fails");
  EXPECT_EQ(f.value("state", ""), "failed") << f.dump(2);
  EXPECT_EQ(f.value("exit_code", -7), 3) << f.dump(2);
  EXPECT_EQ(f.value("attempt", 0), 1) << f.dump(2);
  json p = OnlyRunOf("passes");
  EXPECT_EQ(p.value("state", ""), "succeeded") << p.dump(2);
  EXPECT_EQ(p.value("exit_code", -7), 0) << p.dump(2);
  EXPECT_EQ(p.value("attempt", 0), 1) << p.dump(2);
  EXPECT_EQ(Execs("fails"), std::vector<std::string>{sha + " 1"});
  EXPECT_EQ(Execs("passes"), std::vector<std::string>{sha + " 1"});
  for (uint64_t id : {fails, passes}) {
    std::string log = ReadFileOr(LogPath(id));
    EXPECT_EQ(log.rfind("tick 0\n", 0), 0u) << log;
    EXPECT_NE(log.find("\nfinished attempt 1\n"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(ExitPath(id))) << "removed once the outcome is recorded";
  }
  EXPECT_EQ(f.value("log_bytes", uint64_t{0}), FileSize(LogPath(fails))) << f.dump(2);
  ExpectLocksReleased(state_dir_, {sha}, "fails");
}

// 2. Restarted while the job still runs: the new daemon adopts it, `wtctl
// logs --follow` streams it to its end, and it is recorded once.
TEST_F(SupervisorTest, ALiveJobIsAdoptedAndItsLogFollowedToItsEnd) {
  std::string gate = Gate("slow");
  std::string sha = CommitJobs({{"slow", GatedJob("slow", gate, 0)}});
  DaemonProcess* d = StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  uint64_t id = running["slow"].value("id", uint64_t{0});
  pid_t supervisor = running["slow"].value("pid", 0);
  ASSERT_GT(supervisor, 0);
  d->Kill9();
  ASSERT_TRUE(Alive(supervisor)) << "the supervisor died with its daemon";

  DaemonProcess* again = StartReady();
  json recovery = Recovery();
  EXPECT_EQ(recovery["actions"].value("adopt_run", 0), 1) << recovery.dump();
  EXPECT_EQ(recovery["actions"].value("interrupt_run", 0), 0) << recovery.dump();
  running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running["slow"].value("adopted", false), true) << running["slow"].dump();
  EXPECT_EQ(running["slow"].value("id", uint64_t{0}), id);
  EXPECT_EQ(running["slow"].value("pid", 0), supervisor) << "the same supervisor";
  EXPECT_EQ(running["slow"].value("attempt", 0), 1);

  std::string out = dir_.Sub("follow.out");
  Background follow({WTCTL_BIN, "--state-dir", state_dir_, "logs", std::to_string(id), "--follow"},
                    out);
  // It prints what the job wrote so far, then keeps following.
  ASSERT_TRUE(
      WaitFor([&] { return follow.Out().find("tick 2\n") != std::string::npos; }, ScaledMs(30000)))
      << follow.Out();
  uint64_t at_adoption = FileSize(LogPath(id));
  ASSERT_TRUE(WaitFor([&] { return FileSize(LogPath(id)) > at_adoption + 20; }, ScaledMs(30000)));
  EXPECT_TRUE(follow.Running()) << "logs --follow ended while the run runs: " << follow.Out();
  Open(gate);
  std::optional<int> code = follow.WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "logs --follow did not end with the run: " << follow.Out();
  EXPECT_EQ(*code, 0);
  std::string log = ReadFileOr(LogPath(id));
  EXPECT_EQ(follow.Out(), log) << "logs --follow printed the whole log, to its end";
  EXPECT_NE(log.find("\nfinished attempt 1\n"), std::string::npos) << log;

  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "slow"));
  json r = OnlyRunOf("slow");
  EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
  EXPECT_EQ(r.value("attempt", 0), 1) << r.dump(2);
  EXPECT_EQ(r.value("exit_code", -7), 0) << r.dump(2);
  EXPECT_EQ(r.value("log_bytes", uint64_t{0}), log.size()) << r.dump(2);
  EXPECT_EQ(Execs("slow"), std::vector<std::string>{sha + " 1"});
  EXPECT_FALSE(Alive(supervisor));
  StopDaemon(again);
  ExpectLocksReleased(state_dir_, {sha}, "slow");
}

// 3. The supervisor enforces the timeout with no daemon: the job is killed
// and the next daemon records it timed out.
TEST_F(SupervisorTest, ATimeoutIsEnforcedWhileNoDaemonRuns) {
  std::string gate = Gate("never");
  std::string sha =
      CommitJobs({{"hangs", GatedJob("hangs", gate, 0, "", "timeout_s = 2\nmax_attempts = 1\n")}});
  DaemonProcess* d = StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  d->Kill9();
  uint64_t id = running["hangs"].value("id", uint64_t{0});
  // The daemon died before the timeout: the run is still `running` in the
  // store, and no exit file is there yet.
  std::vector<RunRow> at_kill = Runs();
  ASSERT_EQ(at_kill.size(), 1u) << RunsToString(at_kill);
  ASSERT_EQ(at_kill[0].state, "running") << "the timeout passed before the daemon was killed";

  ASSERT_TRUE(WaitFor([&] { return fs::exists(ExitPath(id)); }, ScaledMs(30000)))
      << "no exit file after the job's timeout";
  json exit = json::parse(ReadFileOr(ExitPath(id)), nullptr, false);
  EXPECT_EQ(exit.value("timed_out", false), true) << exit.dump();
  EXPECT_EQ(exit.value("signal", 0), SIGTERM) << exit.dump();
  std::vector<pid_t> pids = JobPids("hangs");
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_FALSE(Alive(pids[0])) << "the job outlived its timeout";

  StartReady();
  EXPECT_EQ(Recovery()["actions"].value("record_outcome", 0), 1) << Recovery().dump();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "hangs"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  json r = OnlyRunOf("hangs");
  EXPECT_EQ(r.value("state", ""), "timed_out") << r.dump(2);
  EXPECT_EQ(r.value("attempt", 0), 1) << r.dump(2);
  EXPECT_EQ(Execs("hangs"), std::vector<std::string>{sha + " 1"});
  EXPECT_EQ(ReadFileOr(LogPath(id)).find("finished"), std::string::npos);
}

// 4. A supervisor killed while its daemon runs: the attempt has no outcome,
// its job's group is killed (a background child too) and it is retried.
TEST_F(SupervisorTest, AKilledSupervisorsJobGroupIsKilledAndTheAttemptRetried) {
  std::string gate = Gate("job");
  std::string children = PidFile("job");
  std::string sha =
      CommitJobs({{"job", GatedJob("job", gate, 0, "sleep 1000 & echo $! >> " + children + "; ")}});
  StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  pid_t supervisor = running["job"].value("pid", 0);
  ASSERT_GT(supervisor, 0);
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFileOr(children)).size() == 1; }, ScaledMs(30000)));
  pid_t child = static_cast<pid_t>(std::stol(Lines(ReadFileOr(children))[0]));
  pid_t shell = JobPids("job").at(0);
  ASSERT_TRUE(Alive(child));
  ASSERT_EQ(kill(supervisor, SIGKILL), 0);

  // Attempt 2 starts; by then the first attempt's group is gone.
  running = WaitRunning(1, 2);
  ASSERT_EQ(running.size(), 1u) << "no second attempt";
  EXPECT_FALSE(Alive(child)) << "the job's background child outlived its killed supervisor";
  EXPECT_FALSE(Alive(shell)) << "the job outlived its killed supervisor";
  EXPECT_NE(running["job"].value("pid", 0), supervisor);
  ASSERT_NO_FATAL_FAILURE(ExpectGateSucceedsAtAttemptTwo(gate, sha));
  // The second attempt's background child went with its job's group.
  std::vector<std::string> lines = Lines(ReadFileOr(children));
  ASSERT_EQ(lines.size(), 2u);
  pid_t second = static_cast<pid_t>(std::stol(lines[1]));
  EXPECT_TRUE(WaitFor([&] { return !Alive(second); }, ScaledMs(10000)));
  std::string log = ReadFileOr(LogPath(OnlyRunOf("job").value("id", uint64_t{0})));
  EXPECT_NE(log.find("[wtd: attempt 2]\n"), std::string::npos) << log;
}

// The daemon and then the supervisor are killed while the job runs (it
// prints nothing, so a closed output pipe does not end it): the next
// daemon finds no outcome and no supervisor, kills the job's group from
// the group file, and retries the attempt.
TEST_F(SupervisorTest, AJobWhoseSupervisorDiedWithNoDaemonIsKilledByRecovery) {
  std::string gate = Gate("job");
  std::string children = PidFile("job");
  std::string sha =
      CommitJobs({{"job", "run = echo \"job $WTD_SHA $WTD_ATTEMPT\" >> " + execs_ +
                              "; echo $$ >> " + JobPidFile("job") + "; sleep 1000 & echo $! >> " +
                              children + "; i=0; while [ ! -e " + gate +
                              " ]; do i=$((i+1)); [ $i -lt 2400 ] || exit 99; sleep 0.05; done\n"
                              "max_attempts = 1\n"}});
  DaemonProcess* d = StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  pid_t supervisor = running["job"].value("pid", 0);
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFileOr(children)).size() == 1; }, ScaledMs(30000)));
  pid_t child = static_cast<pid_t>(std::stol(Lines(ReadFileOr(children))[0]));
  pid_t shell = JobPids("job").at(0);
  d->Kill9();
  ASSERT_EQ(kill(supervisor, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !Alive(supervisor); }, ScaledMs(10000)));
  ASSERT_TRUE(Alive(shell) && Alive(child)) << "the job outlived its supervisor, for now";

  DaemonProcess* again = StartReady();
  json recovery = Recovery();
  EXPECT_EQ(recovery["actions"].value("interrupt_run", 0), 1) << recovery.dump();
  EXPECT_FALSE(Alive(shell)) << "recovery left the job of a dead supervisor running";
  EXPECT_FALSE(Alive(child)) << "recovery left the job's background child running";
  EXPECT_NE(again->Log().find("killed its job's process group " + std::to_string(shell)),
            std::string::npos)
      << again->Log();
  ASSERT_NO_FATAL_FAILURE(ExpectSecondAttemptSucceeds(gate, sha));
  StopDaemon(again);
}

// 5. A supervisor that died without an outcome and an exit file that is
// garbage: no outcome, the attempt retried, the file named as not used.
TEST_F(SupervisorTest, AGarbageExitFileIsNoOutcomeAndIsReported) {
  std::string gate = Gate("job");
  std::string sha = CommitJobs({{"job", GatedJob("job", gate, 0)}});
  // Every supervisor of this daemon dies before it writes its exit file.
  DaemonProcess* d = StartDaemon({}, {"WTD_EXEC_CRASH_AT=exec_before_exit_write"});
  ASSERT_NO_FATAL_FAILURE(WaitReady(d));
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  uint64_t id = running["job"].value("id", uint64_t{0});
  pid_t supervisor = running["job"].value("pid", 0);
  d->Kill9();
  Open(gate);
  ASSERT_TRUE(WaitFor([&] { return !Alive(supervisor); }, ScaledMs(30000)));
  EXPECT_FALSE(fs::exists(ExitPath(id))) << "the supervisor died before writing it";
  WriteFileOrDie(ExitPath(id), "{\"format\":\"wtd-exit\",\"version\":1,\"run\":");
  fs::remove(gate);  // the retry waits again

  DaemonProcess* again = StartReady();
  json recovery = Recovery();
  EXPECT_EQ(recovery["actions"].value("interrupt_run", 0), 1) << recovery.dump();
  EXPECT_EQ(recovery["actions"].value("record_outcome", 0), 0) << recovery.dump();
  std::string log = again->Log();
  EXPECT_NE(log.find("exit file not used"), std::string::npos) << log;
  EXPECT_NE(log.find(ExitPath(id)), std::string::npos) << log;
  ASSERT_NO_FATAL_FAILURE(ExpectSecondAttemptSucceeds(gate, sha));
  StopDaemon(again);
}

// 6. `wtctl restart` re-executes the daemon in place: same pid, a new
// incarnation, its jobs adopted with their locks, each run once.
TEST_F(SupervisorTest, RestartKeepsRunningJobsAndTheirLocks) {
  std::string gate = Gate("both");
  std::string sha =
      CommitJobs({{"one", GatedJob("one", gate, 0)}, {"two", GatedJob("two", gate, 0)}});
  DaemonProcess* d = StartReady({"--concurrency", "2"});
  std::map<std::string, json> running = WaitRunning(2);
  ASSERT_EQ(running.size(), 2u);
  uint64_t before = Status()->value("incarnation", uint64_t{0});
  auto locks_by_job = [&] {
    CommandResult r = Wtctl({"--json", "locks"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json l = json::parse(r.out, nullptr, false);
    std::map<std::string, json> out;
    if (!l.is_object()) return out;
    for (const json& lock : l["locks"]) {
      std::string name = lock.value("name", "");  // worktree/job/sha
      size_t a = name.find('/'), b = name.rfind('/');
      if (a != std::string::npos && b > a) out[name.substr(a + 1, b - a - 1)] = lock;
    }
    return out;
  };
  std::map<std::string, json> locks = locks_by_job();
  ASSERT_EQ(locks.size(), 2u);
  EXPECT_EQ(locks["one"]["owner"].value("incarnation", uint64_t{0}), before) << locks["one"];

  // A follower of run one's log started before the restart goes on after it.
  uint64_t one = running["one"].value("id", uint64_t{0});
  Background follow({WTCTL_BIN, "--state-dir", state_dir_, "logs", std::to_string(one), "--follow"},
                    dir_.Sub("follow.out"));
  ASSERT_TRUE(
      WaitFor([&] { return follow.Out().find("tick 1\n") != std::string::npos; }, ScaledMs(30000)))
      << follow.Out();

  CommandResult restart = Wtctl({"--json", "restart"}, ScaledMs(120000));
  ASSERT_EQ(restart.exit_code, 0) << restart.Describe();
  json out = json::parse(restart.out, nullptr, false);
  EXPECT_EQ(out.value("pid", 0), d->pid()) << restart.out;
  EXPECT_EQ(out.value("jobs_left_running", 0), 2) << restart.out;
  EXPECT_TRUE(d->Running());
  json s = *Status();
  EXPECT_EQ(s.value("pid", 0), d->pid()) << "re-executed in place";
  uint64_t after = s.value("incarnation", uint64_t{0});
  EXPECT_GT(after, before);
  EXPECT_EQ(s["recovery"]["actions"].value("adopt_run", 0), 2) << s["recovery"].dump();
  running = WaitRunning(2);
  for (auto& [job, r] : running) {
    EXPECT_EQ(r.value("adopted", false), true) << r.dump();
    EXPECT_EQ(r.value("attempt", 0), 1) << r.dump();
  }
  // The locks survived, now held by the new incarnation.
  locks = locks_by_job();
  ASSERT_EQ(locks.size(), 2u);
  for (auto& [job, lock] : locks) {
    EXPECT_EQ(lock["owner"].value("pid", 0), d->pid()) << lock.dump();
    EXPECT_EQ(lock["owner"].value("incarnation", uint64_t{0}), after) << lock.dump();
    EXPECT_EQ(lock.value("stale", true), false) << lock.dump();
    EXPECT_EQ(lock["lease"].value("state", ""), "held") << lock.dump();
  }

  Open(gate);
  std::optional<int> code = follow.WaitExit(ScaledMs(30000));
  ASSERT_TRUE(code.has_value()) << "logs --follow did not end with the run: " << follow.Out();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(follow.Out(), ReadFileOr(LogPath(one))) << "the whole log, across the restart";
  EXPECT_NE(follow.Out().find("\nfinished attempt 1\n"), std::string::npos) << follow.Out();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "one"));
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "two"));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  for (const std::string job : {"one", "two"}) {
    json r = OnlyRunOf(job);
    EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
    EXPECT_EQ(r.value("attempt", 0), 1) << r.dump(2);
    EXPECT_EQ(Execs(job), std::vector<std::string>{sha + " 1"}) << job;
  }
  ExpectLocksReleased(state_dir_, {sha}, "one");
  ExpectLocksReleased(state_dir_, {sha}, "two");
  StopDaemon(d);
}

// The process layout the supervisor promises: the supervisor alone in a
// process group of its own, the job leading another, neither the daemon's;
// neither holds a socket or a file of the state dir but the run's log; a
// SIGHUP does not end the supervisor.
TEST_F(SupervisorTest, TheSupervisorAndItsJobHoldNothingOfTheDaemons) {
  std::string gate = Gate("job");
  std::string sha = CommitJobs({{"job", GatedJob("job", gate, 0)}});
  DaemonProcess* d = StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  uint64_t id = running["job"].value("id", uint64_t{0});
  pid_t supervisor = running["job"].value("pid", 0);
  pid_t shell = JobPids("job").at(0);
  EXPECT_EQ(getpgid(supervisor), supervisor);
  EXPECT_EQ(getpgid(shell), shell);
  EXPECT_NE(getpgid(supervisor), getpgid(d->pid()));
  EXPECT_NE(getpgid(shell), getpgid(d->pid()));
  std::string group_file = state_dir_ + "/runs/" + std::to_string(id) + ".pgid";
  EXPECT_EQ(ReadFileOr(group_file).rfind(std::to_string(shell) + " ", 0), 0u)
      << "the group file names the job's group: " << ReadFileOr(group_file);

  std::string log = fs::canonical(LogPath(id)).string();
  std::string state = fs::canonical(state_dir_).string();
  for (pid_t pid : {supervisor, shell}) {
    std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
    int seen = 0;
    for (const auto& e : fs::directory_iterator(fd_dir)) {
      std::error_code ec;
      std::string target = fs::read_symlink(e.path(), ec).string();
      if (ec) continue;  // closed meanwhile
      ++seen;
      EXPECT_NE(target.rfind("socket:", 0), 0u)
          << "pid " << pid << " holds a socket as fd " << e.path().filename();
      if (target.rfind(state + "/", 0) == 0) {
        EXPECT_EQ(target, log) << "pid " << pid << " holds a file of the state dir as fd "
                               << e.path().filename();
      }
    }
    EXPECT_GE(seen, 3) << fd_dir;
  }

  // A hangup is not a stop: the attempt goes on and ends on its own.
  ASSERT_EQ(kill(supervisor, SIGHUP), 0);
  Open(gate);
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "job"));
  json r = OnlyRunOf("job");
  EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
  EXPECT_EQ(r.value("attempt", 0), 1) << "the supervisor survived its SIGHUP; " << r.dump(2);
  // The outcome recorded, the run's files go.
  for (const char* ext : {".exit", ".pgid", ".json"}) {
    EXPECT_FALSE(fs::exists(state_dir_ + "/runs/" + std::to_string(id) + ext)) << ext;
  }
  StopDaemon(d);
}

// `wtctl status` flags a job stuck when it has neither printed nor used CPU
// for --stuck-after-s (docs/design/wtctl.md): the CPU of the job's process
// group, which is not its supervisor's.
TEST_F(SupervisorTest, ASilentJobUsingCpuIsNotFlaggedStuck) {
  std::string gate = Gate("cpu");
  std::string idle_pid = PidFile("idle");
  repo_.Write("jobs/cpu.job", "run = while [ ! -e " + gate + " ]; do :; done\n");
  std::string sha = CommitJobs({{"idle", "run = echo $$ > " + idle_pid + "; exec sleep 60\n"}});
  DaemonProcess* d =
      StartReady({"--stuck-after-s", "2", "--concurrency", "2", "--shutdown-grace-s", "0"});
  std::map<std::string, json> running;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> s = Status();
        if (!s) return false;
        running.clear();
        for (const json& r : (*s)["running_jobs"]) running[r.value("job", "")] = r;
        return running.size() == 2 && running["idle"].value("stuck", false) &&
               running["cpu"].value("age_s", 0) >= 4;
      },
      ScaledMs(60000)))
      << "the idle job was never flagged stuck: " << json(running).dump();
  EXPECT_EQ(running["cpu"].value("stuck", true), false)
      << "a job busy on the CPU is flagged stuck: " << running["cpu"].dump();
  EXPECT_LT(running["cpu"].value("idle_s", 99), 2) << running["cpu"].dump();
  Open(gate);
  StopDaemon(d);  // stops the idle job too
}

// Jobs that end while `wtctl restart` re-executes the daemon: their
// supervisors, still the daemon's children, exit before the new image
// could adopt them; it records their outcomes from the exit files, once,
// and reaps them (a supervisor is never left a zombie of the daemon).
TEST_F(SupervisorTest, JobsEndingDuringARestartAreRecordedOnceAndReaped) {
  std::string log = dir_.Sub("wtd-1.log");  // the first daemon's output (StartDaemon)
  // Each job ends as soon as the daemon says it is re-executing.
  std::string body = "while ! grep -q 'stopped for a restart' " + log +
                     "; do sleep 0.01; done; echo \"finished attempt $WTD_ATTEMPT\"\n";
  std::map<std::string, std::string> jobs;
  for (const std::string job : {"a", "b", "c"}) {
    jobs[job] = "run = echo \"" + job + " $WTD_SHA $WTD_ATTEMPT\" >> " + execs_ + "; " + body;
  }
  std::string sha = CommitJobs(jobs);
  DaemonProcess* d = StartReady({"--concurrency", "3"});
  ASSERT_EQ(d->log_path(), log);
  std::map<std::string, json> running = WaitRunning(3);
  ASSERT_EQ(running.size(), 3u);

  CommandResult restart = Wtctl({"restart"}, ScaledMs(120000));
  ASSERT_EQ(restart.exit_code, 0) << restart.Describe();
  for (const std::string job : {"a", "b", "c"}) {
    ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, job));
  }
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  json recovery = Recovery();
  for (const std::string job : {"a", "b", "c"}) {
    json r = OnlyRunOf(job);
    EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
    EXPECT_EQ(r.value("attempt", 0), 1) << r.dump(2);
    EXPECT_EQ(Execs(job), std::vector<std::string>{sha + " 1"}) << job;
  }
  EXPECT_EQ(recovery["actions"].value("interrupt_run", 0), 0) << recovery.dump();
  std::vector<pid_t> zombies = ZombieChildren(d->pid());
  EXPECT_TRUE(zombies.empty()) << zombies.size()
                               << " supervisor(s) left unreaped by the daemon; recovery: "
                               << recovery.dump();
  StopDaemon(d);
}

// 8. A stop means stop: the job's processes are gone once the daemon has
// exited, the run is interrupted, and it runs again at the next start. So
// for a job the daemon started and for one it adopted.
struct StopCase {
  bool by_wtctl = false;  // `wtctl stop`, else SIGTERM
  bool adopted = false;   // the job was adopted after a kill -9 of its daemon
};

void PrintTo(const StopCase& c, std::ostream* os) {
  *os << (c.by_wtctl ? "wtctl stop" : "SIGTERM") << (c.adopted ? ", adopted job" : "");
}

class StopTest : public SupervisorTest, public ::testing::WithParamInterface<StopCase> {};

TEST_P(StopTest, AGracefulStopStopsRunningJobs) {
  const StopCase& c = GetParam();
  std::string gate = Gate("job");
  std::string children = PidFile("job");
  std::string sha =
      CommitJobs({{"job", GatedJob("job", gate, 0, "sleep 1000 & echo $! >> " + children + "; ")}});
  const std::vector<std::string> args = {"--shutdown-grace-s", "0"};
  DaemonProcess* d = StartReady(args);
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  pid_t supervisor = running["job"].value("pid", 0);
  if (c.adopted) {
    d->Kill9();
    d = StartReady(args);
    running = WaitRunning(1);
    ASSERT_EQ(running.size(), 1u);
    ASSERT_EQ(running["job"].value("adopted", false), true) << running["job"].dump();
    ASSERT_EQ(running["job"].value("pid", 0), supervisor);
  }
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFileOr(children)).size() == 1; }, ScaledMs(30000)));
  pid_t child = static_cast<pid_t>(std::stol(Lines(ReadFileOr(children))[0]));
  pid_t shell = JobPids("job").at(0);
  ASSERT_TRUE(Alive(shell) && Alive(child) && Alive(supervisor));
  if (c.by_wtctl) {
    ASSERT_NO_FATAL_FAILURE(StopDaemon(d));
  } else {
    d->Signal(SIGTERM);
    std::optional<int> code = d->WaitExit(ScaledMs(60000));
    ASSERT_TRUE(code.has_value()) << "wtd did not exit after SIGTERM";
    EXPECT_EQ(*code, 0);
  }
  EXPECT_FALSE(Alive(shell)) << "the job outlived its stopped daemon";
  EXPECT_FALSE(Alive(child)) << "the job's background child outlived its stopped daemon";
  // An adopted supervisor is not the daemon's child: it may take a moment
  // longer to be gone once it recorded the stop.
  EXPECT_TRUE(WaitFor([&] { return !Alive(supervisor); }, ScaledMs(10000)))
      << "the supervisor outlived its stopped daemon";
  std::vector<RunRow> runs = Runs();  // from the store
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "retry_wait") << RunsToString(runs);
  EXPECT_EQ(runs[0].attempt, 1) << RunsToString(runs);
  EXPECT_NE(runs[0].error.find("interrupted"), std::string::npos) << RunsToString(runs);
  EXPECT_EQ(Execs("job"), std::vector<std::string>{sha + " 1"});

  Open(gate);
  DaemonProcess* again = StartReady(args);
  EXPECT_EQ(Recovery()["actions"].value("adopt_run", 0), 0) << "nothing was left to adopt";
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "job"));
  json r = OnlyRunOf("job");
  EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
  EXPECT_EQ(r.value("attempt", 0), 2) << r.dump(2);
  EXPECT_EQ(Execs("job"), (std::vector<std::string>{sha + " 1", sha + " 2"}));
  StopDaemon(again);
}

INSTANTIATE_TEST_SUITE_P(SigtermOrWtctlStop, StopTest,
                         ::testing::Values(StopCase{false, false}, StopCase{true, false},
                                           StopCase{false, true}, StopCase{true, true}),
                         [](const ::testing::TestParamInfo<StopCase>& info) {
                           return std::string(info.param.by_wtctl ? "wtctl_stop" : "sigterm") +
                                  (info.param.adopted ? "_adopted" : "");
                         });

// `wtctl cancel` of an adopted run stops its job through the supervisor:
// cancelled, its processes gone, never run again.
TEST_F(SupervisorTest, AnAdoptedRunCanBeCancelled) {
  std::string gate = Gate("job");
  std::string children = PidFile("job");
  std::string sha =
      CommitJobs({{"job", GatedJob("job", gate, 0, "sleep 1000 & echo $! >> " + children + "; ")}});
  DaemonProcess* d = StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  uint64_t id = running["job"].value("id", uint64_t{0});
  pid_t supervisor = running["job"].value("pid", 0);
  d->Kill9();
  DaemonProcess* again = StartReady();
  running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  ASSERT_EQ(running["job"].value("adopted", false), true) << running["job"].dump();
  ASSERT_TRUE(WaitFor([&] { return Lines(ReadFileOr(children)).size() == 1; }, ScaledMs(30000)));
  pid_t child = static_cast<pid_t>(std::stol(Lines(ReadFileOr(children))[0]));
  pid_t shell = JobPids("job").at(0);

  CommandResult cancel = Wtctl({"--json", "cancel", std::to_string(id)});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.Describe();
  json out = json::parse(cancel.out, nullptr, false);
  EXPECT_EQ(out.value("from", ""), "running") << cancel.out;
  EXPECT_EQ(out["run"].value("state", ""), "cancelled") << cancel.out;
  EXPECT_FALSE(Alive(shell)) << "the adopted job outlived its cancel";
  EXPECT_TRUE(WaitFor([&] { return !Alive(child) && !Alive(supervisor); }, ScaledMs(10000)))
      << "the job's background child or its supervisor outlived the cancel";
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  json r = OnlyRunOf("job");
  EXPECT_EQ(r.value("state", ""), "cancelled") << r.dump(2);
  EXPECT_EQ(Execs("job"), std::vector<std::string>{sha + " 1"}) << "a cancelled run is not retried";
  StopDaemon(again);
  EXPECT_EQ(repo_.Git({"for-each-ref", "refs/wtd/locks"}), "") << "lock refs left behind";
}

// A job outlives two kills of its daemon, and `wtctl recover` in between
// leaves its live supervisor for the next daemon: adopted each time, its
// lock moved to each new owner, recorded once.
TEST_F(SupervisorTest, AJobOutlivesTwoKillsAndARecoverInBetween) {
  std::string gate = Gate("job");
  std::string sha = CommitJobs({{"job", GatedJob("job", gate, 0)}});
  DaemonProcess* d = StartReady();
  std::map<std::string, json> running = WaitRunning(1);
  ASSERT_EQ(running.size(), 1u);
  uint64_t id = running["job"].value("id", uint64_t{0});
  pid_t supervisor = running["job"].value("pid", 0);
  d->Kill9();

  CommandResult recover = Wtctl({"--json", "recover"});
  ASSERT_EQ(recover.exit_code, 0) << recover.Describe();
  json rec = json::parse(recover.out, nullptr, false);
  int left = 0;
  for (const json& a : rec["actions"]) {
    EXPECT_NE(a.value("kind", ""), "interrupt_run") << recover.out;
    EXPECT_NE(a.value("kind", ""), "reap_lock")
        << "a live run's lock is not stale: " << recover.out;
    left += a.value("kind", "") == "leave_running";
  }
  EXPECT_EQ(left, 1) << recover.out;
  ASSERT_TRUE(Alive(supervisor)) << "wtctl recover stopped a live supervisor";

  for (int round = 0; round < 2; ++round) {
    d = StartReady();
    EXPECT_EQ(Recovery()["actions"].value("adopt_run", 0), 1) << Recovery().dump();
    running = WaitRunning(1);
    ASSERT_EQ(running.size(), 1u);
    EXPECT_EQ(running["job"].value("pid", 0), supervisor);
    EXPECT_EQ(running["job"].value("adopted", false), true);
    CommandResult locks = Wtctl({"--json", "locks"});
    json l = json::parse(locks.out, nullptr, false);
    ASSERT_TRUE(l.is_object() && l["locks"].size() == 1) << locks.Describe();
    EXPECT_EQ(l["locks"][0]["owner"].value("pid", 0), d->pid()) << locks.out;
    EXPECT_EQ(l["locks"][0].value("stale", true), false) << locks.out;
    if (round == 0) d->Kill9();
  }
  Open(gate);
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "job"));
  json r = OnlyRunOf("job");
  EXPECT_EQ(r.value("id", uint64_t{0}), id);
  EXPECT_EQ(r.value("state", ""), "succeeded") << r.dump(2);
  EXPECT_EQ(r.value("attempt", 0), 1) << r.dump(2);
  EXPECT_EQ(Execs("job"), std::vector<std::string>{sha + " 1"});
  StopDaemon(d);
  ExpectLocksReleased(state_dir_, {sha}, "job");
}

}  // namespace
}  // namespace wtd::itest
