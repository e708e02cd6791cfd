// Collector: retention of history (docs/design/store.md, "Retention").
//
// What finished before a cutoff (now - --retention-days) goes, in small
// batches so that no call takes long (the daemon's loop feeds systemd's
// watchdog between its steps):
//   - terminal runs whose finished_at_ms is before the cutoff: the record
//     (`runs`), then its log <state-dir>/logs/runs/<id>.log and its context
//     file <state-dir>/runs/<id>.json. The run's `run_keys` entry stays, so
//     its commit is never enqueued again; its events stay until trimmed by
//     count. Never a run that is not terminal, one a worktree slot still
//     names (busy, or kept by keep_worktree = on_failure), or one whose lock
//     lease row is still there (its release is not finished);
//   - log, context and supervisor files (runs/<id>.exit, .pgid) with no
//     run record (a crash fell between a record's deletion and its files'),
//     last modified before the cutoff;
//   - the reap records in `meta` ("lock_reap/...") written before the
//     cutoff whose reap is done: the ref no longer points at the blob the
//     record names.
// Order: the records of a batch are deleted in one synced batch first,
// then their files (crash point `after_gc_commit` in between). A crash at
// any point leaves only records still to collect, or orphan files, which the
// next pass sweeps: the first pass of every Collector (so of every daemon
// start, and every `wtctl gc`) looks for orphans.
//
// The scan does not read all history each pass. Runs are keyed by id in
// creation order, and a run finishes after it is created, so a pass reads
// runs from a low-water mark up to the first one created at or after the
// cutoff. The mark is kept in memory: after a pass that removed what it
// could, it is the lowest id the pass had to keep (or where it stopped), so
// a steady state costs O(batch) plus the few old runs kept. A new Collector
// starts from the lowest stored id, which after collection is the oldest run
// kept.
//
// Thread-safety: not thread-safe; one thread at a time (the daemon's loop
// thread). Several Collectors over one store may take turns on one thread.
#ifndef WTD_RETENTION_COLLECTOR_H_
#define WTD_RETENTION_COLLECTOR_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "runs/run_store.h"
#include "wtd/status.h"

namespace wtd {

class WorktreeSlots;

// --retention-days' default.
inline constexpr double kDefaultRetentionDays = 30;
// Runs (or files, or reap records) looked at per batch.
inline constexpr size_t kCollectBatch = 500;

// `days` in milliseconds (fractions allowed); 0 means forever.
int64_t RetentionMs(double days);

// One reap record as stored by RunStore::RecordLockReap.
struct ReapRecordEntry {
  std::string key;  // the meta key
  std::string repo, name, ref, blob;
  int64_t at_ms = 0;
};

struct CollectorHooks {
  // The runs a worktree slot names (busy or kept): never collected. Null:
  // none.
  std::function<Result<std::set<uint64_t>>()> pinned_runs;
  // Whether the reap of `record` is still under way (its ref still points at
  // its blob). Null: ReapStillPending.
  std::function<Result<bool>(const ReapRecordEntry& record)> reap_pending;
};

// What one or more batches removed (or, dry-run, would remove).
struct CollectReport {
  std::vector<uint64_t> runs;  // run records, in id order per batch
  uint64_t log_files = 0;      // files removed: of those runs and orphans
  uint64_t context_files = 0;  // runs/<id>.json, and a supervisor's .exit and .pgid
  uint64_t orphan_files = 0;   // of log_files + context_files, those with no run record
  uint64_t reap_records = 0;
  uint64_t bytes_freed = 0;  // the sizes of the files
  // Created before the cutoff but kept: not terminal, finished after the
  // cutoff, named by a slot, or its lease not released yet.
  uint64_t runs_kept = 0;
  std::vector<std::string> errors;  // what could not be read or removed; the pass goes on
  bool caught_up = false;           // the last batch ended a pass: nothing more for now
};

// Whether `record`'s ref (record.ref in repository record.repo) still points
// at record.blob. A repository or ref that is gone: false.
Result<bool> ReapStillPending(const ReapRecordEntry& record);

// CollectorHooks::pinned_runs over `slots` (which must outlive it): the runs
// of its busy and kept slots.
std::function<Result<std::set<uint64_t>>()> RunsNamedBySlots(WorktreeSlots* slots);

class Collector {
 public:
  // `runs` must outlive the Collector; `state_dir` holds logs/runs and runs.
  Collector(RunStore* runs, std::string state_dir, Clock* clock, CollectorHooks hooks = {});

  // One batch of the current pass (a new pass if none is under way, or if the
  // last one was of the other kind): at most `limit` runs, files or reap
  // records looked at, what is older than `cutoff_ms` removed (with
  // `dry_run`, only counted) and added to *report; report->caught_up says
  // whether the pass ended. An error of the store stops the batch; what it
  // had removed is in *report.
  Status CollectBatch(int64_t cutoff_ms, size_t limit, bool dry_run, CollectReport* report);
  // Batches until caught up: one whole pass.
  Status CollectAll(int64_t cutoff_ms, bool dry_run, CollectReport* report,
                    size_t limit = kCollectBatch);

  // Where the next pass starts reading runs.
  uint64_t low_water() const { return low_water_; }
  Clock* clock() const { return clock_; }

 private:
  enum class Phase { kRuns, kOrphans, kReaps };
  struct OrphanFile {
    uint64_t id;
    std::string path;
    bool log;
  };
  struct Pass {
    bool active = false;
    bool dry_run = false;
    Phase phase = Phase::kRuns;
    uint64_t next_id = 0;     // the runs phase continues here
    uint64_t first_kept = 0;  // the lowest id kept in this pass (0: none)
    bool sweep_orphans = false;
    bool orphans_listed = false;
    std::vector<OrphanFile> orphans;
    size_t next_orphan = 0;
    std::string reap_after;  // the last reap record key looked at
  };

  // Each phase uses up to *budget items; true when the phase is done.
  Result<bool> RunsStep(int64_t cutoff_ms, size_t* budget, CollectReport* report);
  Result<bool> OrphansStep(int64_t cutoff_ms, size_t* budget, CollectReport* report);
  Result<bool> ReapsStep(int64_t cutoff_ms, size_t* budget, CollectReport* report);
  // Whether run `r` may go: terminal, finished before the cutoff, named by
  // no slot and holding no lease row.
  Result<bool> Collectable(const Run& r, int64_t cutoff_ms, const std::set<uint64_t>& pinned);
  // Removes (dry-run: measures) one file of the pass; counts it when it
  // existed.
  void RemoveFile(const std::string& path, bool log, bool orphan, CollectReport* report);
  void ListOrphans();

  RunStore* runs_;
  std::string state_dir_;
  Clock* clock_;
  CollectorHooks hooks_;
  Pass pass_;
  uint64_t low_water_ = 0;
  bool orphans_swept_ = false;  // a real pass has swept them since this object was made
};

}  // namespace wtd

#endif  // WTD_RETENTION_COLLECTOR_H_
