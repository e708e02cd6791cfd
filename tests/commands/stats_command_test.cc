// `stats`: its request from wtctl's flags, and its figures checked against
// the same figures computed by brute force from every run the test made
// (counts, max and mean exactly; percentiles in the right bucket; histogram
// counts summing to the runs), over several windows and filters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>

#include "base/time_format.h"
#include "commands/command.h"
#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"
#include "runs/run_stats.h"

namespace wtd {
namespace {

RunFilter AllRuns() {
  RunFilter f;
  f.limit = 0;
  return f;
}

using S = RunState;

// 2026-11-01T00:00:00Z.
constexpr int64_t kStart = 1'793'491'200'000;

class StatsCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_, RetryPolicy(0, 0.0, 1));
    ASSERT_TRUE(runs_->Init().ok());
    ctx_.runs = runs_.get();
    ctx_.state_dir = dir_.path();
    def_ = FindCommand("stats");
    ASSERT_NE(def_, nullptr);
  }

  void Must(const Result<wtd::Run>& r) { ASSERT_TRUE(r.ok()) << r.status().ToString(); }

  // One run of `job` in `repo`/`worktree` to a random end.
  void MakeRun(std::mt19937_64& rng, const std::string& repo, const std::string& worktree,
               const std::string& job) {
    std::string sha(40, '0');
    std::string n = std::to_string(++seq_);
    sha.replace(40 - n.size(), n.size(), n);
    NewRun nr;
    nr.key = RunKey{repo, worktree, job, sha};
    nr.max_attempts = 1 + rng() % 2;
    Result<std::vector<wtd::Run>> created = runs_->Enqueue({nr}, std::nullopt);
    ASSERT_TRUE(created.ok() && created->size() == 1);
    uint64_t id = created->at(0).id;
    if (rng() % 10 == 0) {
      Must(runs_->Cancel(id, S::kPending, "test"));
      return;
    }
    for (;;) {
      Must(runs_->Lease(id));
      Must(runs_->MarkReady(id, S::kLeased));
      Must(runs_->MarkRunning(id, ProcessIdentity{1, 2, "b"}, 1, "/log"));
      // Durations spread over the buckets, log-uniform up to ~3 hours.
      std::uniform_real_distribution<double> exp10(-0.5, 7.0);
      AttemptOutcome o;
      o.duration_ms = static_cast<int64_t>(std::pow(10.0, exp10(rng)));
      int roll = static_cast<int>(rng() % 10);
      o.exit_code = roll < 6 ? 0 : 1;
      o.timed_out = roll == 9;
      clock_.AdvanceMs(o.duration_ms % 600'000);
      Result<wtd::Run> r = runs_->Finish(id, o);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if (IsTerminal(r->state)) return;
      Must(runs_->Wake(id));
    }
  }

  json Stats(const json& args) {
    Result<json> r = def_->handle(ctx_, args);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json();
  }

  TempDir dir_;
  FakeClock clock_{kStart};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  CommandContext ctx_;
  const CommandDef* def_ = nullptr;
  int seq_ = 0;
};

