// `wtctl stats` against a live daemon and against none: a job that succeeds
// and one that fails, over a few commits; every figure checked against the
// runs `wtctl runs` lists; the human table with its histogram lines, in
// UTF-8 and in ASCII.
#include <algorithm>
#include <map>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class StatsTest : public IntegrationTest {};

// The entry of `job` in a stats result (fails the test when absent).
json JobOf(const json& stats, const std::string& job) {
  for (const json& j : stats["jobs"]) {
    if (j["job"] == job) return j;
  }
  ADD_FAILURE() << "no entry for " << job << " in " << stats.dump();
  return json::object();
}

// Checks one job's entry against the full rows of `wtctl runs`.
void ExpectJobMatchesRuns(const json& j, const json& runs, const std::string& job,
                          const std::string& repo) {
  SCOPED_TRACE(job);
  uint64_t n = 0, ok = 0, failed = 0, attempts = 0, timed = 0;
  int64_t sum = 0, max = -1;
  std::vector<std::pair<std::string, uint64_t>> failing;  // (finished_at, id)
  for (const json& r : runs) {
    if (r["job"] != job) continue;
    ++n;
    attempts += r["attempt"].get<uint64_t>();
    if (r["state"] == "succeeded") ++ok;
    if (r["state"] == "failed") {
      ++failed;
      failing.emplace_back(r["finished_at"].get<std::string>(), r["id"].get<uint64_t>());
    }
    if (!r["duration_ms"].is_null()) {
      ++timed;
      sum += r["duration_ms"].get<int64_t>();
      max = std::max(max, r["duration_ms"].get<int64_t>());
    }
  }
  ASSERT_GT(n, 0u);
  EXPECT_EQ(j["repo"], repo);
  EXPECT_FALSE(j.contains("worktree"));
  EXPECT_EQ(j["runs"], n);
  EXPECT_EQ(j["succeeded"], ok);
  EXPECT_EQ(j["failed"], failed);
  EXPECT_EQ(j["timed_out"], 0);
  EXPECT_EQ(j["cancelled"], 0);
  EXPECT_EQ(j["skipped"], 0);
  EXPECT_DOUBLE_EQ(j["success_rate"].get<double>(), static_cast<double>(ok) / n);
  if (ok == 0) {
    EXPECT_TRUE(j["attempts_per_success"].is_null());
  } else {
    EXPECT_DOUBLE_EQ(j["attempts_per_success"].get<double>(), static_cast<double>(attempts) / ok);
  }
  EXPECT_EQ(j["lock_waits"], 0);
  EXPECT_EQ(j["duration_ms"]["max"], max);
  EXPECT_DOUBLE_EQ(j["duration_ms"]["mean"].get<double>(), static_cast<double>(sum) / timed);
  for (const char* p : {"p50", "p95", "p99"}) {
    EXPECT_LE(j["duration_ms"][p].get<int64_t>(), max) << p;
  }
  uint64_t in_histogram = 0;
  for (const json& b : j["histogram"]) in_histogram += b["count"].get<uint64_t>();
  EXPECT_EQ(in_histogram, timed);
  EXPECT_TRUE(j["histogram"].back()["le_ms"].is_null());
  ASSERT_FALSE(j["slowest"].empty());
  EXPECT_EQ(j["slowest"][0]["duration_ms"], max);
  // Newest end first (RFC 3339 UTC sorts as text), then the higher id.
  std::sort(failing.rbegin(), failing.rend());
  std::vector<uint64_t> newest;
  for (size_t i = 0; i < failing.size() && i < 5; ++i) newest.push_back(failing[i].second);
  std::vector<uint64_t> reported;
  for (const json& f : j["recent_failures"]) {
    reported.push_back(f["id"].get<uint64_t>());
    EXPECT_EQ(f["state"], "failed");
    EXPECT_EQ(f["at"].get<std::string>().back(), 'Z');
  }
  EXPECT_EQ(reported, newest);
}

