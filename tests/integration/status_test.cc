// What `wtctl status` tells an operator about a live daemon: repository
// health, running jobs and whether they are stuck, the store's size and the
// last recovery; and `wtctl runs --follow`, the run table live.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "integration/fixture.h"

extern char** environ;

namespace wtd::itest {
namespace {

class StatusTest : public IntegrationTest {};

TEST_F(StatusTest, AHealthyRepositoryReportsItsLastGoodPollAndAFailingOneSinceWhen) {
  repo_.CommitJob("effect", EffectJob());
  StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  json s = *Status();
  ASSERT_EQ(s["repos"].size(), 1u) << s.dump();
  json r = s["repos"][0];
  EXPECT_TRUE(r["last_ok"].is_string()) << r.dump();
  EXPECT_TRUE(r["error"].is_null()) << r.dump();
  EXPECT_TRUE(r["error_since"].is_null()) << r.dump();
  EXPECT_TRUE(r["backoff_until"].is_null()) << r.dump();
  EXPECT_EQ(r["backoff_ms"], 0) << r.dump();
  EXPECT_GT(s["store_bytes"].get<uint64_t>(), 0u) << s.dump();
  EXPECT_EQ(s["stuck"], 0);
  EXPECT_EQ(s["stuck_after_s"], 600) << "the default";

  // The repository vanishes: its health says so, with the start of the
  // failing streak and the backoff.
  std::string moved = dir_.Sub("moved-away");
  std::filesystem::rename(repo_.dir(), moved);
  json failing;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> now = Status();
        if (!now || (*now)["repos"][0]["error"].is_null()) return false;
        failing = (*now)["repos"][0];
        return true;
      },
      ScaledMs(20000)))
      << "no error reported for a repository that vanished";
  EXPECT_TRUE(failing["error_since"].is_string()) << failing.dump();
  EXPECT_GE(failing["consecutive_failures"].get<int>(), 1) << failing.dump();
  EXPECT_TRUE(failing["backoff_until"].is_string()) << failing.dump();
  // The last good poll is kept while failing: no earlier than the one seen
  // healthy (a poll may have come between that status and the move), no
  // later than the failing streak's start, and it does not move on.
  std::string last_ok = failing["last_ok"].get<std::string>();
  EXPECT_GE(last_ok, r["last_ok"].get<std::string>()) << failing.dump();
  EXPECT_LE(last_ok, failing["error_since"].get<std::string>()) << failing.dump();
  json still = (*Status())["repos"][0];
  if (!still["error"].is_null()) {
    EXPECT_EQ(still["last_ok"], last_ok) << still.dump();
  }
  CommandResult human = Wtctl({"status"});
  EXPECT_NE(human.out.find("failing since"), std::string::npos) << human.out;

  std::filesystem::rename(moved, repo_.dir());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> now = Status();
        return now && (*now)["repos"][0]["error"].is_null();
      },
      ScaledMs(90000)))
      << "the repository did not come back healthy";
  EXPECT_TRUE((*Status())["repos"][0]["error_since"].is_null());
}

TEST_F(StatusTest, AJobThatNeitherPrintsNorComputesIsFlaggedStuck) {
  // `idle` sleeps; `busy` prints a line every 100 ms: both run at once.
  repo_.CommitJob("idle", "run = sleep 600\n");
  repo_.CommitJob("busy", "run = while :; do echo tick; sleep 0.1; done\n");
  DaemonProcess* d =
      StartReady({"--stuck-after-s", "2", "--concurrency", "2", "--shutdown-grace-s", "0"});
  std::map<std::string, json> running;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> s = Status();
        if (!s) return false;
        running.clear();
        for (const json& r : (*s)["running_jobs"]) running[r["job"].get<std::string>()] = r;
        return running.count("idle") && running["idle"]["stuck"] == true && running.count("busy") &&
               running["busy"]["age_s"].get<int64_t>() >= 3;
      },
      ScaledMs(60000)))
      << "idle never flagged stuck: " << json(running).dump();
  EXPECT_EQ(running["busy"]["stuck"], false) << running["busy"].dump();
  EXPECT_LT(running["busy"]["idle_s"].get<int64_t>(), 2) << running["busy"].dump();
  EXPECT_GT(running["idle"]["pid"].get<int>(), 0);
  EXPECT_GE(running["idle"]["idle_s"].get<int64_t>(), 2);
  json s = *Status();
  EXPECT_GE(s["stuck"].get<int>(), 1) << s.dump();
  CommandResult human = Wtctl({"status"});
  EXPECT_NE(human.out.find("STUCK"), std::string::npos) << human.out;
  StopDaemon(d);  // stops the jobs too
}

