// Collector over a real RocksDB store in a temp dir, with a fake clock: what
// is collected (only terminal runs finished before the cutoff, with their
// files), what is kept (run keys, runs not terminal, runs named by a real
// worktree slot or lease row, anything newer), batching, dry runs, the
// orphan sweep after a crash between the records and the files, and the
// reap records against real lock refs.
#include "retention/collector.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "fakes/fake_clock.h"
#include "git/git_fixture.h"
#include "locks/lock_refs.h"
#include "locks/stale.h"
#include "store/keys.h"
#include "worktrees/slots.h"

namespace wtd {
namespace {

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kT0 = 1'700'000'000'000;

struct SimulatedCrash : std::runtime_error {
  explicit SimulatedCrash(std::string_view name) : std::runtime_error(std::string(name)) {}
};

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Sets a file's mtime (the fake clock does not reach the file system).
void SetMtime(const std::string& path, int64_t ms) {
  struct timeval tv[2];
  tv[0].tv_sec = tv[1].tv_sec = ms / 1000;
  tv[0].tv_usec = tv[1].tv_usec = (ms % 1000) * 1000;
  ASSERT_EQ(utimes(path.c_str(), tv), 0) << path;
}

class CollectorTest : public git::GitFixture {
 protected:
  void SetUp() override {
    GitFixture::SetUp();
    state_dir_ = Path("state");
    ASSERT_TRUE(MakeDirs(state_dir_).ok());
    Open();
  }
  void TearDown() override {
    SetCrashAction(nullptr);
    DisarmCrashPoints();
  }

  void Open() {
    runs_.reset();
    store_.reset();
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{state_dir_ + "/db"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    runs_ = std::make_unique<RunStore>(store_.get(), &clock_);
    ASSERT_TRUE(runs_->Init().ok());
  }

  NewRun MakeNew(const std::string& sha, const std::string& repo = "/repo") {
    NewRun n;
    n.key = RunKey{repo, "main", "build", sha};
    n.branch = "main";
    n.worktree_path = repo;
    return n;
  }
  std::string Sha(int n) {
    std::string sha(40, '0');
    std::string s = std::to_string(n);
    sha.replace(40 - s.size(), s.size(), s);
    return sha;
  }
  // A pending run created now, with a log and a context file of `bytes`
  // bytes each, last written now.
  uint64_t Enqueue(size_t bytes = 100, const std::string& repo = "/repo", std::string sha = "") {
    if (sha.empty()) sha = Sha(++seq_);
    Result<std::vector<wtd::Run>> r = runs_->Enqueue({MakeNew(sha, repo)}, std::nullopt);
    EXPECT_TRUE(r.ok() && r->size() == 1) << r.status().ToString();
    uint64_t id = r->at(0).id;
    WriteRunFiles(id, bytes);
    return id;
  }
  void WriteRunFiles(uint64_t id, size_t bytes) {
    for (const std::string& p : {RunLogPath(state_dir_, id), RunContextPath(state_dir_, id)}) {
      ASSERT_TRUE(MakeDirs(DirName(p)).ok());
      ASSERT_TRUE(WriteFileAtomic(p, std::string(bytes, 'x')).ok());
      SetMtime(p, clock_.NowMs());
    }
  }
  void Cancel(uint64_t id) {
    Result<wtd::Run> r = runs_->Cancel(id, RunState::kPending, "test");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const std::string& p : {RunLogPath(state_dir_, id), RunContextPath(state_dir_, id)}) {
      if (Exists(p)) SetMtime(p, clock_.NowMs());
    }
  }
  bool Stored(uint64_t id) { return runs_->Get(id).ok(); }
  bool FilesThere(uint64_t id) {
    return Exists(RunLogPath(state_dir_, id)) && Exists(RunContextPath(state_dir_, id));
  }
  bool FilesGone(uint64_t id) {
    return !Exists(RunLogPath(state_dir_, id)) && !Exists(RunContextPath(state_dir_, id));
  }
  Collector MakeCollector(CollectorHooks hooks = {}) {
    return Collector(runs_.get(), state_dir_, &clock_, std::move(hooks));
  }
  CollectReport All(Collector& c, int64_t cutoff, bool dry_run = false) {
    CollectReport report;
    Status st = c.CollectAll(cutoff, dry_run, &report);
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(report.caught_up);
    return report;
  }

