// IdemStore over a real RocksDB store in a temp dir, with a fake clock and a
// fake process table: every status against every kind of owner, the
// transitions and their refusals, backoff, blocking, retention and reopening.
#include "idem/idem_store.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "base/sha256.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "fakes/temp_dir.h"

namespace wtd {
namespace {

using D = IdemDecision;
using St = IdemStatus;

constexpr char kOp[] = "worktree_add";
constexpr char kParams[] = R"({"name":"slot-1","repo":"/srv/r"})";
constexpr char kPayload[] = R"({"path":"/state/worktrees/slot-1"})";

// The kinds of owner an in_progress record can have, as this daemon sees it.
enum class OwnerKind { kSelf, kLiveOther, kPidGone, kPidReused, kOtherBoot, kOtherHost };

const char* OwnerKindName(OwnerKind k) {
  switch (k) {
    case OwnerKind::kSelf:
      return "self";
    case OwnerKind::kLiveOther:
      return "live other";
    case OwnerKind::kPidGone:
      return "pid gone";
    case OwnerKind::kPidReused:
      return "pid reused";
    case OwnerKind::kOtherBoot:
      return "other boot";
    case OwnerKind::kOtherHost:
      return "other host";
  }
  return "?";
}

constexpr OwnerKind kAllOwners[] = {OwnerKind::kSelf,      OwnerKind::kLiveOther,
                                    OwnerKind::kPidGone,   OwnerKind::kPidReused,
                                    OwnerKind::kOtherBoot, OwnerKind::kOtherHost};

class IdemStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    procs_.Start(100, 1000);  // this daemon
    procs_.Start(200, 2000);  // another live process of this host
    procs_.Start(400, 4444);  // pid 400 reused: the owner recorded start 4000
    Open();
  }

  void Open(IdemOptions options = IdemOptions()) {
    idem_.reset();
    store_.reset();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    me_ = IdemOwner{"host-a", "boot-A", 100, 1000, store_->incarnation()};
    idem_ = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, me_, options);
  }

  IdemOwner Owner(OwnerKind k) const {
    uint64_t inc = me_.incarnation;
    switch (k) {
      case OwnerKind::kSelf:
        return me_;
      case OwnerKind::kLiveOther:
        return IdemOwner{"host-a", "boot-A", 200, 2000, inc};
      case OwnerKind::kPidGone:
        return IdemOwner{"host-a", "boot-A", 300, 3000, inc - 1};
      case OwnerKind::kPidReused:
        return IdemOwner{"host-a", "boot-A", 400, 4000, inc - 1};
      case OwnerKind::kOtherBoot:
        // The same pid and start time as this daemon, of an earlier boot.
        return IdemOwner{"host-a", "boot-Z", 100, 1000, inc - 1};
      case OwnerKind::kOtherHost:
        return IdemOwner{"host-b", "boot-B", 300, 3000, 7};
    }
    return me_;
  }

  // Writes a record as another daemon would have left it.
  std::string Plant(St status, const IdemOwner& owner, uint32_t attempts = 1) {
    IdemRecord r;
    r.op = kOp;
    r.params = kParams;
    r.status = status;
    r.attempts = attempts;
    r.first_at_ms = clock_.NowMs() - 10'000;
    r.last_at_ms = clock_.NowMs() - 5'000;
    r.rollback_payload = kPayload;
    r.owner = owner;
    if (status == St::kCompleted) r.result = "made";
    if (status == St::kFailed) {
      r.error = "checkout failed";
      r.next_retry_at_ms = clock_.NowMs() + 1'000;
    }
    if (status == St::kBlocked) r.error = "gave up";
    std::string key = IdemKey(kOp, kParams);
    WriteBatch b;
    b.Put(Family::kIdem, key, EncodeIdem(r));
    EXPECT_TRUE(store_->Commit(b).ok());
    return key;
  }

  IdemRecord Stored(const std::string& key) {
    Result<IdemRecord> r = idem_->Get(key);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IdemRecord();
  }

  IdemBegin MustBegin(std::string_view payload = kPayload) {
    Result<IdemBegin> b = idem_->Begin(kOp, kParams, payload);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? *b : IdemBegin();
  }

  TempDir dir_;
  FakeClock clock_;
  FakeProcessTable procs_{"boot-A"};
  IdemOwner me_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<IdemStore> idem_;
};

