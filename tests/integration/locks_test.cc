// wtctl locks and recover with the real binaries, daemon up and down: a
// planted unreadable lock ref and one of a dead pid on this host.
#include <unistd.h>

#include <fstream>

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
  // An owner on this host and boot whose daemon pid does not exist.
  static std::string DeadOwner() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string boot = ReadFileOr("/proc/sys/kernel/random/boot_id");
    while (!boot.empty() && boot.back() == '\n') boot.pop_back();
    json o = {{"version", 1},        {"host", host},
              {"boot_id", boot},     {"pid", 4194000},
              {"pid_start_time", 1}, {"incarnation", 1},
              {"run_id", 1},         {"token", 1},
              {"acquired_at_ms", 1}, {"expires_at_ms", 4'000'000'000'000}};
    return o.dump() + "\n";
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

}  // namespace
}  // namespace wtd::itest
