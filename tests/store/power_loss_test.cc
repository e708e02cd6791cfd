// Power loss and full disks, simulated with FaultInjectionFs under RocksDB:
// what Commit acknowledged survives DropUnsyncedData; what it refused is not
// there; a failed write makes the store refuse writes until reopened.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "fakes/fault_injection_fs.h"
#include "fakes/temp_dir.h"
#include "runs/run_store.h"
#include "store/keys.h"
#include "store/state_store.h"

namespace wtd {
namespace {

using S = RunState;

class PowerLossTest : public ::testing::Test {
 protected:
  std::unique_ptr<StateStore> Open() {
    StoreOptions o{dir_.Sub("db")};
    o.env = env_.get();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  void PowerLoss() {
    rocksdb::IOStatus s = fs_->DropUnsyncedData();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  // Batch i: a run, its active entry and an event, all naming i.
  static WriteBatch Batch(uint64_t i, size_t value_size = 16) {
    WriteBatch b;
    std::string v = "batch-" + std::to_string(i) + "-";
    v.resize(std::max(v.size(), value_size), 'x');
    b.Put(Family::kRuns, EncodeU64Key(i), v);
    b.Put(Family::kActive, EncodeU64Key(i), "");
    b.Put(Family::kEvents, EncodeU64Key(i), v);
    return b;
  }
  // Whether batch i is there whole (true), absent whole (false), or torn
  // (a test failure).
  static bool BatchPresent(const StateStore& s, uint64_t i) {
    Result<std::string> run = s.Get(Family::kRuns, EncodeU64Key(i));
    Result<std::string> active = s.Get(Family::kActive, EncodeU64Key(i));
    Result<std::string> event = s.Get(Family::kEvents, EncodeU64Key(i));
    EXPECT_EQ(run.ok(), active.ok()) << "batch " << i << " torn";
    EXPECT_EQ(run.ok(), event.ok()) << "batch " << i << " torn";
    if (run.ok() && event.ok()) {
      EXPECT_EQ(run->rfind("batch-" + std::to_string(i) + "-", 0), 0u);
      EXPECT_EQ(*run, *event);
    }
    return run.ok();
  }

  TempDir dir_;
  std::shared_ptr<FaultInjectionFs> fs_ = std::make_shared<FaultInjectionFs>();
  std::unique_ptr<rocksdb::Env> env_ = rocksdb::NewCompositeEnv(fs_);
};

TEST_F(PowerLossTest, AcknowledgedBatchesSurviveRepeatedPowerLoss) {
  uint64_t next = 0;
  for (int round = 0; round < 3; ++round) {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 30; ++i, ++next) ASSERT_TRUE(s->Commit(Batch(next)).ok());
    s.reset();
    PowerLoss();
  }
  EXPECT_GT(fs_->file_syncs(), 90u);  // the store really wrote through the fault fs
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  for (uint64_t i = 0; i < next; ++i) EXPECT_TRUE(BatchPresent(*s, i)) << "batch " << i;
}

TEST_F(PowerLossTest, AcknowledgedBatchesSurvivePowerLossAcrossMemtableFlushes) {
  // ~10 MB in 64 KiB batches: memtables fill and flush to .sst files, WALs
  // roll, the MANIFEST changes; all of it must be made durable properly.
  constexpr uint64_t kBatches = 160;
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    for (uint64_t i = 0; i < kBatches; ++i) ASSERT_TRUE(s->Commit(Batch(i, 32 << 10)).ok());
  }
  EXPECT_GT(fs_->dir_syncs(), 1u);
  PowerLoss();
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  for (uint64_t i = 0; i < kBatches; ++i) EXPECT_TRUE(BatchPresent(*s, i)) << "batch " << i;
}

TEST_F(PowerLossTest, UnsyncedRocksDbWriteIsLost) {
  // Proves the simulation bites: the same write with sync=false is gone.
  rocksdb::Options o;
  o.create_if_missing = true;
  o.env = env_.get();
  std::string path = dir_.Sub("raw");
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions synced;
    synced.sync = true;
    ASSERT_TRUE(db->Put(synced, "durable", "1").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "volatile", "2").ok());
    ASSERT_TRUE(db->Close().ok());
  }
  PowerLoss();
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string v;
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "durable", &v).ok());
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "volatile", &v).IsNotFound());
  EXPECT_TRUE(db->Close().ok());
}

TEST_F(PowerLossTest, IncarnationAndCleanMarkerSurvivePowerLoss) {
  for (uint64_t expected = 1; expected <= 3; ++expected) {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->incarnation(), expected);
    EXPECT_FALSE(s->previous_shutdown_clean());
    s.reset();
    PowerLoss();
  }
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->MarkCleanShutdown().ok());
  }
  PowerLoss();
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->incarnation(), 5u);
  EXPECT_TRUE(s->previous_shutdown_clean());
}

TEST_F(PowerLossTest, FailedBatchIsNotVisibleNowOrAfterReopen) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Commit(Batch(1)).ok());
  fs_->SetNoSpace(true);
  EXPECT_FALSE(s->Commit(Batch(2)).ok());
  EXPECT_TRUE(BatchPresent(*s, 1));
  EXPECT_FALSE(BatchPresent(*s, 2));
  s.reset();
  fs_->SetNoSpace(false);
  PowerLoss();
  s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(BatchPresent(*s, 1));
  EXPECT_FALSE(BatchPresent(*s, 2));
}

