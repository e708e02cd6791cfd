// Reloads with the real wtd and wtctl: an option marked `applies` takes
// effect in the running daemon, one that needs a restart is reported and
// keeps its running value (docs/design/options.md).
#include <sys/stat.h>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class ReloadTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    config_ = dir_.Sub("wtd.ini");
    release_ = dir_.Sub("release");
  }

  // A job that waits until release_ exists, then records its commit.
  std::string HeldJob() const {
    return "run = while [ ! -e " + release_ + " ]; do sleep 0.05; done; echo \"$WTD_SHA\" >> " +
           effect_ + "\n";
  }
  // `n` held jobs in one commit; returns its sha.
  std::string CommitHeldJobs(int n) {
    for (int i = 0; i < n; ++i) repo_.Write("jobs/held" + std::to_string(i) + ".job", HeldJob());
    return repo_.Commit("README", "held", "held jobs");
  }
  // The ids of the running runs, from `wtctl --json status`.
  size_t Running() const {
    std::optional<json> s = Status();
    return s ? s->value("running_runs", json::array()).size() : 0;
  }
  void WaitRunning(size_t n) {
    size_t last = 0;
    ASSERT_TRUE(WaitFor([&] { return (last = Running()) == n; }, ScaledMs(30000)))
        << "running: " << last << ", want " << n;
  }
  json ReloadJson() {
    CommandResult r = Wtctl({"--json", "reload"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << r.Describe();
    return j;
  }

  std::string config_;
  std::string release_;
};

TEST_F(ReloadTest, ConcurrencyAppliesAndAChangedSocketIsReportedAndKept) {
  WriteFileOrDie(config_, "concurrency = 1\n");
  std::string sha = CommitHeldJobs(3);
  DaemonProcess* d = StartReady({"--config", config_});
  ASSERT_NO_FATAL_FAILURE(WaitRunning(1));
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(3, /*idle=*/false));
  EXPECT_EQ(Running(), 1u) << "--concurrency=1 holds the other two back";

  std::string other_socket = dir_.Sub("other.sock");
  WriteFileOrDie(config_, "concurrency = 3\nsocket = " + other_socket + "\n");
  json r = ReloadJson();
  EXPECT_EQ(r.value("reloaded", false), true) << r.dump();
  EXPECT_EQ(r.value("config_file", ""), config_) << r.dump();
  EXPECT_EQ(r["applied"], json::array({"concurrency"})) << r.dump();
  EXPECT_EQ(r["needs_restart"], json::array({"socket"})) << r.dump();

  // Applied: the two held back start.
  ASSERT_NO_FATAL_FAILURE(WaitRunning(3));
  // Kept: the daemon still answers on its first socket, and on no other.
  std::optional<json> s = Status();
  ASSERT_TRUE(s) << "the running socket stopped answering";
  EXPECT_EQ(s->value("pid", 0), d->pid());
  EXPECT_EQ(s->value("socket", ""), state_dir_ + "/wtd.sock");
  struct stat st;
  EXPECT_NE(stat(other_socket.c_str(), &st), 0) << other_socket << " exists";
  EXPECT_NE(d->Log().find("--socket changed: needs a restart"), std::string::npos) << d->Log();

  // The file still differs from what runs: each reload says so again, in
  // words too, and changes nothing else.
  CommandResult human = Wtctl({"reload"});
  EXPECT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("--socket changed: needs a restart"), std::string::npos)
      << human.Describe();
  EXPECT_EQ(human.out.find("applied"), std::string::npos) << human.Describe();

  WriteFileOrDie(release_, "");
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "held0"));
  std::vector<RunRow> runs = Runs();
  for (const char* job : {"held0", "held1", "held2"}) ExpectExactlyOnce(runs, {sha}, job);
  StopDaemon(d);
}

TEST_F(ReloadTest, ShutdownGraceAppliesToTheNextStop) {
  WriteFileOrDie(config_, "shutdown-grace-s = 0\n");
  std::string sha = CommitHeldJobs(1);
  DaemonProcess* d = StartReady({"--config", config_});
  ASSERT_NO_FATAL_FAILURE(WaitRunning(1));

  // With the grace of 0 the job would be stopped at once and retried by
  // the next start; with the reloaded one it may finish.
  WriteFileOrDie(config_, "shutdown-grace-s = 600\n");
  json r = ReloadJson();
  EXPECT_EQ(r["applied"], json::array({"shutdown-grace-s"})) << r.dump();
  EXPECT_EQ(r["needs_restart"], json::array()) << r.dump();

  CommandResult stop = Wtctl({"stop", "--wait", "0"});
  ASSERT_EQ(stop.exit_code, 0) << stop.Describe();
  ASSERT_TRUE(WaitFor([&] { return d->Log().find("600000 ms grace") != std::string::npos; },
                      ScaledMs(30000)))
      << "the stop did not wait with the reloaded grace";
  EXPECT_TRUE(d->Running()) << "wtd did not wait for the running job";
  WriteFileOrDie(release_, "");
  std::optional<int> code = d->WaitExit(ScaledMs(60000));
  ASSERT_TRUE(code.has_value()) << "wtd still runs after its job finished";
  EXPECT_EQ(*code, 0);
  ExpectExactlyOnce(Runs(), {sha}, "held0");  // succeeded, not interrupted
  EXPECT_EQ(Effects(), std::vector<std::string>{sha});
}

TEST_F(ReloadTest, LogFormatAppliesFromTheReloadOn) {
  WriteFileOrDie(config_, "log-format = text\n");
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady({"--config", config_});
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  std::string log_path = state_dir_ + "/logs/wtd.log";
  EXPECT_NE(ReadFileOr(log_path).front(), '{') << "starts as text";

  WriteFileOrDie(config_, "log-format = json\n");
  json r = ReloadJson();
  EXPECT_EQ(r["applied"], json::array({"log-format"})) << r.dump();
  std::string sha = repo_.Commit("after", "x", "after the reload");
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "effect"));

  // From the reload's own lines on, every line is a JSON object.
  std::vector<std::string> lines = Lines(ReadFileOr(log_path));
  auto first = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("reload: --log-format is now json") != std::string::npos;
  });
  ASSERT_NE(first, lines.end()) << ReadFileOr(log_path);
  bool queued = false;
  for (auto it = first; it != lines.end(); ++it) {
    json line = json::parse(*it, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(line.is_object()) << "not JSON after the reload: " << *it;
    std::string msg = line.value("msg", "");
    queued = queued || (msg.find("queued") != std::string::npos &&
                        msg.find(sha.substr(0, 12)) != std::string::npos);
  }
  EXPECT_TRUE(queued) << "no JSON line for the run queued after the reload";
  StopDaemon(d);
}

}  // namespace
}  // namespace wtd::itest