TEST_F(StatsTest, FiguresMatchTheRunsWithTheDaemonUpAndDown) {
  repo_.CommitJob("ok", "run = true\n");
  repo_.CommitJob("bad", "run = exit 1\n");
  repo_.Commit("a", "a", "third");
  repo_.Commit("b", "b", "fourth");
  std::vector<std::string> shas = repo_.RevList();
  DaemonProcess* d = StartReady();
  // "bad" exists from the second commit on.
  std::vector<std::string> with_bad(shas.begin(), shas.end() - 1);
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "ok"));
  ASSERT_NO_FATAL_FAILURE(WaitSettled(with_bad, "bad"));

  CommandResult runs = Wtctl({"--json", "runs", "--limit", "0"});
  ASSERT_EQ(runs.exit_code, 0) << runs.Describe();
  json all = json::parse(runs.out);

  CommandResult live = Wtctl({"--json", "stats"});
  ASSERT_EQ(live.exit_code, 0) << live.Describe();
  json up = json::parse(live.out);
  EXPECT_EQ(up["source"], "daemon");
  ASSERT_EQ(up["jobs"].size(), 2u) << up.dump();
  EXPECT_EQ(up["jobs"][0]["job"], "bad");  // by repo, then job
  ExpectJobMatchesRuns(JobOf(up, "ok"), all, "ok", repo_.dir());
  ExpectJobMatchesRuns(JobOf(up, "bad"), all, "bad", repo_.dir());
  EXPECT_EQ(JobOf(up, "ok")["succeeded"], shas.size());
  EXPECT_EQ(JobOf(up, "bad")["failed"], with_bad.size());
  EXPECT_EQ(up["overall"]["runs"], shas.size() + with_bad.size());
  EXPECT_EQ(up["overall"]["succeeded"], shas.size());
  EXPECT_EQ(up["overall"]["failed"], with_bad.size());
  // The window starts at a whole hour at most a day back.
  std::string since = up["since"];
  EXPECT_EQ(since.substr(13), ":00:00.000Z") << since;

  // Filters.
  CommandResult one = Wtctl({"--json", "stats", "--job", "ok", "--worktree", "main"});
  ASSERT_EQ(one.exit_code, 0) << one.Describe();
  json ok_only = json::parse(one.out);
  ASSERT_EQ(ok_only["jobs"].size(), 1u);
  EXPECT_EQ(ok_only["jobs"][0]["worktree"], "main");
  EXPECT_EQ(ok_only["overall"]["runs"], shas.size());
  CommandResult other = Wtctl({"--json", "stats", "--repo", "/nowhere"});
  ASSERT_EQ(other.exit_code, 0) << other.Describe();
  EXPECT_EQ(json::parse(other.out)["overall"]["runs"], 0);
  CommandResult bad_since = Wtctl({"stats", "--since", "fortnight"});
  EXPECT_EQ(bad_since.exit_code, 2) << bad_since.Describe();
  EXPECT_NE(bad_since.err.find("--since"), std::string::npos) << bad_since.Describe();

  StopDaemon(d);
  CommandResult direct = Wtctl({"--json", "stats"});
  ASSERT_EQ(direct.exit_code, 0) << direct.Describe();
  EXPECT_NE(direct.err.find("reading the state store"), std::string::npos) << direct.Describe();
  json down = json::parse(direct.out);
  EXPECT_EQ(down["source"], "store");
  // Field by field the same, but for where it came from and when.
  for (json* j : {&up, &down}) {
    j->erase("source");
    j->erase("until");
    j->erase("since");  // may move on by an hour between the two calls
  }
  EXPECT_EQ(down, up);

  CommandResult human = Wtctl({"stats"});
  ASSERT_EQ(human.exit_code, 0) << human.Describe();
  EXPECT_NE(human.out.find("read from the state store directly"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("JOB"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("P95"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("(all)"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("\nbad "), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("bucket-resolution"), std::string::npos) << human.out;

  std::vector<std::string> argv = {WTCTL_BIN, "--state-dir", state_dir_, "stats"};
  CommandResult utf8 = RunCommand(argv, {"LC_ALL=C.UTF-8"});
  ASSERT_EQ(utf8.exit_code, 0) << utf8.Describe();
  EXPECT_NE(utf8.out.find("█"), std::string::npos) << utf8.out;
  argv.push_back("--ascii");
  CommandResult ascii = RunCommand(argv, {"LC_ALL=C.UTF-8"});
  ASSERT_EQ(ascii.exit_code, 0) << ascii.Describe();
  EXPECT_EQ(ascii.out.find("█"), std::string::npos) << ascii.out;
  EXPECT_NE(ascii.out.find("@"), std::string::npos) << ascii.out;  // the fullest bucket
  for (unsigned char c : ascii.out) ASSERT_LT(c, 0x80) << ascii.out;
}

}  // namespace
}  // namespace wtd::itest
