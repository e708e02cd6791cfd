// Property test of commit detection: random histories made with the real
// git CLI (commits dated now or long ago, branches, switches, detached
// HEADs, merges, rewinds) polled at random moments with random budgets and
// walk bounds, through restarts of the poller over the same store.
//
// After every drain (ticks until nothing more is pending):
//   - every commit reachable from HEAD that was not there at the start has
//     exactly one run per job;
//   - no commit that was never reachable from HEAD at a tick ran, nor any
//     commit of the start;
//   - no (job, sha) has two runs.
//
// WTD_PROPERTY_CASES=N runs N cases (default 60); RC_PARAMS works as usual.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"
#include "scheduler/poller.h"

namespace wtd {
namespace {

constexpr int64_t kNowS = 1'700'000'000;
constexpr int kDefaultCases = 60;

class World {
 public:
  World() : repo_(dir_.Sub("repo")) {
    Sh("git init -q -b main " + repo_);
    std::filesystem::create_directories(repo_ + "/jobs");
    std::ofstream(repo_ + "/jobs/a.job") << "run = true\n";
    std::ofstream(repo_ + "/jobs/b.job") << "run = true\n";
    Commit(/*old=*/true);
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    RC_ASSERT(s.ok());
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    RC_ASSERT(runs_->Init().ok());
    branches_ = {"main"};
  }

  // Runs a shell command; false when it exits non-zero.
  bool Sh(const std::string& cmd, int64_t time_s = kNowS) {
    std::string date = "@" + std::to_string(time_s) + " +0000";
    std::string full = "GIT_AUTHOR_DATE='" + date + "' GIT_COMMITTER_DATE='" + date +
                       "' GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null " + cmd +
                       " >/dev/null 2>&1";
    return std::system(full.c_str()) == 0;
  }
  bool Git(const std::string& args, int64_t time_s = kNowS) {
    return Sh("git -C " + repo_ +
                  " -c user.name=t -c user.email=t@e -c advice.detachedHead=false " + args,
              time_s);
  }
  std::vector<std::string> RevList() {
    std::string out = dir_.Sub("revs");
    RC_ASSERT(std::system(("git -C " + repo_ + " rev-list HEAD > " + out).c_str()) == 0);
    std::ifstream in(out);
    std::vector<std::string> shas;
    std::string sha;
    while (in >> sha) shas.push_back(sha);
    return shas;
  }

  void Commit(bool old) {
    ++counter_;
    std::ofstream(repo_ + "/c" + std::to_string(counter_) + ".txt") << counter_;
    int64_t t = old ? kNowS - 10 * 86400 + counter_ : kNowS + counter_;
    RC_ASSERT(Git("add -A", t));
    RC_ASSERT(Git("commit -q -m c" + std::to_string(counter_), t));
  }

  void Apply(int kind, int arg) {
    switch (kind) {
      case 0:
      case 1:
        Commit(/*old=*/arg == 0);
        break;
      case 2: {
        std::string name = "b" + std::to_string(branches_.size());
        RC_ASSERT(Git("branch " + name));
        branches_.push_back(name);
        break;
      }
      case 3:
        if (arg == 4) {
          RC_ASSERT(Git("checkout -q --detach"));
        } else {
          RC_ASSERT(Git("checkout -q " + branches_[arg % branches_.size()]));
        }
        break;
      case 4:
        ++counter_;
        RC_ASSERT(Git("merge -q --no-ff -m m" + std::to_string(counter_) + " " +
                          branches_[arg % branches_.size()],
                      kNowS + counter_));
        break;
      case 5:
        Git("reset -q --hard HEAD~" + std::to_string(1 + arg % 2));  // may not exist
        break;
      case 6:
        Tick(1 + arg, 1 + static_cast<size_t>(arg % 3));
        break;
      default:
        if (arg % 2 == 0) {
          poller_.reset();  // a restart: nothing in memory survives
        } else {
          Drain();
        }
        break;
    }
  }

