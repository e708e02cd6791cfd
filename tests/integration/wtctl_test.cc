// wtctl against a live daemon and against none, and reloads of the
// configuration file (SIGHUP, wtctl reload).
#include <signal.h>

#include <map>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class WtctlTest : public IntegrationTest {};

TEST_F(WtctlTest, StatusExitsThreeWithNoDaemon) {
  CommandResult human = Wtctl({"status"});
  EXPECT_EQ(human.exit_code, 3) << human.Describe();
  EXPECT_NE(human.err.find("no daemon"), std::string::npos) << human.Describe();
  CommandResult j = Wtctl({"--json", "status"});
  EXPECT_EQ(j.exit_code, 3) << j.Describe();
  json out = json::parse(j.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(out.is_object()) << j.Describe();
  EXPECT_EQ(out["running"], false) << out.dump();
  EXPECT_EQ(out["socket"], state_dir_ + "/wtd.sock") << out.dump();
}

TEST_F(WtctlTest, StatusExitsThreeAfterTheDaemonWasKilled) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  EXPECT_EQ(Wtctl({"status"}).exit_code, 0);
  d->Kill9();  // leaves a stale socket file behind
  CommandResult r = Wtctl({"status"});
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
}

TEST_F(WtctlTest, RunsWithNoDaemonReadTheStoreAndSaySo) {
  repo_.CommitJob("effect", EffectJob());
  repo_.Commit("a", "a", "second");
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  CommandResult live = Wtctl({"--json", "runs", "--limit", "0"});
  ASSERT_EQ(live.exit_code, 0) << live.Describe();
  EXPECT_EQ(live.err.find("reading the state store"), std::string::npos) << live.Describe();
  StopDaemon(d);

  CommandResult direct = Wtctl({"--json", "runs", "--limit", "0"});
  ASSERT_EQ(direct.exit_code, 0) << direct.Describe();
  EXPECT_NE(direct.err.find("reading the state store"), std::string::npos) << direct.Describe();
  EXPECT_EQ(json::parse(direct.out), json::parse(live.out)) << "the store and the daemon agree";
  ExpectExactlyOnce(ParseRuns(json::parse(direct.out)), repo_.RevList(), "effect");

  // Filters work in direct mode too.
  CommandResult one = Wtctl({"--json", "runs", "--limit", "1", "--state", "succeeded"});
  ASSERT_EQ(one.exit_code, 0) << one.Describe();
  EXPECT_EQ(json::parse(one.out).size(), 1u) << one.out;
  CommandResult human = Wtctl({"runs"});
  EXPECT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("succeeded"), std::string::npos) << human.out;
}

TEST_F(WtctlTest, SighupWithABadConfigFileKeepsTheDaemonRunning) {
  std::string config = dir_.Sub("wtd.ini");
  WriteFileOrDie(config, "concurrency = 1\n");
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady({"--config", config});
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));

  WriteFileOrDie(config, "concurrency = lots\n");
  d->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return d->Log().find("reload refused") != std::string::npos; },
                      ScaledMs(30000)))
      << "no refusal logged after SIGHUP with a bad config";
  ASSERT_TRUE(d->Running()) << "wtd exited after SIGHUP with a bad config";
  std::optional<json> s = Status();
  ASSERT_TRUE(s) << "wtd stopped answering after SIGHUP with a bad config";
  EXPECT_EQ(s->value("pid", 0), d->pid());

  CommandResult reload = Wtctl({"reload"});
  EXPECT_EQ(reload.exit_code, 1) << reload.Describe();
  EXPECT_NE(reload.err.find("concurrency"), std::string::npos)
      << "the refusal names the bad option: " << reload.Describe();

  // Still working with the old configuration.
  std::string sha = repo_.Commit("after", "x", "after the bad reload");
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "effect"));

  WriteFileOrDie(config, "concurrency = 2\n");
  CommandResult good = Wtctl({"reload"});
  EXPECT_EQ(good.exit_code, 0) << good.Describe();
  d->Signal(SIGHUP);
  ASSERT_TRUE(d->Running());
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(1));
  ExpectExactlyOnce(Runs(), repo_.RevList(), "effect");
  StopDaemon(d);
}

TEST_F(WtctlTest, PauseHoldsNewRunsUntilResume) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  CommandResult pause = Wtctl({"pause"});
  ASSERT_EQ(pause.exit_code, 0) << pause.Describe();
  std::string sha = repo_.Commit("p", "p", "while paused");
  // Enqueued (polling goes on) but not started.
  std::vector<RunRow> runs;
  ASSERT_TRUE(WaitFor(
      [&] {
        runs = Runs();
        return !runs.empty() && runs[0].sha == sha;
      },
      ScaledMs(30000)))
      << RunsToString(runs);
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(3, /*idle=*/false));
  runs = Runs();
  EXPECT_EQ(runs[0].state, "pending") << RunsToString(runs);
  CommandResult resume = Wtctl({"resume"});
  ASSERT_EQ(resume.exit_code, 0) << resume.Describe();
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "effect"));
  ExpectExactlyOnce(Runs(), repo_.RevList(), "effect");
  StopDaemon(d);
}

TEST_F(WtctlTest, EventsListTheTransitionsOfEachRunInOrderUpAndDown) {
  repo_.CommitJob("effect", EffectJob());
  repo_.Commit("a.txt", "a", "second");
  std::vector<std::string> shas = repo_.RevList();
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  auto events = [&] {
    CommandResult r = Wtctl({"--json", "events", "--last", "1000"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::vector<json> out;
    for (const std::string& line : Lines(r.out)) out.push_back(json::parse(line));
    return out;
  };
  std::vector<json> up = events();
  // Each run: pending (enqueued) ... -> succeeded, in sequence order.
  uint64_t seq = 0;
  std::map<std::string, std::vector<std::string>> path;  // sha -> states reached
  for (const json& e : up) {
    EXPECT_GT(e["seq"].get<uint64_t>(), seq) << e.dump();
    seq = e["seq"].get<uint64_t>();
    EXPECT_EQ(e["job"], "effect") << e.dump();
    EXPECT_EQ(e["worktree"], "main") << e.dump();
    path[e["sha"].get<std::string>()].push_back(e["to"].get<std::string>());
  }
  ASSERT_EQ(path.size(), shas.size());
  for (const std::string& sha : shas) {
    ASSERT_FALSE(path[sha].empty()) << Short(sha);
    EXPECT_EQ(path[sha].front(), "pending") << Short(sha);
    EXPECT_EQ(path[sha].back(), "succeeded") << Short(sha);
  }
  // --last N: the newest N; --after SEQ: those after it.
  CommandResult last2 = Wtctl({"--json", "events", "--last", "2"});
  EXPECT_EQ(Lines(last2.out).size(), 2u) << last2.out;
  CommandResult after = Wtctl({"--json", "events", "--after", std::to_string(seq - 1)});
  ASSERT_EQ(Lines(after.out).size(), 1u) << after.out;
  EXPECT_EQ(json::parse(Lines(after.out)[0])["seq"], seq);
  EXPECT_EQ(Wtctl({"events", "--last", "1", "--after", "3"}).exit_code, 2);

  StopDaemon(d);
  std::vector<json> down = events();
  EXPECT_EQ(down, up) << "the store read directly lists the same events";
  CommandResult human = Wtctl({"events", "--last", "1"});
  EXPECT_NE(human.out.find("-> succeeded (attempt 1)"), std::string::npos) << human.out;
}

}  // namespace
}  // namespace wtd::itest