TEST_F(StatusTest, TheLastRecoveryIsReportedAfterACrashAndAfterACleanStop) {
  repo_.CommitJob("slow", "run = sleep 600\n");
  // No grace: a stop ends the job at once (and leaves none behind).
  const std::vector<std::string> args = {"--shutdown-grace-s", "0"};
  DaemonProcess* d = StartReady(args);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<json> s = Status();
        return s && !(*s)["running_jobs"].empty();
      },
      ScaledMs(30000)));
  json first = (*Status())["recovery"];
  EXPECT_EQ(first["first_start"], true) << first.dump();
  EXPECT_EQ(first["active_scanned"], 0) << first.dump();
  EXPECT_TRUE(first["actions"].empty()) << first.dump();
  d->Kill9();

  d = StartReady(args);
  json after_kill = (*Status())["recovery"];
  EXPECT_EQ(after_kill["first_start"], false) << after_kill.dump();
  EXPECT_EQ(after_kill["previous_shutdown_clean"], false) << after_kill.dump();
  EXPECT_EQ(after_kill["active_scanned"], 1) << after_kill.dump();
  // The job outlived the killed daemon under its supervisor: adopted.
  EXPECT_EQ(after_kill["actions"].value("adopt_run", 0), 1) << after_kill.dump();
  EXPECT_EQ(after_kill["actions"].value("interrupt_run", 0), 0) << after_kill.dump();
  EXPECT_TRUE(after_kill["at"].is_string());
  CommandResult human = Wtctl({"status"});
  EXPECT_NE(human.out.find("after a crash or kill"), std::string::npos) << human.out;
  StopDaemon(d);

  d = StartReady(args);
  json after_stop = (*Status())["recovery"];
  EXPECT_EQ(after_stop["previous_shutdown_clean"], true) << after_stop.dump();
  StopDaemon(d);
}

// A wtctl left running in the background, its stdout in a file.
class Background {
 public:
  Background(const std::vector<std::string>& args, const std::string& out) : out_(out) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Background() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool Running() { return waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::vector<json> JsonLines() const {
    std::vector<json> out;
    for (const std::string& l : Lines(ReadFileOr(out_))) {
      json j = json::parse(l, nullptr, /*allow_exceptions=*/false);
      if (!j.is_discarded()) out.push_back(j);
    }
    return out;
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
};

TEST_F(StatusTest, RunsFollowPrintsEachRunAgainWhenItChanges) {
  repo_.CommitJob("effect", EffectJob());
  StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  std::string out = dir_.Sub("follow.out");
  Background follow(
      {WTCTL_BIN, "--state-dir", state_dir_, "--json", "runs", "--follow", "--interval-ms", "100"},
      out);
  auto states_of = [&](const std::string& sha) {
    std::vector<std::string> states;
    for (const json& r : follow.JsonLines()) {
      if (r["sha"] == sha) states.push_back(r["state"].get<std::string>());
    }
    return states;
  };
  std::string first = repo_.Head();
  ASSERT_TRUE(WaitFor([&] { return !states_of(first).empty(); }, ScaledMs(20000)))
      << ReadFileOr(out);
  EXPECT_EQ(states_of(first), std::vector<std::string>{"succeeded"})
      << "a run that does not change is printed once";

  // A commit arrives while it follows: its run shows up and then its end.
  std::string second = repo_.Commit("b", "b", "second");
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<std::string> s = states_of(second);
        return !s.empty() && s.back() == "succeeded";
      },
      ScaledMs(30000)))
      << ReadFileOr(out);
  EXPECT_TRUE(follow.Running()) << "--follow ended by itself";
  std::vector<std::string> seen = states_of(second);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "succeeded"), 1) << ReadFileOr(out);
  EXPECT_EQ(states_of(first).size(), 1u) << ReadFileOr(out);

  CommandResult bad = Wtctl({"runs", "--interval-ms", "100"});
  EXPECT_EQ(bad.exit_code, 2) << bad.Describe();
}

}  // namespace
}  // namespace wtd::itest