  FakeClock clock_{kT0};
  std::string state_dir_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  int seq_ = 0;
};

TEST_F(CollectorTest, RetentionDaysAreMilliseconds) {
  EXPECT_EQ(RetentionMs(30), 30 * kDayMs);
  EXPECT_EQ(RetentionMs(0.5), kDayMs / 2);
  EXPECT_EQ(RetentionMs(0.00002), 1728);
  EXPECT_EQ(RetentionMs(0), 0) << "0: forever";
}

TEST_F(CollectorTest, RemovesOnlyTerminalRunsFinishedBeforeTheCutoff) {
  uint64_t old_done = Enqueue(100);
  Cancel(old_done);  // finished at t0
  uint64_t old_pending = Enqueue(10);
  uint64_t finished_late = Enqueue(10);  // created at t0, finished after the cutoff
  clock_.AdvanceMs(2 * kDayMs);
  Cancel(finished_late);
  uint64_t new_done = Enqueue(10);
  Cancel(new_done);
  int64_t cutoff = kT0 + kDayMs;

  Collector c = MakeCollector();
  CollectReport report = All(c, cutoff);
  EXPECT_EQ(report.runs, std::vector<uint64_t>{old_done});
  EXPECT_EQ(report.log_files, 1u);
  EXPECT_EQ(report.context_files, 1u);
  EXPECT_EQ(report.orphan_files, 0u);
  EXPECT_EQ(report.bytes_freed, 200u);
  EXPECT_EQ(report.runs_kept, 2u) << "the pending run and the one that finished late";
  EXPECT_TRUE(report.errors.empty());

  Result<wtd::Run> gone = runs_->Get(old_done);
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(gone.status().IsNotFound()) << gone.status().ToString();
  EXPECT_TRUE(FilesGone(old_done));
  for (uint64_t id : {old_pending, finished_late, new_done}) {
    EXPECT_TRUE(Stored(id)) << id;
    EXPECT_TRUE(FilesThere(id)) << id;
  }
  // The run key stays: its commit is not enqueued again.
  Result<uint64_t> key = runs_->FindByKey(MakeNew(Sha(1)).key);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(*key, old_done);
  EXPECT_EQ(c.low_water(), old_pending) << "the next pass starts at the oldest run kept";
}

TEST_F(CollectorTest, ACollectedCommitIsNotEnqueuedAgainAndItsIdNotReused) {
  uint64_t a = Enqueue();
  uint64_t b = Enqueue();
  Cancel(a);
  Cancel(b);
  clock_.AdvanceMs(kDayMs);
  Collector c = MakeCollector();
  EXPECT_EQ(All(c, clock_.NowMs()).runs, (std::vector<uint64_t>{a, b}));
  // Every run is gone, the newest included: after a restart (the store
  // reopened, nothing else reset) neither the commits nor the ids come back.
  Open();
  Result<std::vector<wtd::Run>> again =
      runs_->Enqueue({MakeNew(Sha(1)), MakeNew(Sha(2))}, std::nullopt);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->empty()) << "a collected run's commit was enqueued again";
  uint64_t next = Enqueue();
  EXPECT_GT(next, b) << "a collected run's id was handed out again";
}

TEST_F(CollectorTest, DeleteTerminalRunsRefusesARunThatIsNotTerminal) {
  uint64_t done = Enqueue();
  Cancel(done);
  uint64_t pending = Enqueue();
  Status st = runs_->DeleteTerminalRuns({done, pending});
  EXPECT_TRUE(st.IsFailedPrecondition()) << st.ToString();
  EXPECT_TRUE(Stored(done)) << "nothing of a refused batch is written";
  EXPECT_TRUE(Stored(pending));
}

TEST_F(CollectorTest, KeepsARunALeaseRowStillNamesUntilItIsDropped) {
  uint64_t id = Enqueue();
  LeaseRequest req;
  req.host = "h";
  req.pid = 1;
  req.ttl_ms = 60'000;
  req.ref_blob = std::string(40, 'b');
  Result<LeasedRun> leased = runs_->AcquireLease(id, req);
  ASSERT_TRUE(leased.ok()) << leased.status().ToString();
  ASSERT_TRUE(runs_->Cancel(id, RunState::kLeased, "test").ok());  // the row is releasing
  clock_.AdvanceMs(kDayMs);
  Collector c = MakeCollector();
  CollectReport first = All(c, clock_.NowMs());
  EXPECT_TRUE(first.runs.empty());
  EXPECT_EQ(first.runs_kept, 1u);
  EXPECT_TRUE(Stored(id));
  ASSERT_TRUE(
      runs_->DropLease("/repo", LockName(MakeNew(Sha(1)).key), leased->lease.fencing_token).ok());
  EXPECT_EQ(All(c, clock_.NowMs()).runs, std::vector<uint64_t>{id});
}

TEST_F(CollectorTest, KeepsARunWhoseWorktreeSlotIsKept) {
  std::string repo = InitRepo("repo");
  std::string sha = Commit(repo, "a.txt", "a\n", "A");
  SlotOptions so;
  so.root = state_dir_ + "/worktrees";
  so.max_slots = 2;
  so.keep_failed = 2;
  SlotsOnStore slots(store_.get(), &clock_, SystemProcessTable(), so);
  uint64_t kept = Enqueue(10, repo, sha);
  uint64_t freed = Enqueue(10, repo, Sha(99));
  ASSERT_TRUE(slots.slots.Take(repo, kept, sha).ok());
  ASSERT_TRUE(slots.slots.Give(kept, /*keep=*/true).ok());  // keep_worktree = on_failure
  Cancel(kept);
  Cancel(freed);
  clock_.AdvanceMs(kDayMs);
  CollectorHooks hooks;
  hooks.pinned_runs = RunsNamedBySlots(&slots.slots);
  Collector c = MakeCollector(hooks);
  CollectReport report = All(c, clock_.NowMs());
  EXPECT_EQ(report.runs, std::vector<uint64_t>{freed});
  EXPECT_TRUE(Stored(kept));
  EXPECT_TRUE(FilesThere(kept));
  // Its slot removed, the run goes with the next pass.
  Result<std::vector<Slot>> all = slots.slots.List();
  ASSERT_TRUE(all.ok() && all->size() == 1);
  ASSERT_TRUE(slots.slots.Remove(all->at(0).name).ok());
  EXPECT_EQ(All(c, clock_.NowMs()).runs, std::vector<uint64_t>{kept});
}

TEST_F(CollectorTest, ABatchLooksAtNoMoreThanItsLimitAndLaterBatchesCatchUp) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(Enqueue());
    Cancel(ids.back());
  }
  clock_.AdvanceMs(kDayMs);
  Collector c = MakeCollector();
  std::vector<uint64_t> all;
  int batches = 0;
  for (CollectReport r; !r.caught_up;) {
    size_t before = r.runs.size();
    ASSERT_TRUE(c.CollectBatch(clock_.NowMs(), 3, false, &r).ok());
    EXPECT_LE(r.runs.size() - before, 3u);
    ++batches;
    ASSERT_LT(batches, 20);
    all = r.runs;
  }
  EXPECT_EQ(all, ids);
  EXPECT_EQ(batches, 4) << "3 + 3 + 3 + 1 runs";
  for (uint64_t id : ids) EXPECT_FALSE(Stored(id));
}

