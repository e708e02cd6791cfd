// The command definitions: one table, unique names, each request built from
// wtctl's arguments (and refused with a usage error), each read-only handler
// answering from a store alone, each printer printing.
#include <gtest/gtest.h>

#include <set>

#include "commands/command.h"
#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"

namespace wtd {
namespace {

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
    ctx_.runs = runs_.get();
    ctx_.state_dir = dir_.path();
  }
  void Enqueue(const std::string& job, char sha) {
    NewRun r;
    r.key = RunKey{"/srv/repo", "main", job, std::string(40, sha)};
    r.branch = "main";
    r.worktree_path = "/srv/repo";
    r.command = "true";
    ASSERT_TRUE(runs_->Enqueue({r}, std::nullopt).ok());
  }
  const CommandDef& Def(const char* name) {
    const CommandDef* d = FindCommand(name);
    EXPECT_NE(d, nullptr) << name;
    return *d;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  CommandContext ctx_;
};

TEST_F(CommandsTest, EveryCommandHasOneUniqueDefinitionWithHelp) {
  std::set<std::string_view> names;
  for (const CommandDef& c : AllCommands()) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name << " defined twice";
    EXPECT_FALSE(c.summary.empty()) << c.name;
    EXPECT_EQ(c.usage.substr(0, c.name.size()), c.name) << c.usage;
    EXPECT_TRUE(c.handle != nullptr || c.run != nullptr) << c.name << " does nothing";
    if (c.access == Access::kReadOnly && c.run == nullptr) {
      EXPECT_NE(c.handle, nullptr) << c.name;
    }
  }
  for (const char* n : {"status", "runs", "show", "logs", "stop", "pause", "resume", "reload"}) {
    EXPECT_NE(FindCommand(n), nullptr) << n;
  }
  EXPECT_EQ(FindCommand("frobnicate"), nullptr);
}

TEST_F(CommandsTest, RunsRequestIsBuiltFromFlagsAndBadValuesAreUsageErrors) {
  const CommandDef& runs = Def("runs");
  CliArgs a;
  a.flags = {{"job", "build"}, {"state", "failed"}, {"limit", "5"}};
  Result<json> req = runs.request(a);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(*req, (json{{"job", "build"}, {"state", "failed"}, {"limit", 5}}));
  a.flags = {{"limit", "-1"}};
  EXPECT_TRUE(runs.request(a).status().IsInvalidArgument());
  a.flags = {{"state", "sleeping"}};
  Result<json> bad = runs.request(a);
  ASSERT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().message().rfind("--state", 0), 0u) << bad.status().message();
}

TEST_F(CommandsTest, RunsHandlerAnswersFromTheStoreAloneNewestFirstAndFiltered) {
  Enqueue("build", 'a');
  Enqueue("test", 'b');
  Enqueue("build", 'c');
  const CommandDef& runs = Def("runs");
  ASSERT_EQ(runs.access, Access::kReadOnly);
  Result<json> all = runs.handle(ctx_, json::object());
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0]["id"], 3);
  Result<json> build = runs.handle(ctx_, json{{"job", "build"}, {"limit", 1}});
  ASSERT_TRUE(build.ok());
  ASSERT_EQ(build->size(), 1u);
  EXPECT_EQ((*build)[0]["sha"], std::string(40, 'c'));
  EXPECT_TRUE(runs.handle(ctx_, json{{"limit", "x"}}).status().IsInvalidArgument());
  std::string table = runs.print(*all);
  EXPECT_NE(table.find("ID"), std::string::npos) << table;
  EXPECT_NE(table.find("pending"), std::string::npos) << table;
  EXPECT_EQ(runs.print(json::array()), "no runs\n");
}

