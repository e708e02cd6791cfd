// trigger, cancel and jobs: their requests from wtctl's arguments (and the
// usage errors), and their handlers over a real store and a real git
// repository. trigger's daemon side is the real Poller::Trigger, called
// here on the test's thread as the loop thread would.
#include <gtest/gtest.h>

#include "commands/command.h"
#include "fakes/fake_clock.h"
#include "git/git_fixture.h"
#include "scheduler/poller.h"

namespace wtd {
namespace {

// A daemon whose trigger is a real poller's and whose cancel is refused.
class PollerDaemon : public DaemonControl {
 public:
  explicit PollerDaemon(Poller* poller) : poller_(poller) {}
  Info Status() override { return Info{}; }
  void RequestStop() override {}
  void SetPaused(bool) override {}
  Result<ReloadResult> Reload() override { return ReloadResult{}; }
  Result<TriggeredRun> Trigger(const TriggerArgs& a) override {
    return poller_->Trigger(a.repo, a.worktree, a.job, a.rev, a.again);
  }

 private:
  Poller* poller_;
};

class ControlCommandsTest : public git::GitFixture {
 protected:
  void SetUp() override {
    git::GitFixture::SetUp();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{Path("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
    ctx_.runs = runs_.get();
    ctx_.state_dir = Path("state");
    repo_ = InitRepo("repo");
    // The poller never runs it by itself: no branch matches.
    first_ = Commit(repo_, "jobs/manual.job", "run = echo hi\nbranches = release/*\n", "manual");
    broken_ = Commit(repo_, "jobs/broken.job", "run = true\n\ntimeout_s = soon\n", "broken");
  }

  const CommandDef& Def(const char* name) {
    const CommandDef* d = FindCommand(name);
    EXPECT_NE(d, nullptr) << name;
    return *d;
  }

  // A poller over the store watching repo_, polled once (its repository
  // open, as the daemon's is).
  std::unique_ptr<Poller> MakePoller() {
    auto p = std::make_unique<Poller>(runs_.get(), &clock_, PollerOptions{});
    p->SetRepos({RepoSpec{repo_, WorktreeSelection::kCurrent, {}}});
    p->Tick();
    return p;
  }

  FakeClock clock_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  CommandContext ctx_;
  std::string repo_, first_, broken_;
};

TEST_F(ControlCommandsTest, TriggerRequestIsBuiltFromItsArgumentsAndRefusesBadOnes) {
  const CommandDef& t = Def("trigger");
  EXPECT_EQ(t.access, Access::kDaemon);
  CliArgs a;
  EXPECT_TRUE(t.request(a).status().IsInvalidArgument());
  a.positional = {"build", "extra"};
  EXPECT_TRUE(t.request(a).status().IsInvalidArgument());
  a.positional = {"jobs/build"};
  EXPECT_TRUE(t.request(a).status().IsInvalidArgument());
  a.positional = {"build"};
  Result<json> req = t.request(a);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(*req, (json{{"job", "build"}, {"again", false}}));
  a.flags = {{"repo", "/srv/r/./x/.."}, {"worktree", "wt2"}, {"sha", "abc123"}, {"again", "1"}};
  req = t.request(a);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(*req, (json{{"job", "build"},
                        {"again", true},
                        {"repo", "/srv/r/"},
                        {"worktree", "wt2"},
                        {"sha", "abc123"}}));
  a.flags = {{"sha", ""}};
  EXPECT_TRUE(t.request(a).status().IsInvalidArgument());
}

TEST_F(ControlCommandsTest, TriggerNeedsTheDaemon) {
  Result<json> r = Def("trigger").handle(ctx_, json{{"job", "manual"}});
  EXPECT_TRUE(r.status().IsFailedPrecondition()) << r.status().ToString();
}

TEST_F(ControlCommandsTest, TriggerEnqueuesOnceAndAgainMakesTheNextSeries) {
  auto poller = MakePoller();
  RunFilter all;
  all.limit = 0;
  ASSERT_TRUE(runs_->List(all)->empty()) << "the branch filter keeps the poller off it";
  PollerDaemon daemon(poller.get());
  ctx_.daemon = &daemon;
  const CommandDef& t = Def("trigger");

  Result<json> r = t.handle(ctx_, json{{"job", "manual"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)["created"].get<bool>());
  EXPECT_EQ((*r)["run"]["sha"], broken_);  // HEAD
  EXPECT_EQ((*r)["run"]["series"], 0);
  EXPECT_EQ((*r)["run"]["state"], "pending");
  uint64_t id = (*r)["run"]["id"].get<uint64_t>();
  Result<wtd::Run> stored = runs_->Get(id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->command, "echo hi");
  EXPECT_EQ(stored->branch, "main");
  EXPECT_NE(t.print(*r).find("manual"), std::string::npos) << t.print(*r);

  r = t.handle(ctx_, json{{"job", "manual"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE((*r)["created"].get<bool>());
  EXPECT_EQ((*r)["run"]["id"].get<uint64_t>(), id);

  r = t.handle(ctx_, json{{"job", "manual"}, {"again", true}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)["created"].get<bool>());
  EXPECT_EQ((*r)["run"]["series"], 1);
  uint64_t again = (*r)["run"]["id"].get<uint64_t>();
  EXPECT_NE(again, id);
  // Without --again now: the newest series' run.
  r = t.handle(ctx_, json{{"job", "manual"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["run"]["id"].get<uint64_t>(), again);
  RunKey key{Path("repo"), "main", "manual", broken_, 1};
  Result<uint64_t> by_key = runs_->FindByKey(key);
  ASSERT_TRUE(by_key.ok()) << by_key.status().ToString();
  EXPECT_EQ(*by_key, again);

  // An older commit by a short sha: its own key, series 0.
  r = t.handle(ctx_, json{{"job", "manual"}, {"sha", first_.substr(0, 8)}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)["created"].get<bool>());
  EXPECT_EQ((*r)["run"]["sha"], first_);
  EXPECT_EQ((*r)["run"]["series"], 0);
  EXPECT_EQ(runs_->List(all)->size(), 3u);
}

TEST_F(ControlCommandsTest, TriggerOfARunRetentionRemovedSaysSoAndAgainRunsIt) {
  auto poller = MakePoller();
  PollerDaemon daemon(poller.get());
  ctx_.daemon = &daemon;
  const CommandDef& t = Def("trigger");
  Result<json> r = t.handle(ctx_, json{{"job", "manual"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  uint64_t id = (*r)["run"]["id"].get<uint64_t>();
  ASSERT_TRUE(runs_->Cancel(id, RunState::kPending, "test").ok());
  ASSERT_TRUE(runs_->DeleteTerminalRuns({id}).ok());

  r = t.handle(ctx_, json{{"job", "manual"}});
  ASSERT_TRUE(r.status().IsFailedPrecondition()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("run " + std::to_string(id) + ", whose record retention"),
            std::string::npos)
      << r.status().message();
  r = t.handle(ctx_, json{{"job", "manual"}, {"again", true}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)["created"].get<bool>());
  EXPECT_EQ((*r)["run"]["series"], 1);
}

TEST_F(ControlCommandsTest, TriggerErrorsNameTheJobFileCommitWorktreeAndRevision) {
  auto poller = MakePoller();
  PollerDaemon daemon(poller.get());
  ctx_.daemon = &daemon;
  const CommandDef& t = Def("trigger");
  Result<json> r = t.handle(ctx_, json{{"job", "nope"}});
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_EQ(r.status().message(),
            "no job nope (jobs/nope.job) at commit " + broken_ + " (jobs there: manual)");
  r = t.handle(ctx_, json{{"job", "broken"}});
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("job file jobs/broken.job at commit " + broken_),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("jobs/broken.job:3: timeout_s"), std::string::npos)
      << r.status().message();
  // Not defined yet at the older commit.
  r = t.handle(ctx_, json{{"job", "broken"}, {"sha", first_}});
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(first_), std::string::npos);

  r = t.handle(ctx_, json{{"job", "manual"}, {"worktree", "wt9"}});
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("worktree wt9"), std::string::npos);
  EXPECT_NE(r.status().message().find("watched: main"), std::string::npos);
  r = t.handle(ctx_, json{{"job", "manual"}, {"sha", "feedface"}});
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("feedface"), std::string::npos);
  r = t.handle(ctx_, json{{"job", "manual"}, {"repo", Path("other")}});
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(Path("other")), std::string::npos);
  RunFilter all;
  all.limit = 0;
  EXPECT_TRUE(runs_->List(all)->empty());

  // Two repositories watched: which one must be said.
  std::string second = InitRepo("second");
  Commit(second, "README", "x\n", "init");
  poller->SetRepos({RepoSpec{repo_, WorktreeSelection::kCurrent, {}},
                    RepoSpec{second, WorktreeSelection::kCurrent, {}}});
  poller->Tick();
  r = t.handle(ctx_, json{{"job", "manual"}});
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(second), std::string::npos) << r.status().message();
  r = t.handle(ctx_, json{{"job", "manual"}, {"repo", repo_ + "/jobs"}});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(ControlCommandsTest, CancelWithTheDaemonDownEndsAPendingRunAndRefusesTheRest) {
  const CommandDef& c = Def("cancel");
  EXPECT_EQ(c.access, Access::kStoreWrite);
  CliArgs a;
  EXPECT_TRUE(c.request(a).status().IsInvalidArgument());
  a.positional = {"x"};
  EXPECT_TRUE(c.request(a).status().IsInvalidArgument());
  a.positional = {"7"};
  EXPECT_EQ(*c.request(a), (json{{"id", 7}}));

  NewRun n;
  n.key = RunKey{Path("repo"), "main", "manual", first_};
  n.command = "true";
  n.max_attempts = 3;
  ASSERT_TRUE(runs_->Enqueue({n}, std::nullopt).ok());
  n.key.sha = broken_;
  ASSERT_TRUE(runs_->Enqueue({n}, std::nullopt).ok());
  ASSERT_TRUE(runs_->Lease(2).ok());

  Result<json> r = c.handle(ctx_, json{{"id", 1}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["from"], "pending");
  EXPECT_EQ((*r)["run"]["state"], "cancelled");
  EXPECT_EQ((*r)["run"]["error"], "cancelled by wtctl");
  EXPECT_EQ(runs_->Get(1)->state, RunState::kCancelled);
  EXPECT_NE(c.print(*r).find("cancelled"), std::string::npos);

  r = c.handle(ctx_, json{{"id", 1}});
  ASSERT_TRUE(r.status().IsFailedPrecondition());
  EXPECT_EQ(r.status().message(), "run 1 is already cancelled");
  r = c.handle(ctx_, json{{"id", 2}});
  ASSERT_TRUE(r.status().IsFailedPrecondition());
  EXPECT_NE(r.status().message().find("needs the running daemon"), std::string::npos);
  EXPECT_EQ(runs_->Get(2)->state, RunState::kLeased);
  EXPECT_TRUE(c.handle(ctx_, json{{"id", 9}}).status().IsNotFound());
}

TEST_F(ControlCommandsTest, JobsListsEachWatchedWorktreesJobsAndTheFilesThatDoNotLoad) {
  const CommandDef& j = Def("jobs");
  EXPECT_EQ(j.access, Access::kReadOnly);
  CliArgs a;
  EXPECT_EQ(*j.request(a), json::object());
  a.positional = {"x"};
  EXPECT_TRUE(j.request(a).status().IsInvalidArgument());

  Result<json> none = j.handle(ctx_, json::object());
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE((*none)["repos"].empty());
  EXPECT_EQ(j.print(*none), "no jobs\n");

  WatchedRepos w;
  w.paths = {Path("repo")};
  ASSERT_TRUE(runs_->RecordWatchedRepos(w).ok());
  Result<json> r = j.handle(ctx_, json::object());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)["repos"].size(), 1u) << r->dump(2);
  const json& wt = (*r)["repos"][0]["worktrees"][0];
  EXPECT_EQ(wt["id"], "main");
  EXPECT_EQ(wt["sha"], broken_);
  EXPECT_EQ(wt["branch"], "main");
  ASSERT_EQ(wt["jobs"].size(), 1u) << r->dump(2);
  EXPECT_EQ(wt["jobs"][0]["name"], "manual");
  EXPECT_EQ(wt["jobs"][0]["file"], "jobs/manual.job");
  EXPECT_EQ(wt["jobs"][0]["run"], "echo hi");
  EXPECT_EQ(wt["jobs"][0]["branches"], json::array({"release/*"}));
  EXPECT_EQ(wt["jobs"][0]["max_attempts"], 3);
  EXPECT_EQ(wt["jobs"][0]["isolation"], "commit");
  ASSERT_EQ(wt["errors"].size(), 1u) << r->dump(2);
  EXPECT_EQ(wt["errors"][0]["file"], "jobs/broken.job");
  EXPECT_EQ(wt["errors"][0]["line"], 3);
  std::string table = j.print(*r);
  EXPECT_NE(table.find("manual"), std::string::npos) << table;
  EXPECT_NE(table.find("jobs/broken.job:3"), std::string::npos) << table;

  r = j.handle(ctx_, json{{"worktree", "nope"}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)["repos"][0]["worktrees"].empty());
  r = j.handle(ctx_, json{{"repo", Path("other")}});
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
}

}  // namespace
}  // namespace wtd