TEST_F(CollectorTest, ADryRunRemovesNothingAndReportsWhatTheRealPassRemoves) {
  std::vector<uint64_t> done;
  for (int i = 0; i < 7; ++i) {
    done.push_back(Enqueue(10 + i));
    Cancel(done.back());
  }
  Enqueue();  // pending: kept
  // An orphan: a log with no run.
  std::string orphan = RunLogPath(state_dir_, 999);
  ASSERT_TRUE(WriteFileAtomic(orphan, "orphan\n").ok());
  SetMtime(orphan, kT0);
  clock_.AdvanceMs(kDayMs);
  uint64_t commits = store_->commits();

  Collector dry = MakeCollector();
  CollectReport planned;
  for (int i = 0; !planned.caught_up; ++i) {
    ASSERT_LT(i, 20);
    ASSERT_TRUE(dry.CollectBatch(clock_.NowMs(), 2, /*dry_run=*/true, &planned).ok());
  }
  EXPECT_EQ(store_->commits(), commits) << "a dry run wrote to the store";
  for (uint64_t id : done) {
    EXPECT_TRUE(Stored(id));
    EXPECT_TRUE(FilesThere(id));
  }
  EXPECT_TRUE(Exists(orphan));

  Collector real = MakeCollector();
  CollectReport removed = All(real, clock_.NowMs());
  EXPECT_EQ(planned.runs, done);
  EXPECT_EQ(removed.runs, planned.runs);
  EXPECT_EQ(removed.log_files, planned.log_files);
  EXPECT_EQ(removed.context_files, planned.context_files);
  EXPECT_EQ(removed.orphan_files, 1u);
  EXPECT_EQ(removed.orphan_files, planned.orphan_files);
  EXPECT_EQ(removed.bytes_freed, planned.bytes_freed);
  EXPECT_EQ(removed.runs_kept, planned.runs_kept);
  EXPECT_FALSE(Exists(orphan));
}