TEST_F(PowerLossTest, TornWalRecordIsDroppedWholeOnReopen) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Commit(Batch(1)).ok());
  fs_->SetWriteBudget(40);  // the next WAL record is cut after 40 bytes
  EXPECT_FALSE(s->Commit(Batch(2, 4096)).ok());
  s.reset();
  fs_->SetWriteBudget(std::nullopt);
  // No DropUnsyncedData: the torn record stays on disk, as after kill -9.
  s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(BatchPresent(*s, 1));
  EXPECT_FALSE(BatchPresent(*s, 2));
  EXPECT_TRUE(s->Commit(Batch(3)).ok());
}

TEST_F(PowerLossTest, DiskFullMakesStoreStickyUntilReopen) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Commit(Batch(1)).ok());
  fs_->SetNoSpace(true);
  Status failed = s->Commit(Batch(2));
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(dir_.Sub("db")), std::string::npos) << failed.ToString();
  EXPECT_EQ(s->sticky_error(), failed);
  fs_->SetNoSpace(false);  // space is back, but the store stays refusing
  Status refused = s->Commit(Batch(3));
  EXPECT_TRUE(refused.IsFailedPrecondition()) << refused.ToString();
  EXPECT_NE(refused.message().find(failed.ToString()), std::string::npos) << refused.ToString();
  EXPECT_TRUE(s->MarkCleanShutdown().IsFailedPrecondition());
  EXPECT_TRUE(BatchPresent(*s, 1));  // reads keep working
  EXPECT_FALSE(BatchPresent(*s, 3));
  s.reset();
  PowerLoss();

  s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->sticky_error().ok());
  EXPECT_FALSE(s->previous_shutdown_clean());
  EXPECT_TRUE(BatchPresent(*s, 1));
  EXPECT_FALSE(BatchPresent(*s, 2));
  EXPECT_FALSE(BatchPresent(*s, 3));
  EXPECT_TRUE(s->Commit(Batch(4)).ok());
}

TEST_F(PowerLossTest, RunTransitionsAcknowledgedBeforePowerLossSurvive) {
  FakeClock clock;
  std::map<uint64_t, S> expected;
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    RunStore runs(s.get(), &clock);
    ASSERT_TRUE(runs.Init().ok());
    std::vector<NewRun> batch;
    for (char c : std::string("abcde")) {
      NewRun n;
      n.key = RunKey{"/r", "main", std::string(1, c), std::string(40, c)};
      n.max_attempts = 2;
      batch.push_back(n);
    }
    CursorUpdate cu{"/r", "main", "main", Cursor{std::string(40, 'e'), 1, 2, {}, 0}};
    Result<std::vector<wtd::Run>> made = runs.Enqueue(batch, cu);
    ASSERT_TRUE(made.ok());
    for (const wtd::Run& r : *made) expected[r.id] = S::kPending;
    ProcessIdentity proc{100, 7, "boot-A"};
    ASSERT_TRUE(runs.Lease(1).ok());
    ASSERT_TRUE(runs.Lease(2).ok());
    ASSERT_TRUE(runs.MarkReady(2, S::kLeased).ok());
    ASSERT_TRUE(runs.MarkRunning(2, proc, s->incarnation(), "/log/2").ok());
    ASSERT_TRUE(runs.Lease(3).ok());
    ASSERT_TRUE(runs.MarkReady(3, S::kLeased).ok());
    ASSERT_TRUE(runs.MarkRunning(3, proc, s->incarnation(), "/log/3").ok());
    AttemptOutcome success;
    success.exit_code = 0;
    success.duration_ms = 5;
    success.log_bytes = 10;
    ASSERT_TRUE(runs.Finish(3, success).ok());
    ASSERT_TRUE(runs.Cancel(4, S::kPending, "user").ok());
    expected[1] = S::kLeased;
    expected[2] = S::kRunning;
    expected[3] = S::kSucceeded;
    expected[4] = S::kCancelled;
  }
  PowerLoss();
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  RunStore runs(s.get(), &clock);
  ASSERT_TRUE(runs.Init().ok());
  for (const auto& [id, state] : expected) {
    Result<wtd::Run> r = runs.Get(id);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->state, state) << "run " << id << " is " << RunStateName(r->state);
  }
  EXPECT_EQ(runs.Get(2)->pid, 100);
  EXPECT_EQ(runs.Get(3)->duration_ms, 5);
  Result<std::optional<Cursor>> c = runs.GetCursor("/r", "main", "main");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->sha, std::string(40, 'e'));
  Result<std::vector<wtd::Run>> active = runs.ListActive();
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(active->size(), 3u);  // 1, 2 and 5
  // Ids are not reused and keys not enqueued twice after the power loss.
  NewRun again;
  again.key = RunKey{"/r", "main", "a", std::string(40, 'a')};
  NewRun fresh;
  fresh.key = RunKey{"/r", "main", "f", std::string(40, 'f')};
  Result<std::vector<wtd::Run>> made = runs.Enqueue({again, fresh}, std::nullopt);
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(made->size(), 1u);
  EXPECT_EQ(made->at(0).id, 6u);
}

}  // namespace
}  // namespace wtd
