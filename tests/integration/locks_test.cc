// Lock refs with the real binaries: a ref planted by hand for a live owner
// blocks its run until the owner exits, one of a dead pid is reaped (also
// across a crash right after the reap record), an unreadable one blocks until
// `wtctl locks release --force`; and wtctl locks and recover, daemon up and
// down.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "base/crash_point.h"
#include "base/process_table.h"
#include "integration/fixture.h"

namespace wtd::itest {
namespace {

class LocksTest : public IntegrationTest {
 protected:
  // A blob written with the git CLI, and a ref under the locks root to it.
  std::string Plant(const std::string& job, const std::string& blob_text) {
    std::string file = dir_.Sub("blob-" + job);
    WriteFileOrDie(file, blob_text);
    std::string blob = repo_.Git({"hash-object", "-w", file});
    std::string name = "main/" + job + "/" + repo_.Head();
    repo_.Git({"update-ref", "refs/wtd/locks/" + name, blob});
    return name;
  }
  // An owner on this host and boot with daemon `pid` started at
  // `start_time`, expiring long after the test.
  static std::string Owner(int64_t pid, uint64_t start_time) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    json o = {{"version", 1},
              {"host", host},
              {"boot_id", SystemProcessTable()->BootId()},
              {"pid", pid},
              {"pid_start_time", start_time},
              {"incarnation", 1},
              {"run_id", 1},
              {"token", 1},
              {"acquired_at_ms", 1},
              {"expires_at_ms", 4'000'000'000'000}};
    return o.dump() + "\n";
  }
  // An owner whose daemon pid does not exist.
  static std::string DeadOwner() { return Owner(4194000, 1); }

  // The run of job `job` for `sha`, once it exists and satisfies `ok`.
  bool RunOf(const std::string& job, const std::string& sha,
             const std::function<bool(const RunRow&)>& ok, RunRow* out = nullptr) {
    std::optional<std::vector<RunRow>> runs = TryRuns();
    if (!runs) return false;
    for (const RunRow& r : *runs) {
      if (r.job == job && r.sha == sha && ok(r)) {
        if (out) *out = r;
        return true;
      }
    }
    return false;
  }
  // Waits until the run of (job, sha) has met a held lock: retry_wait with
  // "lock held by" in its error. Then a few more ticks: it stays so.
  void ExpectBlocked(const std::string& job, const std::string& sha) {
    RunRow seen;
    auto blocked = [](const RunRow& r) {
      return r.state == "retry_wait" && r.error.find("lock held by") != std::string::npos &&
             r.attempt == 0;
    };
    ASSERT_TRUE(WaitFor([&] { return RunOf(job, sha, blocked, &seen); }, ScaledMs(60000)))
        << "the run never waited for the lock; " << RunsToString(Runs());
    ASSERT_NO_FATAL_FAILURE(WaitQuietTicks(5, /*idle=*/false));
    EXPECT_TRUE(RunOf(job, sha, blocked)) << RunsToString(Runs());
    for (const std::string& line : Effects()) EXPECT_NE(line, sha) << "the blocked job ran";
  }
  // Expects the effect of each sha exactly once, and the locks released.
  void ExpectRanOnceEach(const std::vector<std::string>& shas) {
    ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
    ExpectExactlyOnce(Runs(), shas, "effect");
    std::vector<std::string> effects = Effects();
    for (const std::string& sha : shas)
      EXPECT_EQ(std::count(effects.begin(), effects.end(), sha), 1) << Short(sha);
    ExpectLocksReleased(state_dir_, shas, "effect");
  }
  json LocksJson() {
    CommandResult r = Wtctl({"--json", "locks"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return json::parse(r.out, nullptr, false);
  }
  static json Find(const json& locks, const std::string& name) {
    for (const json& l : locks["locks"]) {
      if (l["name"] == name) return l;
    }
    return json();
  }
};

TEST_F(LocksTest, ListedUpAndDownRecoverPlansThenReapsAndForceFreesTheUnreadable) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitSettled(repo_.RevList(), "effect"));
  std::string garbage = Plant("garbage", "not an owner\n");
  std::string dead = Plant("dead", DeadOwner());

  json up = LocksJson();
  json g = Find(up, garbage);
  ASSERT_TRUE(g.is_object()) << up.dump(2);
  EXPECT_EQ(g["reason"], "unreadable");
  EXPECT_EQ(g["stale"], false);
  EXPECT_EQ(g["foreign"], true);
  EXPECT_EQ(Find(up, dead)["reason"], "pid gone") << up.dump(2);
  StopDaemon(d);