TEST_F(CollectorTest, ASecondPassFindsNothingMore) {
  for (int i = 0; i < 3; ++i) Cancel(Enqueue());
  clock_.AdvanceMs(kDayMs);
  Collector c = MakeCollector();
  EXPECT_EQ(All(c, clock_.NowMs()).runs.size(), 3u);
  CollectReport again = All(c, clock_.NowMs());
  EXPECT_TRUE(again.runs.empty());
  EXPECT_EQ(again.log_files + again.context_files + again.reap_records + again.bytes_freed, 0u);
  Collector restarted = MakeCollector();
  CollectReport fresh = All(restarted, clock_.NowMs());
  EXPECT_TRUE(fresh.runs.empty()) << "a new collector (a restart) finds nothing either";
  EXPECT_EQ(fresh.log_files + fresh.context_files, 0u);
}

TEST_F(CollectorTest, ACrashBetweenTheRecordsAndTheFilesIsFinishedByTheNextPass) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Enqueue(50));
    Cancel(ids.back());
  }
  uint64_t young_orphan_id = 500;  // written "now" for the file system: after the cutoff
  ASSERT_TRUE(WriteFileAtomic(RunLogPath(state_dir_, young_orphan_id), "young\n").ok());
  clock_.AdvanceMs(kDayMs);
  SetCrashAction([](std::string_view name) { throw SimulatedCrash(name); });
  ASSERT_TRUE(ArmCrashPoint("after_gc_commit").ok());
  {
    Collector c = MakeCollector();
    CollectReport report;
    EXPECT_THROW(c.CollectAll(clock_.NowMs(), false, &report), SimulatedCrash);
  }
  for (uint64_t id : ids) {
    EXPECT_FALSE(Stored(id)) << "the records' batch was committed";
    EXPECT_TRUE(FilesThere(id)) << "the files were not removed yet";
  }
  // The next start: a new collector over the reopened store.
  Open();
  Collector next = MakeCollector();
  CollectReport report = All(next, clock_.NowMs());
  EXPECT_TRUE(report.runs.empty()) << "runs counted twice";
  EXPECT_EQ(report.log_files, 3u);
  EXPECT_EQ(report.context_files, 3u);
  EXPECT_EQ(report.orphan_files, 6u);
  EXPECT_EQ(report.bytes_freed, 300u);
  for (uint64_t id : ids) EXPECT_TRUE(FilesGone(id)) << id;
  EXPECT_TRUE(Exists(RunLogPath(state_dir_, young_orphan_id)))
      << "an orphan newer than the cutoff stays";
  CollectReport again = All(next, clock_.NowMs());
  EXPECT_EQ(again.log_files + again.context_files, 0u);
}

TEST_F(CollectorTest, AReapRecordGoesOnceItsReapIsDoneAndItIsOld) {
  std::string repo = InitRepo("repo");
  std::string sha = Commit(repo, "a.txt", "a\n", "A");
  Result<std::unique_ptr<locks::LockRefs>> refs = locks::LockRefs::Open(repo);
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  locks::LockName name{"main", "build", sha};
  locks::LockOwner owner;
  owner.host = "gone-host";
  owner.pid = 12;
  owner.run_id = 1;
  owner.token = 1;
  Result<std::string> blob = (*refs)->Create(name, owner);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  std::string ref = std::string(locks::kDefaultLocksRoot) + "/" + name.ToString();
  auto record = [&](int64_t at_ms, const std::string& b) {
    locks::ReapRecord r{repo, name.ToString(), ref, b, "test", "locks reap", at_ms};
    ASSERT_TRUE(runs_->RecordLockReap(repo, name.ToString(), b, r.ToJson()).ok());
  };
  record(kT0, *blob);                              // old, the ref still at its blob
  record(kT0, std::string(40, 'a'));               // old, the ref elsewhere: done
  record(kT0 + 2 * kDayMs, std::string(40, 'c'));  // done, but newer than the cutoff
  clock_.AdvanceMs(kDayMs);
  Collector c = MakeCollector();
  CollectReport first = All(c, clock_.NowMs());
  EXPECT_EQ(first.reap_records, 1u);
  EXPECT_TRUE(first.errors.empty()) << first.errors.at(0);
  Result<std::vector<std::pair<std::string, std::string>>> left = runs_->ListReapRecords("", 10);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->size(), 2u);
  // The reap finishes: the ref is deleted.
  ASSERT_TRUE((*refs)->Delete(name, *blob).ok());
  EXPECT_EQ(All(c, clock_.NowMs()).reap_records, 1u);
  left = runs_->ListReapRecords("", 10);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u) << "the one newer than the cutoff stays";
  EXPECT_NE(left->at(0).first.find(std::string(40, 'c')), std::string::npos);
}

}  // namespace
}  // namespace wtd
