// `locks` and `recover` against a real store and a real repository made with
// the git CLI, with lock refs planted through LockRefs (and one by
// `git update-ref` for a garbage blob); the process table and clock are fakes.
#include <gtest/gtest.h>

#include "commands/command.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "locks/lock_refs.h"
#include "locks/locks_fixture.h"

namespace wtd {
namespace {

using locks::LockName;
using locks::LockOwner;

constexpr int64_t kNow = 1'700'000'030'000;  // inside Owner()'s [acquired, expires]

class LocksCommandTest : public locks::LocksFixture {
 protected:
  void SetUp() override {
    LocksFixture::SetUp();
    clock_.SetMs(kNow);
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{Path("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
    ASSERT_TRUE(runs_->RecordWatchedRepos(WatchedRepos{{repo_}}).ok());
    ctx_.runs = runs_.get();
    ctx_.processes = &procs_;
    ctx_.locks.host = "ci-1";
    procs_.Start(4242, 1000);  // Owner()'s daemon, alive
  }

  std::string Plant(const std::string& job, const LockOwner& o) {
    Result<std::string> blob = refs_->Create(Name(job), o);
    EXPECT_TRUE(blob.ok()) << blob.status().ToString();
    return blob.ok() ? *blob : "";
  }

  // A blob that is not an owner, written with the git CLI.
  std::string Garbage(const std::string& text) {
    std::string file = Path("garbage-blob");
    FILE* f = fopen(file.c_str(), "w");
    fputs(text.c_str(), f);
    fclose(f);
    std::string id = Git(repo_, {"hash-object", "-w", file});
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }

  json Call(const char* command, const json& args) {
    Result<json> r = FindCommand(command)->handle(ctx_, args);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json();
  }

  json LockNamed(const json& result, const std::string& job) {
    for (const json& l : result["locks"]) {
      if (l["name"] == Name(job).ToString()) return l;
    }
    ADD_FAILURE() << "no lock for " << job << " in " << result.dump();
    return json();
  }

  FakeClock clock_;
  FakeProcessTable procs_{"boot-A"};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  CommandContext ctx_;
};

TEST_F(LocksCommandTest, ListsEveryRefWithItsVerdictFieldByField) {
  std::string live = Plant("live", Owner(1));
  Plant("gone", Owner(2, /*pid=*/9999));
  LockOwner reused = Owner(3, 4343);
  procs_.Start(4343, 5);  // another start time
  Plant("reused", reused);
  LockOwner other_boot = Owner(4);
  other_boot.boot_id = "boot-OLD";
  Plant("oldboot", other_boot);
  LockOwner far = Owner(5);
  far.host = "ci-2";
  Plant("far", far);
  Git(repo_, {"update-ref", RefOf(Name("garbage")), Garbage("not json\n")});

  json r = Call("locks", {{"action", "list"}});
  ASSERT_EQ(r["locks"].size(), 6u) << r.dump(2);
  json l = LockNamed(r, "live");
  EXPECT_EQ(l["ref"], RefOf(Name("live")));
  EXPECT_EQ(l["repo"], repo_);
  EXPECT_EQ(l["blob"], live);
  EXPECT_EQ(l["owner"]["host"], "ci-1");
  EXPECT_EQ(l["owner"]["pid"], 4242);
  EXPECT_EQ(l["owner"]["run_id"], 101);
  EXPECT_EQ(l["token"], 1);
  EXPECT_EQ(l["acquired_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(l["expires_at"], "2023-11-14T22:14:20.000Z");
  EXPECT_EQ(l["age_ms"], 30'000);
  EXPECT_EQ(l["stale"], false);
  EXPECT_EQ(l["reason"], "held");
  EXPECT_EQ(l["foreign"], true) << "no lease of this store";
  EXPECT_EQ(LockNamed(r, "gone")["reason"], "pid gone");
  EXPECT_EQ(LockNamed(r, "gone")["stale"], true);
  EXPECT_EQ(LockNamed(r, "reused")["reason"], "pid reused");
  EXPECT_EQ(LockNamed(r, "oldboot")["reason"], "other boot");
  EXPECT_EQ(LockNamed(r, "far")["stale"], false) << "another host before expiry + grace";
  json g = LockNamed(r, "garbage");
  EXPECT_EQ(g["reason"], "unreadable");
  EXPECT_EQ(g["stale"], false);
  EXPECT_TRUE(g["owner"].is_null());

  clock_.SetMs(far.expires_at_ms + 60'001);
  json later = Call("locks", {{"action", "list"}, {"stale", true}});
  json f = LockNamed(later, "far");
  EXPECT_EQ(f["reason"], "expired");
  EXPECT_EQ(f["stale"], true);
  for (const json& s : later["locks"]) EXPECT_TRUE(s["stale"].get<bool>()) << s.dump();
}

TEST_F(LocksCommandTest, ReapDeletesOnlyTheStaleAndDryRunNothing) {
  Plant("live", Owner(1));
  Plant("gone", Owner(2, 9999));
  Git(repo_, {"update-ref", RefOf(Name("garbage")), Garbage("{\n")});
  json dry = Call("locks", {{"action", "reap"}, {"dry_run", true}});
  ASSERT_EQ(dry["reaped"].size(), 1u) << dry.dump(2);
  EXPECT_NE(CliTarget(RefOf(Name("gone"))), "");
  json done = Call("locks", {{"action", "reap"}});
  ASSERT_EQ(done["reaped"].size(), 1u) << done.dump(2);
  EXPECT_EQ(done["reaped"][0]["name"], Name("gone").ToString());
  EXPECT_EQ(done["reaped"][0]["reason"], "pid gone");
  EXPECT_EQ(CliTarget(RefOf(Name("gone"))), "");
  EXPECT_NE(CliTarget(RefOf(Name("live"))), "");
  EXPECT_NE(CliTarget(RefOf(Name("garbage"))), "") << "unreadable is never reaped";
  // The write-ahead record is there.
  int records = 0;
  ASSERT_TRUE(store_
                  ->Scan(Family::kMeta, "lock_reap/",
                         [&](std::string_view, std::string_view v) {
                           ++records;
                           EXPECT_NE(std::string(v).find("pid gone"), std::string::npos);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(records, 1);
}

TEST_F(LocksCommandTest, ForcedReleaseFreesAnUnreadableLockAndNeedsForce) {
  Git(repo_, {"update-ref", RefOf(Name("garbage")), Garbage("garbage\n")});
  const CommandDef& def = *FindCommand("locks");
  CliArgs a;
  a.positional = {"release", Name("garbage").ToString()};
  EXPECT_TRUE(def.request(a).status().IsInvalidArgument()) << "without --force";
  a.flags["force"] = "1";
  Result<json> req = def.request(a);
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_TRUE((*req)["by"]["pid"].is_number_integer());
  json r = Call("locks", *req);
  ASSERT_EQ(r["released"].size(), 1u) << r.dump(2);
  EXPECT_NE(r["released"][0]["by"].get<std::string>().find("pid "), std::string::npos);
  EXPECT_EQ(CliTarget(RefOf(Name("garbage"))), "");
  Result<json> again = def.handle(ctx_, *req);
  EXPECT_TRUE(again.status().IsNotFound()) << again.status().ToString();
}

TEST_F(LocksCommandTest, ANameInTwoRepositoriesIsReleasedOnlyWithRepo) {
  // The same commit (a clone) and lock name in a second watched repository.
  std::string other = Path("other");
  Git(repo_, {"clone", "-q", repo_, other});
  ASSERT_TRUE(runs_->RecordWatchedRepos(WatchedRepos{{repo_, other}}).ok());
  Plant("build", Owner(1));
  Result<std::unique_ptr<locks::LockRefs>> theirs = locks::LockRefs::Open(other);
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  ASSERT_TRUE((*theirs)->Create(Name("build"), Owner(2)).ok());
  json args = {{"action", "release"}, {"name", Name("build").ToString()}, {"force", true}};
  Result<json> both = FindCommand("locks")->handle(ctx_, args);
  ASSERT_TRUE(both.status().IsInvalidArgument()) << both.status().ToString();
  EXPECT_NE(both.status().message().find(other), std::string::npos) << both.status().message();
  EXPECT_NE(CliTarget(RefOf(Name("build"))), "") << "nothing released";

  args["repo"] = other;
  json r = Call("locks", args);
  ASSERT_EQ(r["released"].size(), 1u) << r.dump(2);
  EXPECT_EQ(r["released"][0]["repo"], other);
  EXPECT_NE(CliTarget(RefOf(Name("build"))), "") << "the first repository's lock stays";
  EXPECT_TRUE((*theirs)->Read(Name("build")).status().IsNotFound());
}

TEST_F(LocksCommandTest, RecoverDryRunChangesNothingThenRecoverReaps) {
  Plant("gone", Owner(2, 9999));
  uint64_t commits = store_->commits();
  json dry = Call("recover", {{"dry_run", true}});
  EXPECT_EQ(dry["dry_run"], true);
  ASSERT_EQ(dry["actions"].size(), 1u) << dry.dump(2);
  EXPECT_EQ(dry["actions"][0]["kind"], "reap_lock");
  EXPECT_EQ(dry["actions"][0]["lock"], Name("gone").ToString());
  EXPECT_EQ(store_->commits(), commits);
  EXPECT_NE(CliTarget(RefOf(Name("gone"))), "");
  json done = Call("recover", {{"dry_run", false}});
  ASSERT_EQ(done["actions"].size(), 1u) << done.dump(2);
  EXPECT_EQ(done["actions"][0]["kind"], "reap_lock");
  EXPECT_EQ(CliTarget(RefOf(Name("gone"))), "");
  EXPECT_TRUE(Call("recover", {{"dry_run", true}})["actions"].empty());
}

}  // namespace
}  // namespace wtd