TEST_F(CommandsTest, GcTakesARetentionInDaysAndCollectsOnTheStoreWithTheDaemonDown) {
  const CommandDef& gc = Def("gc");
  ASSERT_EQ(gc.access, Access::kStoreWrite);
  CliArgs a;
  a.flags = {{"dry-run", "1"}, {"retention-days", "0.5"}};
  Result<json> req = gc.request(a);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(*req, (json{{"dry_run", true}, {"retention_days", 0.5}}));
  EXPECT_FALSE(gc.writes(*req)) << "a dry run opens the store read-only";
  for (const char* bad : {"-1", "x", "1e9", "nan", ""}) {
    a.flags = {{"retention-days", bad}};
    EXPECT_TRUE(gc.request(a).status().IsInvalidArgument()) << bad;
  }

  Enqueue("build", 'a');
  Enqueue("build", 'b');
  ASSERT_TRUE(runs_->Cancel(1, RunState::kPending, "test").ok());
  clock_.AdvanceMs(86'400'000);
  Result<json> plan = gc.handle(ctx_, json{{"dry_run", true}, {"retention_days", 0.5}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ((*plan)["retention_from"], "--retention-days");
  EXPECT_EQ((*plan)["run_ids"], json::array({1}));
  EXPECT_EQ((*plan)["runs_kept"], 1) << "the pending run";
  EXPECT_TRUE(runs_->Get(1).ok()) << "the dry run removed the run";
  std::string human = gc.print(*plan);
  EXPECT_NE(human.find("would remove 1 run(s) (1)"), std::string::npos) << human;
  EXPECT_NE(human.find("retention 0.5 day(s) (wtctl --retention-days)"), std::string::npos)
      << human;

  Result<json> fallback = gc.handle(ctx_, json{{"dry_run", false}});
  ASSERT_TRUE(fallback.ok()) << fallback.status().ToString();
  EXPECT_EQ((*fallback)["retention_from"], "default");
  EXPECT_EQ((*fallback)["runs"], 0) << "a day is within the default 30";
  Result<json> done = gc.handle(ctx_, json{{"dry_run", false}, {"retention_days", 0.5}});
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ((*done)["run_ids"], json::array({1}));
  EXPECT_TRUE(runs_->Get(1).status().IsNotFound());
  EXPECT_TRUE(runs_->Get(2).ok());
  Result<json> forever = gc.handle(ctx_, json{{"retention_days", 0}});
  ASSERT_TRUE(forever.ok());
  EXPECT_TRUE((*forever)["cutoff"].is_null());
  EXPECT_NE(gc.print(*forever).find("nothing collected"), std::string::npos);
}

TEST_F(CommandsTest, ShowAndLogsTakeOneRunId) {
  Enqueue("build", 'a');
  for (const char* name : {"show", "logs"}) {
    const CommandDef& c = Def(name);
    CliArgs a;
    EXPECT_TRUE(c.request(a).status().IsInvalidArgument()) << name;
    a.positional = {"zero"};
    EXPECT_TRUE(c.request(a).status().IsInvalidArgument()) << name;
    a.positional = {"1"};
    Result<json> req = c.request(a);
    ASSERT_TRUE(req.ok()) << name;
    EXPECT_EQ((*req)["id"], 1);
  }
  Result<json> one = Def("show").handle(ctx_, json{{"id", 1}});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ((*one)["job"], "build");
  EXPECT_NE(Def("show").print(*one).find("build"), std::string::npos);
  Result<json> none = Def("show").handle(ctx_, json{{"id", 9}});
  EXPECT_TRUE(none.status().IsNotFound());
  EXPECT_EQ(none.status().message(), "run 9 not found");
}

TEST_F(CommandsTest, DaemonCommandsRefuseWithoutADaemon) {
  for (const char* name : {"status", "stop", "pause", "resume", "reload"}) {
    const CommandDef& c = Def(name);
    EXPECT_EQ(c.access, Access::kDaemon) << name;
    Result<json> r = c.handle(ctx_, json::object());
    EXPECT_EQ(r.status().code(), Status::Code::kFailedPrecondition) << name;
  }
}

// A daemon whose reload answers `reload_`.
class FakeDaemon : public DaemonControl {
 public:
  explicit FakeDaemon(Result<ReloadResult> reload) : reload_(std::move(reload)) {}
  Info Status() override { return Info{}; }
  void RequestStop() override {}
  void SetPaused(bool) override {}
  Result<ReloadResult> Reload() override { return reload_; }

 private:
  Result<ReloadResult> reload_;
};

TEST_F(CommandsTest, ReloadSaysWhatAppliedAndWhatNeedsARestart) {
  ReloadResult done;
  done.config_file = "/etc/wtd.ini";
  done.applied = {"concurrency", "log-format"};
  done.needs_restart = {"socket"};
  FakeDaemon daemon(done);
  ctx_.daemon = &daemon;
  Result<json> r = Def("reload").handle(ctx_, json::object());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, json({{"reloaded", true},
                      {"config_file", "/etc/wtd.ini"},
                      {"applied", {"concurrency", "log-format"}},
                      {"needs_restart", {"socket"}}}));
  EXPECT_EQ(Def("reload").print(*r),
            "reloaded /etc/wtd.ini\n"
            "applied: --concurrency --log-format\n"
            "--socket changed: needs a restart\n");

  FakeDaemon unchanged(ReloadResult{});
  ctx_.daemon = &unchanged;
  r = Def("reload").handle(ctx_, json::object());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)["config_file"].is_null()) << r->dump();
  EXPECT_EQ(Def("reload").print(*r), "reloaded: nothing changed\n");

  FakeDaemon refused(Status::InvalidArgument("--poll-ms=5: must be between 10 and 3600000"));
  ctx_.daemon = &refused;
  r = Def("reload").handle(ctx_, json::object());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(), "--poll-ms=5: must be between 10 and 3600000");
}

}  // namespace
}  // namespace wtd