  json down = LocksJson();
  EXPECT_EQ(Find(down, garbage)["reason"], "unreadable") << down.dump(2);
  EXPECT_EQ(Find(down, dead)["stale"], true) << down.dump(2);

  std::string refs_before = repo_.Git({"for-each-ref"});
  std::string runs_before = Wtctl({"--json", "runs", "--limit", "0"}).out;
  CommandResult plan = Wtctl({"--json", "recover", "--dry-run"});
  ASSERT_EQ(plan.exit_code, 0) << plan.Describe();
  json p = json::parse(plan.out);
  EXPECT_EQ(p["dry_run"], true);
  ASSERT_EQ(p["actions"].size(), 1u) << p.dump(2);
  EXPECT_EQ(p["actions"][0]["kind"], "reap_lock");
  EXPECT_EQ(p["actions"][0]["lock"], dead);
  EXPECT_EQ(repo_.Git({"for-each-ref"}), refs_before);
  EXPECT_EQ(Wtctl({"--json", "runs", "--limit", "0"}).out, runs_before);

  CommandResult apply = Wtctl({"--json", "recover"});
  ASSERT_EQ(apply.exit_code, 0) << apply.Describe();
  json a = json::parse(apply.out);
  ASSERT_EQ(a["actions"].size(), 1u) << a.dump(2);
  EXPECT_EQ(a["actions"][0]["kind"], "reap_lock");
  EXPECT_EQ(repo_.Git({"for-each-ref", "refs/wtd/locks/" + dead}), "");
  EXPECT_NE(repo_.Git({"for-each-ref", "refs/wtd/locks/" + garbage}), "");

  EXPECT_EQ(Wtctl({"locks", "release", garbage}).exit_code, 2) << "refused without --force";
  CommandResult freed = Wtctl({"locks", "release", garbage, "--force"});
  ASSERT_EQ(freed.exit_code, 0) << freed.Describe();
  EXPECT_EQ(repo_.Git({"for-each-ref", "refs/wtd/locks"}), "");
  EXPECT_TRUE(LocksJson()["locks"].empty());
}

TEST_F(LocksTest, ALiveOwnersLockBlocksTheRunUntilTheOwnerExitsThenItRunsOnce) {
  repo_.CommitJob("effect", EffectJob());
  repo_.Commit("a.txt", "a", "second");
  pid_t owner = fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    execlp("sleep", "sleep", "600", static_cast<char*>(nullptr));
    _exit(127);
  }
  Result<uint64_t> started = Result<uint64_t>(Status::NotFound(""));
  ASSERT_TRUE(WaitFor(
      [&] {
        started = SystemProcessTable()->StartTime(owner);
        return started.ok();
      },
      ScaledMs(10000)));
  std::string head = repo_.Head();
  Plant("effect", Owner(owner, *started));
  StartReady({"--lease-ttl-s", "3"});
  ASSERT_NO_FATAL_FAILURE(ExpectBlocked("effect", head));
  CommandResult listed = Wtctl({"--json", "locks"});
  json l = Find(json::parse(listed.out), "main/effect/" + head);
  EXPECT_EQ(l["stale"], false) << listed.out;
  EXPECT_EQ(l["foreign"], true) << listed.out;
  // The contention is counted for the job, in status and locks.
  std::optional<json> st = Status();
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ((*st)["lock_waits"].size(), 1u) << st->dump(2);
  EXPECT_EQ((*st)["lock_waits"][0]["job"], "effect");
  EXPECT_GE((*st)["lock_waits"][0]["count"].get<int>(), 1);
  EXPECT_EQ(json::parse(listed.out)["lock_waits"].size(), 1u) << listed.out;

  kill(owner, SIGKILL);
  ASSERT_EQ(waitpid(owner, nullptr, 0), owner);
  ASSERT_NO_FATAL_FAILURE(ExpectRanOnceEach(repo_.RevList()));
}

TEST_F(LocksTest, ADeadOwnersLockIsReapedWriteAheadAlsoAcrossACrashAndTheRunHappens) {
  // One commit, so no other job is running (and run again) at the crash.
  repo_.CommitJob("effect", EffectJob());
  Plant("effect", DeadOwner());
  DaemonProcess* d = StartDaemon({}, {"WTD_CRASH_AT=after_reap_record"});
  std::optional<int> code = d->WaitExit(ScaledMs(60000));
  ASSERT_TRUE(code.has_value()) << "wtd did not reach after_reap_record";
  ASSERT_EQ(*code, kCrashExitCode);
  // The reap record is committed; the ref is still there, still stale.
  EXPECT_NE(repo_.Git({"for-each-ref", "refs/wtd/locks/main/effect"}), "");

  DaemonProcess* again = StartReady();
  ASSERT_NO_FATAL_FAILURE(ExpectRanOnceEach(repo_.RevList()));
  EXPECT_NE(again->Log().find("reaping stale lock"), std::string::npos) << again->Log();
  EXPECT_NE(again->Log().find("pid gone"), std::string::npos) << again->Log();
}