TEST(IdemKeyTest, IsTheSha256OfOpNulParams) {
  EXPECT_EQ(IdemKey("op", "p"), Sha256Hex(std::string("op\0p", 4)));
  EXPECT_NE(IdemKey("ab", "c"), IdemKey("a", "bc"));
  EXPECT_EQ(IdemKey("op", "").size(), 64u);
}

TEST(IdemBackoffTest, DoublesFromTheBaseUpToTheCap) {
  IdemOptions o{10, 1'000, 5'000};
  EXPECT_EQ(IdemBackoffMs(o, 1), 1'000);
  EXPECT_EQ(IdemBackoffMs(o, 2), 2'000);
  EXPECT_EQ(IdemBackoffMs(o, 3), 4'000);
  EXPECT_EQ(IdemBackoffMs(o, 4), 5'000);
  EXPECT_EQ(IdemBackoffMs(o, 40), 5'000);
  IdemOptions defaults;
  EXPECT_EQ(IdemBackoffMs(defaults, 9), 256'000);
  EXPECT_EQ(IdemBackoffMs(defaults, 10), 300'000);
  EXPECT_EQ(IdemBackoffMs(defaults, 4'000'000'000u), 300'000);
  IdemOptions huge{10, 1, INT64_MAX};
  EXPECT_EQ(IdemBackoffMs(huge, 63), int64_t{1} << 62);
  EXPECT_EQ(IdemBackoffMs(huge, 64), INT64_MAX);  // no overflow
}

TEST_F(IdemStoreTest, BeginWithoutARecordRecordsInProgressOwnedByThisDaemon) {
  uint64_t commits = store_->commits();
  IdemBegin b = MustBegin();
  EXPECT_EQ(b.decision, D::kProceed);
  EXPECT_EQ(b.key, IdemKey(kOp, kParams));
  EXPECT_EQ(store_->commits(), commits + 1);
  IdemRecord r = Stored(b.key);
  EXPECT_EQ(r, b.record);
  EXPECT_EQ(r.op, kOp);
  EXPECT_EQ(r.params, kParams);
  EXPECT_EQ(r.status, St::kInProgress);
  EXPECT_EQ(r.attempts, 1u);
  EXPECT_EQ(r.first_at_ms, clock_.NowMs());
  EXPECT_EQ(r.last_at_ms, clock_.NowMs());
  EXPECT_EQ(r.rollback_payload, kPayload);
  EXPECT_EQ(r.owner, me_);
}

// Begin against a record of every status, owned by every kind of owner:
// only in_progress looks at the owner.
TEST_F(IdemStoreTest, EveryStatusAgainstEveryOwner) {
  struct Case {
    St status;
    bool retry_due;  // failed only: the retry time has come
  };
  const Case kCases[] = {{St::kInProgress, false}, {St::kCompleted, false},  {St::kFailed, false},
                         {St::kFailed, true},      {St::kRolledBack, false}, {St::kBlocked, false}};
  for (const Case& c : kCases) {
    for (OwnerKind k : kAllOwners) {
      SCOPED_TRACE(std::string(IdemStatusName(c.status)) + (c.retry_due ? " (due)" : "") + " by " +
                   OwnerKindName(k));
      int64_t t0 = clock_.NowMs();
      std::string key = Plant(c.status, Owner(k), 2);
      if (c.retry_due) clock_.AdvanceMs(1'000);
      IdemRecord before = Stored(key);
      uint64_t commits = store_->commits();
      IdemBegin b = MustBegin("new payload");

      D want = D::kProceed;
      switch (c.status) {
        case St::kInProgress: {
          bool live =
              k == OwnerKind::kSelf || k == OwnerKind::kLiveOther || k == OwnerKind::kOtherHost;
          want = live ? D::kBusy : D::kRollBack;
          break;
        }
        case St::kCompleted:
          want = D::kDone;
          break;
        case St::kFailed:
          want = c.retry_due ? D::kProceed : D::kWait;
          break;
        case St::kRolledBack:
          want = D::kProceed;
          break;
        case St::kBlocked:
          want = D::kBlocked;
          break;
      }
      EXPECT_EQ(IdemDecisionName(b.decision), IdemDecisionName(want)) << b.detail;
      if (want == D::kProceed) {
        EXPECT_EQ(store_->commits(), commits + 1);
        IdemRecord after = Stored(key);
        EXPECT_EQ(after.status, St::kInProgress);
        EXPECT_EQ(after.attempts, 3u);
        EXPECT_EQ(after.owner, me_);
        EXPECT_EQ(after.rollback_payload, "new payload");
        EXPECT_EQ(after.first_at_ms, before.first_at_ms);
        EXPECT_EQ(after.last_at_ms, clock_.NowMs());
        EXPECT_EQ(after, b.record);
      } else {
        EXPECT_EQ(store_->commits(), commits) << "wrote for " << IdemDecisionName(b.decision);
        EXPECT_EQ(Stored(key), before);
        EXPECT_EQ(b.record, before);
      }
      if (want == D::kDone) {
        EXPECT_EQ(b.record.result, "made");
      }
      if (want == D::kBlocked) {
        EXPECT_EQ(b.detail, "gave up");
      }
      if (want == D::kWait) {
        EXPECT_EQ(b.retry_at_ms, before.next_retry_at_ms);
        EXPECT_NE(b.detail.find("checkout failed"), std::string::npos) << b.detail;
      }
      if (want == D::kBusy) {
        std::string by = "in progress by " + Owner(k).host + " pid " + std::to_string(Owner(k).pid);
        EXPECT_EQ(b.detail.rfind(by, 0), 0u) << b.detail;
      }
      if (want == D::kRollBack) {
        EXPECT_EQ(b.record.rollback_payload, kPayload);
        const char* why = k == OwnerKind::kPidGone     ? "pid 300 gone"
                          : k == OwnerKind::kPidReused ? "pid 400 reused"
                                                       : "other boot boot-Z";
        EXPECT_NE(b.detail.find(why), std::string::npos) << b.detail;
      }
      clock_.SetMs(t0 + 60'000);
    }
  }
}

TEST_F(IdemStoreTest, CompletedIsDoneWithTheCachedResultAndWritesNothing) {
  IdemBegin b = MustBegin();
  Result<IdemRecord> done = idem_->Complete(b.key, "slot-1 at /w/slot-1");
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->status, St::kCompleted);
  uint64_t commits = store_->commits();
  for (int i = 0; i < 3; ++i) {
    IdemBegin again = MustBegin();
    EXPECT_EQ(again.decision, D::kDone);
    EXPECT_EQ(again.record.result, "slot-1 at /w/slot-1");
    EXPECT_EQ(again.record.attempts, 1u);
  }
  EXPECT_EQ(store_->commits(), commits);
}

TEST_F(IdemStoreTest, DeadOwnerIsRolledBackThenRetried) {
  std::string key = Plant(St::kInProgress, Owner(OwnerKind::kPidGone));
  IdemBegin b = MustBegin("second payload");
  ASSERT_EQ(b.decision, D::kRollBack) << b.detail;
  EXPECT_EQ(b.record.rollback_payload, kPayload);  // the dead attempt's: what to undo

  // A second caller sees the same until the rollback is recorded.
  EXPECT_EQ(MustBegin().decision, D::kRollBack);
  Result<IdemRecord> rolled = idem_->RolledBack(key);
  ASSERT_TRUE(rolled.ok()) << rolled.status().ToString();
  EXPECT_EQ(rolled->status, St::kRolledBack);
  EXPECT_NE(rolled->error.find("pid 300 gone"), std::string::npos) << rolled->error;
  EXPECT_EQ(Stored(key), *rolled);
  // The other caller's RolledBack comes too late.
  Result<IdemRecord> twice = idem_->RolledBack(key);
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(twice.status().IsFailedPrecondition());

  IdemBegin retry = MustBegin("second payload");
  ASSERT_EQ(retry.decision, D::kProceed);
  EXPECT_EQ(retry.record.attempts, 2u);
  EXPECT_EQ(retry.record.owner, me_);
  EXPECT_EQ(retry.record.rollback_payload, "second payload");
  ASSERT_TRUE(idem_->Complete(key, "ok").ok());
  EXPECT_EQ(MustBegin().decision, D::kDone);
}

// An operation that kills its daemon every time is tried max_attempts
// times: the rollback of the last attempt blocks the record.
TEST_F(IdemStoreTest, RollingBackTheLastAttemptBlocks) {
  Open(IdemOptions{3, 1'000, 5'000});
  std::string key = Plant(St::kInProgress, Owner(OwnerKind::kPidGone), 2);
  Result<IdemRecord> second = idem_->RolledBack(key);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_EQ(second->status, St::kRolledBack);
  IdemBegin third = MustBegin();
  ASSERT_EQ(third.decision, D::kProceed) << third.detail;
  ASSERT_EQ(third.record.attempts, 3u);
  IdemRecord died = third.record;  // the third attempt's daemon dies too
  died.owner = Owner(OwnerKind::kPidGone);
  WriteBatch b;
  b.Put(Family::kIdem, key, EncodeIdem(died));
  ASSERT_TRUE(store_->Commit(b).ok());

  Result<IdemRecord> blocked = idem_->RolledBack(key);
  ASSERT_TRUE(blocked.ok()) << blocked.status().ToString();
  EXPECT_EQ(blocked->status, St::kBlocked);
  EXPECT_EQ(blocked->attempts, 3u);
  EXPECT_EQ(blocked->error, "rolled back: owner host-a pid 300 (incarnation " +
                                std::to_string(me_.incarnation - 1) +
                                ") died (pid 300 gone); 3 attempts made, none left");
  EXPECT_EQ(Stored(key), *blocked);
  IdemBegin refused = MustBegin();
  EXPECT_EQ(refused.decision, D::kBlocked);
  ASSERT_TRUE(idem_->Unblock(key).ok());
  EXPECT_EQ(MustBegin().decision, D::kProceed);
}

TEST_F(IdemStoreTest, RolledBackIsRefusedForALiveOwner) {
  for (OwnerKind k : {OwnerKind::kSelf, OwnerKind::kLiveOther, OwnerKind::kOtherHost}) {
    SCOPED_TRACE(OwnerKindName(k));
    std::string key = Plant(St::kInProgress, Owner(k));
    uint64_t commits = store_->commits();
    Result<IdemRecord> r = idem_->RolledBack(key);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsFailedPrecondition()) << r.status().ToString();
    EXPECT_NE(r.status().message().find(key), std::string::npos) << r.status().ToString();
    EXPECT_NE(r.status().message().find("which is alive"), std::string::npos);
    EXPECT_EQ(store_->commits(), commits);
  }
  // An owner that dies in between: the second RolledBack is accepted.
  std::string key = Plant(St::kInProgress, Owner(OwnerKind::kLiveOther));
  ASSERT_FALSE(idem_->RolledBack(key).ok());
  procs_.Exit(200);
  ASSERT_TRUE(idem_->RolledBack(key).ok());
}

// A caller of a daemon that died (its attempt since rolled back) or of this
// daemon's earlier incarnation is refused, naming the key and both statuses
// or both owners.
TEST_F(IdemStoreTest, AStaleCallersCompleteIsRefused) {
  IdemBegin first = MustBegin();
  ASSERT_EQ(first.decision, D::kProceed);
  auto old_daemon = std::move(idem_);
  IdemOwner old_me = me_;
  procs_.Exit(100);  // the daemon dies; a new one opens the store
  procs_.Start(101, 1010);
  idem_.reset();
  IdemOwner new_me{"host-a", "boot-A", 101, 1010, old_me.incarnation + 1};
  idem_ = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, new_me);

  IdemBegin seen = MustBegin();
  ASSERT_EQ(seen.decision, D::kRollBack) << seen.detail;
  ASSERT_TRUE(idem_->RolledBack(first.key).ok());

  Result<IdemRecord> stale = old_daemon->Complete(first.key, "late");
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(stale.status().IsFailedPrecondition());
  EXPECT_EQ(stale.status().message(),
            "complete worktree_add " + first.key + ": record is rolled_back, expected in_progress");

  ASSERT_EQ(MustBegin().decision, D::kProceed);
  stale = old_daemon->Complete(first.key, "late");
  ASSERT_FALSE(stale.ok());
  EXPECT_NE(stale.status().message().find("not by this daemon"), std::string::npos)
      << stale.status().ToString();
  Result<IdemRecord> stale_fail = old_daemon->Fail(first.key, "late");
  ASSERT_FALSE(stale_fail.ok());
  EXPECT_TRUE(stale_fail.status().IsFailedPrecondition());
  EXPECT_EQ(Stored(first.key).owner, new_me);
  ASSERT_TRUE(idem_->Complete(first.key, "made").ok());
  EXPECT_EQ(Stored(first.key).result, "made");
}

TEST_F(IdemStoreTest, TransitionsAreRefusedFromEveryOtherStatus) {
  struct Call {
    const char* name;
    St expects;
    std::function<Result<IdemRecord>(const std::string&)> fn;
  };
  std::vector<Call> calls = {
      {"complete", St::kInProgress, [&](const std::string& k) { return idem_->Complete(k, "r"); }},
      {"fail", St::kInProgress, [&](const std::string& k) { return idem_->Fail(k, "e"); }},
      {"rolled_back", St::kInProgress, [&](const std::string& k) { return idem_->RolledBack(k); }},
      {"unblock", St::kBlocked, [&](const std::string& k) { return idem_->Unblock(k); }},
  };
  for (const Call& call : calls) {
    for (int s = 0; s < kIdemStatusCount; ++s) {
      auto status = static_cast<St>(s);
      if (status == call.expects) continue;
      SCOPED_TRACE(std::string(call.name) + " on " + std::string(IdemStatusName(status)));
      std::string key = Plant(status, me_);
      IdemRecord before = Stored(key);
      uint64_t commits = store_->commits();
      Result<IdemRecord> r = call.fn(key);
      ASSERT_FALSE(r.ok());
      EXPECT_TRUE(r.status().IsFailedPrecondition()) << r.status().ToString();
      EXPECT_EQ(r.status().message(), std::string(call.name) + " worktree_add " + key +
                                          ": record is " + std::string(IdemStatusName(status)) +
                                          ", expected " +
                                          std::string(IdemStatusName(call.expects)));
      EXPECT_EQ(store_->commits(), commits);
      EXPECT_EQ(Stored(key), before);
    }
  }
  // No record at all.
  std::string absent = IdemKey("other_op", "");
  Result<IdemRecord> r = idem_->Complete(absent, "r");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find("complete"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(absent), std::string::npos) << r.status().ToString();
}

TEST_F(IdemStoreTest, FailedIsRetriedAfterABackoffThatDoublesUpToTheCap) {
  Open(IdemOptions{20, 1'000, 5'000});
  const int64_t kWaits[] = {1'000, 2'000, 4'000, 5'000, 5'000, 5'000};
  uint32_t attempt = 0;
  for (int64_t wait : kWaits) {
    IdemBegin b = MustBegin();
    ASSERT_EQ(b.decision, D::kProceed) << b.detail;
    EXPECT_EQ(b.record.attempts, ++attempt);
    Result<IdemRecord> failed = idem_->Fail(b.key, "attempt " + std::to_string(attempt));
    ASSERT_TRUE(failed.ok()) << failed.status().ToString();
    EXPECT_EQ(failed->status, St::kFailed);
    EXPECT_EQ(failed->next_retry_at_ms, clock_.NowMs() + wait);
    clock_.AdvanceMs(wait - 1);
    IdemBegin early = MustBegin();
    EXPECT_EQ(early.decision, D::kWait);
    EXPECT_EQ(early.retry_at_ms, failed->next_retry_at_ms);
    clock_.AdvanceMs(1);
  }
}

TEST_F(IdemStoreTest, ExhaustedAttemptsBlockUntilUnblocked) {
  Open(IdemOptions{3, 1'000, 5'000});
  std::string key;
  for (int i = 1; i <= 3; ++i) {
    IdemBegin b = MustBegin();
    ASSERT_EQ(b.decision, D::kProceed) << "attempt " << i << ": " << b.detail;
    key = b.key;
    Result<IdemRecord> f = idem_->Fail(key, "disk full " + std::to_string(i));
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->status, i < 3 ? St::kFailed : St::kBlocked);
    clock_.AdvanceMs(10'000);
  }
  clock_.AdvanceMs(86'400'000);  // no amount of waiting unblocks it
  IdemBegin blocked = MustBegin();
  EXPECT_EQ(blocked.decision, D::kBlocked);
  EXPECT_EQ(blocked.detail, "disk full 3");

  Result<IdemRecord> u = idem_->Unblock(key);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->status, St::kFailed);
  EXPECT_EQ(u->attempts, 0u);
  EXPECT_EQ(u->next_retry_at_ms, clock_.NowMs());
  EXPECT_EQ(u->error, "disk full 3");
  IdemBegin retried = MustBegin();
  ASSERT_EQ(retried.decision, D::kProceed);
  EXPECT_EQ(retried.record.attempts, 1u);
  ASSERT_TRUE(idem_->Complete(key, "made").ok());
}

TEST_F(IdemStoreTest, TrimDropsOldFinishedRecordsButNeverInProgressOrBlocked) {
  auto plant_as = [&](const std::string& op, St status) {
    Result<IdemBegin> b = idem_->Begin(op, "p", "");
    EXPECT_TRUE(b.ok() && b->decision == D::kProceed);
    if (status == St::kCompleted) {
      EXPECT_TRUE(idem_->Complete(b->key, "r").ok());
    }
    if (status == St::kFailed) {
      EXPECT_TRUE(idem_->Fail(b->key, "e").ok());
    }
    return b->key;
  };
  std::string in_progress = plant_as("in_progress", St::kInProgress);
  std::string completed = plant_as("completed", St::kCompleted);
  std::string failed = plant_as("failed", St::kFailed);
  std::string rolled = Plant(St::kInProgress, Owner(OwnerKind::kPidGone));
  ASSERT_TRUE(idem_->RolledBack(rolled).ok());
  Open(IdemOptions{1, 1'000, 5'000});
  std::string blocked = plant_as("blocked", St::kFailed);
  ASSERT_EQ(Stored(blocked).status, St::kBlocked);

  clock_.AdvanceMs(3'600'000);
  std::string recent = plant_as("recent", St::kCompleted);
  Result<size_t> trimmed = idem_->Trim(3'600'000);
  ASSERT_TRUE(trimmed.ok()) << trimmed.status().ToString();
  EXPECT_EQ(*trimmed, 0u);  // exactly at the retention: kept

  clock_.AdvanceMs(1);
  trimmed = idem_->Trim(3'600'000);
  ASSERT_TRUE(trimmed.ok());
  EXPECT_EQ(*trimmed, 3u);
  for (const std::string& gone : {completed, failed, rolled}) {
    EXPECT_TRUE(idem_->Get(gone).status().IsNotFound()) << gone;
  }
  for (const std::string& kept : {in_progress, blocked, recent}) {
    EXPECT_TRUE(idem_->Get(kept).ok()) << kept;
  }
  // Years later, in_progress and blocked are still there.
  clock_.AdvanceMs(int64_t{3'650} * 86'400'000);
  uint64_t commits = store_->commits();
  trimmed = idem_->Trim(0);
  ASSERT_TRUE(trimmed.ok());
  EXPECT_EQ(*trimmed, 1u);
  EXPECT_EQ(store_->commits(), commits + 1);
  Result<std::vector<IdemEntry>> left = idem_->List();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 2u);
  EXPECT_TRUE(idem_->Trim(0).ok());
  EXPECT_EQ(store_->commits(), commits + 1);  // nothing to delete: no write
  EXPECT_TRUE(idem_->Trim(-1).status().IsInvalidArgument());
}

TEST_F(IdemStoreTest, ReopeningTheStoreKeepsEveryRecord) {
  Open(IdemOptions{1, 1'000, 5'000});
  ASSERT_EQ(MustBegin().decision, D::kProceed);
  for (const char* op : {"a", "b", "c"}) {
    Result<IdemBegin> b = idem_->Begin(op, kParams, kPayload);
    ASSERT_TRUE(b.ok());
    if (op[0] == 'a') {
      ASSERT_TRUE(idem_->Complete(b->key, "result a").ok());
    }
    if (op[0] == 'b') {
      ASSERT_TRUE(idem_->Fail(b->key, "error b").ok());
    }
  }
  Result<std::vector<IdemEntry>> before = idem_->List();
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->size(), 4u);
  IdemOwner old_me = me_;

  Open();
  EXPECT_EQ(me_.incarnation, old_me.incarnation + 1);
  Result<std::vector<IdemEntry>> after = idem_->List();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_EQ(after->size(), before->size());
  for (size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].key, (*before)[i].key);
    EXPECT_EQ((*after)[i].record, (*before)[i].record);
  }
  // The same process reopened the store: its earlier record is still live.
  EXPECT_EQ(MustBegin().decision, D::kBusy);
}

TEST_F(IdemStoreTest, WithoutABootIdOnlyAnEarlierIncarnationIsDead) {
  procs_.SetBootId(kUnknownBootId);
  IdemOwner me{"host-a", kUnknownBootId, 100, 1000, 5};
  IdemOwner same_incarnation{"host-a", kUnknownBootId, 300, 3000, 5};
  IdemOwner earlier{"host-a", kUnknownBootId, 100, 1000, 4};
  IdemOwner known_boot_earlier{"host-a", "boot-A", 300, 3000, 4};
  EXPECT_TRUE(JudgeIdemOwner(me, me, &procs_).alive);
  EXPECT_TRUE(JudgeIdemOwner(same_incarnation, me, &procs_).alive);  // pid 300 "gone": untrusted
  IdemOwnerVerdict v = JudgeIdemOwner(earlier, me, &procs_);
  EXPECT_FALSE(v.alive);
  EXPECT_NE(v.detail.find("incarnation 4"), std::string::npos) << v.detail;
  EXPECT_FALSE(JudgeIdemOwner(known_boot_earlier, me, &procs_).alive);
  // This daemon knows its boot, the owner did not: pids are still untrusted.
  IdemOwner me_known{"host-a", "boot-A", 100, 1000, 5};
  EXPECT_TRUE(JudgeIdemOwner(same_incarnation, me_known, &procs_).alive);
}

TEST_F(IdemStoreTest, AProcessTableErrorIsNeverTakenForDeath) {
  class FailingTable final : public ProcessTable {
   public:
    const std::string& BootId() override { return boot_; }
    Result<uint64_t> StartTime(pid_t) override { return Status::IOError("/proc unreadable"); }
    Status SignalGroup(const ProcessIdentity&, int) override { return Status::OK(); }
    Status SignalLeftoverGroup(const ProcessIdentity&, int) override { return Status::OK(); }

   private:
    std::string boot_ = "boot-A";
  } table;
  IdemOwnerVerdict v = JudgeIdemOwner(Owner(OwnerKind::kPidGone), me_, &table);
  EXPECT_TRUE(v.alive);
  EXPECT_NE(v.detail.find("/proc unreadable"), std::string::npos) << v.detail;
}

TEST_F(IdemStoreTest, BadInputIsRefusedNamingWhat) {
  Result<IdemBegin> b = idem_->Begin("", "p", "");
  EXPECT_TRUE(b.status().IsInvalidArgument()) << b.status().ToString();
  b = idem_->Begin(std::string("a\0b", 3), "p", "");
  EXPECT_TRUE(b.status().IsInvalidArgument());
  EXPECT_NE(b.status().message().find("NUL"), std::string::npos) << b.status().ToString();
  for (const std::string& key : {std::string("abc"), std::string(64, 'A'), std::string(64, 'g')}) {
    Result<IdemRecord> r = idem_->Complete(key, "");
    EXPECT_TRUE(r.status().IsInvalidArgument()) << key;
    EXPECT_NE(r.status().message().find(key), std::string::npos) << r.status().ToString();
  }
  Result<IdemRecord> absent = idem_->Get(IdemKey("x", "y"));
  EXPECT_TRUE(absent.status().IsNotFound());
  EXPECT_NE(absent.status().message().find(IdemKey("x", "y")), std::string::npos);
}

TEST_F(IdemStoreTest, ADamagedRecordIsCorruptionNamingItsKey) {
  std::string key = IdemKey(kOp, kParams);
  WriteBatch w;
  w.Put(Family::kIdem, key, "not a record");
  ASSERT_TRUE(store_->Commit(w).ok());
  Result<IdemBegin> b = idem_->Begin(kOp, kParams, "");
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(b.status().IsCorruption()) << b.status().ToString();
  EXPECT_NE(b.status().message().find("idem/" + key), std::string::npos) << b.status().ToString();
  EXPECT_TRUE(idem_->List().status().IsCorruption());
  // Begin never overwrites a record it could not read.
  EXPECT_EQ(store_->Get(Family::kIdem, key).value(), "not a record");
}

TEST_F(IdemStoreTest, AFailedWriteIsReportedNamingTheCallAndKeyAndWritesNothing) {
  IdemBegin b = MustBegin();
  Result<std::unique_ptr<StateStore>> ro =
      StateStore::Open(StoreOptions{dir_.Sub("db"), /*read_only=*/true, false});
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  IdemStore reader(ro->get(), &clock_, &procs_, me_);
  Result<IdemRecord> r = reader.Complete(b.key, "r");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("complete worktree_add " + b.key), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("read-only"), std::string::npos) << r.status().ToString();
  Result<IdemBegin> other = reader.Begin("other_op", "", "");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("begin other_op " + IdemKey("other_op", "")),
            std::string::npos)
      << other.status().ToString();
  EXPECT_EQ(Stored(b.key).status, St::kInProgress);
  EXPECT_TRUE(idem_->Get(IdemKey("other_op", "")).status().IsNotFound());
}

// Callers on many threads of one daemon: exactly one proceeds, the others
// are told it is in progress; after it completes, all see the result.
TEST_F(IdemStoreTest, ConcurrentBeginsLetExactlyOneProceed) {
  constexpr int kThreads = 8;
  std::vector<D> decisions(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Result<IdemBegin> b = idem_->Begin(kOp, kParams, kPayload);
      decisions[i] = b.ok() ? b->decision : D::kBlocked;
    });
  }
  for (std::thread& t : threads) t.join();
  int proceed = 0, busy = 0;
  for (D d : decisions) {
    proceed += d == D::kProceed;
    busy += d == D::kBusy;
  }
  EXPECT_EQ(proceed, 1);
  EXPECT_EQ(busy, kThreads - 1);
  EXPECT_EQ(Stored(IdemKey(kOp, kParams)).attempts, 1u);
}

}  // namespace
}  // namespace wtd