  void Tick(int64_t budget, size_t walk) {
    PollerOptions o;
    o.max_per_tick = budget;
    o.max_commits_per_walk = walk;
    o.max_backfill = 100000;
    if (!poller_) {
      poller_ = std::make_unique<Poller>(runs_.get(), &clock_, o);
      poller_->SetRepos({RepoSpec{repo_, WorktreeSelection::kCurrent, {}}});
    }
    poller_->SetOptions(o);
    for (const std::string& sha : RevList()) ever_.insert(sha);
    more_ = poller_->Tick().more;
    std::vector<RepoStatus> s = poller_->Snapshot();
    RC_ASSERT(s.size() == 1u);
    if (!s[0].error.empty()) RC_FAIL("poller error: " + s[0].error);
    clock_.AdvanceMs(1000);
  }

  // The first tick, before any operation: the start's commits are old and
  // run nothing.
  void Start() {
    Tick(50, 1000);
    start_ = RevList();
    RC_ASSERT(Runs().empty());
  }

  // Ticks until nothing is pending, then checks the property.
  void Drain() {
    int ticks = 0;
    do {
      Tick(1 + ticks % 3, 2);
      RC_ASSERT(++ticks < 2000);
    } while (more_);
    std::map<std::pair<std::string, std::string>, int> count;
    std::set<std::string> start(start_.begin(), start_.end());
    for (const Run& r : Runs()) {
      int n = ++count[{r.key.job, r.key.sha}];
      if (n > 1) RC_FAIL("two runs of " + r.key.job + " on " + r.key.sha);
      if (start.count(r.key.sha)) RC_FAIL("a commit of the start ran: " + r.key.sha);
      if (!ever_.count(r.key.sha)) RC_FAIL("a commit never reachable from HEAD ran: " + r.key.sha);
    }
    for (const std::string& sha : RevList()) {
      if (start.count(sha)) continue;
      for (const char* job : {"a", "b"}) {
        if (count[{job, sha}] != 1) {
          RC_FAIL("commit " + sha + " reachable from HEAD has no run of " + job);
        }
      }
    }
  }

  std::vector<Run> Runs() {
    RunFilter f;
    f.limit = 0;
    Result<std::vector<Run>> all = runs_->List(f);
    RC_ASSERT(all.ok());
    return *all;
  }

 private:
  TempDir dir_;
  std::string repo_;
  FakeClock clock_{kNowS * 1000};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<Poller> poller_;
  std::vector<std::string> branches_;
  std::vector<std::string> start_;
  std::set<std::string> ever_;
  int counter_ = 0;
  bool more_ = false;
};

void CommitDetectionProperty() {
  // rapidcheck scales inRange by the size it is given: the steps get the
  // nominal size so every kind and argument is drawn, the list at most 40.
  auto step = rc::gen::resize(rc::kNominalSize,
                              rc::gen::pair(rc::gen::inRange(0, 8), rc::gen::inRange(0, 5)));
  auto ops = *rc::gen::resize(40, rc::gen::container<std::vector<std::pair<int, int>>>(step));
  World world;
  world.Start();
  for (const auto& [kind, arg] : ops) world.Apply(kind, arg);
  world.Drain();
}

int CaseCount() {
  const char* cases = std::getenv("WTD_PROPERTY_CASES");
  if (cases != nullptr && std::atoi(cases) > 0) return std::atoi(cases);
  return kDefaultCases;
}

TEST(PollerPropertyTest, EveryCommitThatBecomesReachableRunsOnceAndNothingElseRuns) {
  spdlog::level::level_enum level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);  // a queued-run line per run is noise here
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  const char* rc_params = std::getenv("RC_PARAMS");
  if (rc_params == nullptr || std::string(rc_params).find("max_success") == std::string::npos) {
    params.maxSuccess = CaseCount();
  }
  rc::detail::TestMetadata metadata;
  metadata.id = "PollerPropertyTest/EveryCommitThatBecomesReachableRunsOnceAndNothingElseRuns";
  metadata.description = "commit detection over random histories";
  rc::detail::TestResult result =
      rc::detail::checkTestable(&CommitDetectionProperty, metadata, params);
  std::ostringstream message;
  rc::detail::printResultMessage(result, message);
  spdlog::set_level(level);
  ASSERT_TRUE(result.template is<rc::detail::SuccessResult>()) << message.str();
}

}  // namespace
}  // namespace wtd