TEST_F(LocksTest, AnUnreadableLockBlocksTheRunUntilReleasedByHand) {
  repo_.CommitJob("effect", EffectJob());
  std::string head = repo_.Head();
  std::string name = Plant("effect", "{\"version\": 1, \"host\": tru\n");
  StartReady({"--lease-ttl-s", "3"});
  ASSERT_NO_FATAL_FAILURE(ExpectBlocked("effect", head));
  CommandResult reap = Wtctl({"locks", "reap"});
  EXPECT_EQ(reap.exit_code, 0) << reap.Describe();
  EXPECT_NE(repo_.Git({"for-each-ref", "refs/wtd/locks/" + name}), "") << "reaped: " << reap.out;

  CommandResult freed = Wtctl({"locks", "release", name, "--force"});
  ASSERT_EQ(freed.exit_code, 0) << freed.Describe();
  ASSERT_NO_FATAL_FAILURE(ExpectRanOnceEach(repo_.RevList()));
}

TEST_F(LocksTest, RecoverWithTheDaemonDownPlansThenFinishesARunWithItsReceipt) {
  repo_.CommitJob("effect", EffectJob());
  std::vector<std::string> shas = repo_.RevList();
  // Dies with the outcome committed as finishing: no receipt, the lock held.
  DaemonProcess* d = StartDaemon({}, {"WTD_CRASH_AT=after_finishing_commit"});
  std::optional<int> code = d->WaitExit(ScaledMs(60000));
  ASSERT_TRUE(code.has_value()) << "wtd did not reach after_finishing_commit";
  ASSERT_EQ(*code, kCrashExitCode);
  ASSERT_TRUE(Receipts(shas[0], "effect").empty());
  std::string refs_before = repo_.Git({"for-each-ref"});
  ASSERT_NE(refs_before.find("refs/wtd/locks/main/effect/"), std::string::npos) << refs_before;
  std::string runs_before = Wtctl({"--json", "runs", "--limit", "0"}).out;

  CommandResult plan = Wtctl({"--json", "recover", "--dry-run"});
  ASSERT_EQ(plan.exit_code, 0) << plan.Describe();
  json p = json::parse(plan.out);
  EXPECT_EQ(p["dry_run"], true);
  // The run's worktree is still recorded busy: the pass frees it.
  ASSERT_EQ(p["actions"].size(), 3u) << p.dump(2);
  EXPECT_EQ(p["actions"][0]["kind"], "finish_release");
  EXPECT_EQ(p["actions"][0]["to"], "succeeded");
  EXPECT_EQ(p["actions"][1]["kind"], "drop_lease");
  EXPECT_EQ(p["actions"][2]["kind"], "release_slot");
  EXPECT_EQ(repo_.Git({"for-each-ref"}), refs_before);
  EXPECT_EQ(Wtctl({"--json", "runs", "--limit", "0"}).out, runs_before);
  EXPECT_TRUE(Receipts(shas[0], "effect").empty());

  CommandResult apply = Wtctl({"--json", "recover"});
  ASSERT_EQ(apply.exit_code, 0) << apply.Describe();
  json a = json::parse(apply.out);
  EXPECT_EQ(a["dry_run"], false);
  EXPECT_TRUE(a["errors"].empty()) << a.dump(2);
  ASSERT_EQ(a["actions"].size(), 3u) << a.dump(2);
  EXPECT_EQ(a["actions"][0]["kind"], "finish_release");
  EXPECT_EQ(a["actions"][1]["kind"], "drop_lease");
  EXPECT_EQ(a["actions"][2]["kind"], "release_slot");
  ExpectExactlyOnce(Runs(), shas, "effect");
  ExpectLocksReleased(state_dir_, shas, "effect");
  // A second pass finds nothing left; the daemon then runs nothing again.
  CommandResult again = Wtctl({"--json", "recover"});
  EXPECT_TRUE(json::parse(again.out)["actions"].empty()) << again.out;
  StartReady();
  ASSERT_NO_FATAL_FAILURE(WaitQuietTicks());
  ExpectExactlyOnce(Runs(), shas, "effect");
  EXPECT_EQ(Effects().size(), 1u);
}

}  // namespace
}  // namespace wtd::itest