TEST_F(StatsCommandTest, RequestTakesTheFlagsAndABadSinceIsAUsageErrorNamingIt) {
  CliArgs a;
  a.flags = {{"job", "build"}, {"since", "7d"}, {"worktree", "main"}, {"repo", "/r"}};
  Result<json> req = def_->request(a);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(*req, (json{{"job", "build"}, {"since", "7d"}, {"worktree", "main"}, {"repo", "/r"}}));
  for (const char* bad : {"yesterday", "0h", "2026-02-30", "2026-12-03T10:00:00"}) {
    a.flags = {{"since", bad}};
    req = def_->request(a);
    ASSERT_FALSE(req.ok()) << bad;
    EXPECT_EQ(req.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(req.status().message().find("--since"), std::string::npos) << req.status().message();
  }
  EXPECT_EQ(def_->access, Access::kReadOnly);
  // The handler refuses a bad value too (a request not built by wtctl).
  Result<json> r = def_->handle(ctx_, json{{"since", "soon"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("args.since"), std::string::npos);
}

TEST_F(StatsCommandTest, AnEmptyWindowHasZeroRunsAndNullRatios) {
  json s = Stats(json::object());
  EXPECT_EQ(s["source"], "store");
  EXPECT_EQ(s["until"], FormatRfc3339(kStart));
  EXPECT_EQ(s["since"], FormatRfc3339(kStart - 24 * kHourMs));
  EXPECT_EQ(s["overall"]["runs"], 0);
  EXPECT_TRUE(s["overall"]["success_rate"].is_null());
  EXPECT_TRUE(s["overall"]["attempts_per_success"].is_null());
  EXPECT_TRUE(s["overall"]["duration_ms"]["p50"].is_null());
  EXPECT_EQ(s["overall"]["histogram"].size(), kRunStatsBuckets);
  EXPECT_TRUE(s["jobs"].empty());
  std::string human = def_->print(s);
  EXPECT_NE(human.find("no runs ended"), std::string::npos) << human;
  EXPECT_NE(human.find("read from the state store directly"), std::string::npos) << human;
}

// The figures of `runs`, computed the slow way.
struct Brute {
  uint64_t counts[kRunStateCount] = {};
  uint64_t runs = 0, attempts = 0;
  std::vector<int64_t> durations;
  std::vector<std::pair<int64_t, uint64_t>> slow;       // (duration, id)
  std::vector<std::tuple<int64_t, uint64_t, S>> fails;  // (at, id, state)
};

void ExpectMatches(const json& f, const Brute& b, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(f["runs"], b.runs);
  EXPECT_EQ(f["succeeded"], b.counts[static_cast<int>(S::kSucceeded)]);
  EXPECT_EQ(f["failed"], b.counts[static_cast<int>(S::kFailed)]);
  EXPECT_EQ(f["timed_out"], b.counts[static_cast<int>(S::kTimedOut)]);
  EXPECT_EQ(f["cancelled"], b.counts[static_cast<int>(S::kCancelled)]);
  EXPECT_EQ(f["skipped"], b.counts[static_cast<int>(S::kSkipped)]);
  uint64_t ok = b.counts[static_cast<int>(S::kSucceeded)];
  if (b.runs == 0) {
    EXPECT_TRUE(f["success_rate"].is_null());
  } else {
    EXPECT_DOUBLE_EQ(f["success_rate"].get<double>(),
                     static_cast<double>(ok) / static_cast<double>(b.runs));
  }
  if (ok == 0) {
    EXPECT_TRUE(f["attempts_per_success"].is_null());
  } else {
    EXPECT_DOUBLE_EQ(f["attempts_per_success"].get<double>(),
                     static_cast<double>(b.attempts) / static_cast<double>(ok));
  }
  EXPECT_EQ(f["lock_waits"], 0);
  const json& d = f["duration_ms"];
  std::vector<int64_t> sorted = b.durations;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.empty()) {
    EXPECT_TRUE(d["max"].is_null());
  } else {
    EXPECT_EQ(d["max"], sorted.back());
    int64_t sum = 0;
    for (int64_t x : sorted) sum += x;
    EXPECT_DOUBLE_EQ(d["mean"].get<double>(),
                     static_cast<double>(sum) / static_cast<double>(sorted.size()));
    for (auto [name, q] : {std::pair{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}}) {
      size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
      int64_t exact = sorted[std::max<size_t>(rank, 1) - 1];
      int64_t est = d[name].get<int64_t>();
      EXPECT_EQ(BucketOf(est), BucketOf(exact)) << name << " " << est << " vs " << exact;
      EXPECT_LE(est, sorted.back());
      EXPECT_GE(est, exact) << name;
    }
  }
  uint64_t in_hist = 0;
  std::vector<uint64_t> want(kRunStatsBuckets, 0);
  for (int64_t x : sorted) ++want[BucketOf(x)];
  for (size_t i = 0; i < kRunStatsBuckets; ++i) {
    const json& bucket = f["histogram"][i];
    EXPECT_EQ(bucket["count"], want[i]) << "bucket " << i;
    in_hist += bucket["count"].get<uint64_t>();
    if (i + 1 < kRunStatsBuckets) {
      EXPECT_EQ(bucket["le_ms"], kRunStatsBucketBounds[i]);
    } else {
      EXPECT_TRUE(bucket["le_ms"].is_null());
    }
  }
  EXPECT_EQ(in_hist, sorted.size());  // every started run, in one bucket
  std::vector<std::pair<int64_t, uint64_t>> slow = b.slow;
  std::sort(slow.begin(), slow.end(), [](auto x, auto y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  ASSERT_EQ(f["slowest"].size(), std::min(slow.size(), kRunStatsSlowest));
  for (size_t i = 0; i < f["slowest"].size(); ++i) {
    EXPECT_EQ(f["slowest"][i]["id"], slow[i].second);
    EXPECT_EQ(f["slowest"][i]["duration_ms"], slow[i].first);
  }
  std::vector<std::tuple<int64_t, uint64_t, S>> fails = b.fails;
  std::sort(fails.begin(), fails.end(), [](auto x, auto y) {
    return std::get<0>(x) != std::get<0>(y) ? std::get<0>(x) > std::get<0>(y)
                                            : std::get<1>(x) > std::get<1>(y);
  });
  ASSERT_EQ(f["recent_failures"].size(), std::min(fails.size(), kRunStatsFailures));
  for (size_t i = 0; i < f["recent_failures"].size(); ++i) {
    EXPECT_EQ(f["recent_failures"][i]["id"], std::get<1>(fails[i]));
    EXPECT_EQ(f["recent_failures"][i]["state"], RunStateName(std::get<2>(fails[i])));
    EXPECT_EQ(f["recent_failures"][i]["at"], FormatRfc3339(std::get<0>(fails[i])));
  }
}

TEST_F(StatsCommandTest, FiguresEqualThoseComputedByBruteForceFromEveryRun) {
  std::mt19937_64 rng(20261203);
  const std::vector<std::string> repos = {"/srv/a", "/srv/b"};
  const std::vector<std::string> worktrees = {"main", "feature"};
  const std::vector<std::string> jobs = {"build", "test", "lint"};
  // About 400 runs over ~7 days.
  for (int i = 0; i < 400; ++i) {
    MakeRun(rng, repos[rng() % 2], worktrees[rng() % 2], jobs[rng() % 3]);
    clock_.AdvanceMs(static_cast<int64_t>(rng() % (50 * 60'000)));
  }
  Result<std::vector<wtd::Run>> all = runs_->List(AllRuns());
  ASSERT_TRUE(all.ok());
  const int64_t now = clock_.NowMs();
  struct Case {
    json args;
  };
  std::vector<json> cases = {
      json::object(),
      json{{"since", "1h"}},
      json{{"since", "90m"}},
      json{{"since", "3d"}},
      json{{"since", "30d"}},
      json{{"since", FormatRfc3339(now - 5 * kHourMs - 1234)}},
      json{{"since", "30d"}, {"job", "build"}},
      json{{"since", "7d"}, {"worktree", "feature"}},
      json{{"since", "30d"}, {"repo", "/srv/b"}, {"job", "lint"}},
  };
  for (const json& args : cases) {
    json s = Stats(args);
    ASSERT_TRUE(s.is_object()) << args.dump();
    Result<int64_t> since = ParseSince(args.value("since", std::string("24h")), now);
    ASSERT_TRUE(since.ok());
    EXPECT_EQ(s["since"], FormatRfc3339(*since));
    Brute overall;
    std::map<std::pair<std::string, std::string>, Brute> per_job;
    for (const wtd::Run& r : *all) {
      if (!IsTerminal(r.state) || HourOf(r.finished_at_ms) < *since) continue;
      if (args.contains("job") && r.key.job != args["job"]) continue;
      if (args.contains("worktree") && r.key.worktree != args["worktree"]) continue;
      if (args.contains("repo") && r.key.repo != args["repo"]) continue;
      for (Brute* b : {&overall, &per_job[{r.key.repo, r.key.job}]}) {
        ++b->counts[static_cast<int>(r.state)];
        ++b->runs;
        b->attempts += r.attempt;
        if (r.started_at_ms > 0) {
          b->durations.push_back(r.duration_ms);
          b->slow.emplace_back(r.duration_ms, r.id);
        }
        if (r.state == S::kFailed || r.state == S::kTimedOut) {
          b->fails.emplace_back(r.finished_at_ms, r.id, r.state);
        }
      }
    }
    ExpectMatches(s["overall"], overall, "overall " + args.dump());
    ASSERT_EQ(s["jobs"].size(), per_job.size()) << args.dump();
    size_t i = 0;
    for (const auto& [key, b] : per_job) {
      const json& j = s["jobs"][i++];
      EXPECT_EQ(j["repo"], key.first);
      EXPECT_EQ(j["job"], key.second);
      EXPECT_EQ(j.contains("worktree"), args.contains("worktree"));
      ExpectMatches(j, b, key.first + " " + key.second + " " + args.dump());
    }
    if (args == json{{"since", "30d"}}) {
      EXPECT_EQ(overall.runs, 400u) << "the window should hold every run";
    }
  }
}

TEST_F(StatsCommandTest, HumanOutputIsATableWithAHistogramLinePerJobInUnicodeOrAscii) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) MakeRun(rng, "/srv/a", "main", i % 2 ? "build" : "test");
  json s = Stats(json{{"since", "7d"}});
  ASSERT_EQ(s["jobs"].size(), 2u);
  ::setenv("LC_ALL", "en_US.UTF-8", 1);
  std::string utf8 = def_->print(s);
  ::setenv("LC_ALL", "C", 1);
  std::string ascii = def_->print(s);
  ::unsetenv("LC_ALL");
  for (const std::string& out : {utf8, ascii}) {
    EXPECT_NE(out.find("JOB"), std::string::npos) << out;
    EXPECT_NE(out.find("P95"), std::string::npos) << out;
    EXPECT_NE(out.find("(all)"), std::string::npos) << out;
    EXPECT_NE(out.find("start of the first whole hour"), std::string::npos) << out;
    EXPECT_NE(out.find("\nbuild"), std::string::npos) << out;
    EXPECT_NE(out.find("bucket-resolution estimates"), std::string::npos) << out;
  }
  EXPECT_NE(utf8.find("█"), std::string::npos) << utf8;  // the fullest bucket
  EXPECT_EQ(ascii.find("█"), std::string::npos) << ascii;
  EXPECT_NE(ascii.find("@"), std::string::npos) << ascii;
  for (unsigned char c : ascii) EXPECT_LT(c, 0x80) << ascii;
}

}  // namespace
}  // namespace wtd
