// RunStore: runs, their state machine and the polling cursors, on top of the
// StateStore (docs/design/state-machine.md).
//
// Every method that changes state commits exactly one synced batch that
// writes the run record, its membership in `active` (non-terminal runs only)
// and one `events` entry per transition. A transition first checks that the
// run is in the expected from-state and that from -> to is legal; otherwise
// it returns FailedPrecondition and writes nothing.
//
// Enqueue is idempotent on RunKey through `run_keys`, and commits the new
// runs together with the cursor advance past them, so a crash can neither
// skip a commit nor enqueue it twice.
//
// Thread-safety: all methods may be called concurrently. A transition's
// read-check-write is serialized per run (striped mutexes); an enqueue's
// check-then-insert is serialized per run key (striped by key hash). No
// lock is held around unrelated writes. Cursor updates of one worktree must
// come from one thread (the poller).
#ifndef WTD_RUNS_RUN_STORE_H_
#define WTD_RUNS_RUN_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/attempt_outcome.h"
#include "base/clock.h"
#include "base/process_table.h"
#include "runs/retry_policy.h"
#include "store/records.h"
#include "store/state_store.h"
#include "wtd/status.h"

namespace wtd {

// Whether the state machine allows from -> to.
bool IsLegalTransition(RunState from, RunState to);

// How many interrupted attempts a run may have beyond max_attempts.
inline constexpr uint32_t kInterruptAllowance = 3;

struct NewRun {
  RunKey key;
  std::string branch;
  std::string worktree_path;
  uint32_t max_attempts = 1;
  int64_t retry_backoff_ms = 0;
  int64_t timeout_ms = 0;
  // What it executes and the commit it is for (Run class version 3).
  std::string command;
  std::vector<std::pair<std::string, std::string>> env;
  std::string commit_subject;
  std::string commit_author;
  int64_t commit_time_s = 0;
};

// One stored cursor of a repository.
struct CursorEntry {
  std::string worktree;
  std::string branch;
  Cursor cursor;
};

struct CursorUpdate {
  std::string repo;
  std::string worktree;
  std::string branch;
  Cursor cursor;
};

struct RunFilter {
  std::string job;                // empty: any
  std::optional<RunState> state;  // unset: any
  std::string worktree;           // empty: any
  size_t limit = 50;              // 0: all
};

class RunStore {
 public:
  // `store` and `clock` must outlive the RunStore.
  RunStore(StateStore* store, Clock* clock, RetryPolicy retry = RetryPolicy());

  // Reads the next run id and event sequence from the store. Call once.
  Status Init();

  // Creates a pending run for each NewRun whose key has no run yet (others
  // are skipped), and puts `cursor` if given, all in one batch. Returns the
  // runs created. Duplicate keys within `runs` are created once.
  Result<std::vector<Run>> Enqueue(const std::vector<NewRun>& runs,
                                   const std::optional<CursorUpdate>& cursor);

  Result<Run> Get(uint64_t id) const;
  // The run id for a key; NotFound when no run exists for it.
  Result<uint64_t> FindByKey(const RunKey& key) const;

  // The generic transition: checks state == from and legality, applies
  // `mutate` to the record (it must not change id, key or state), stamps
  // updated_at, sets finished_at for terminal states, and commits.
  Result<Run> Transition(uint64_t id, RunState from, RunState to,
                         const std::function<void(Run&)>& mutate = {});

  // The transitions the scheduler and recovery use.
  Result<Run> Lease(uint64_t id);                     // pending -> leased
  Result<Run> MarkReady(uint64_t id, RunState from);  // leased|preparing -> ready
  // ready -> running: a new attempt with the given process, before the
  // process may exec the job.
  Result<Run> MarkRunning(uint64_t id, const ProcessIdentity& process, uint64_t incarnation,
                          const std::string& log_path);
  // running -> succeeded | retry_wait | failed | timed_out.
  Result<Run> Finish(uint64_t id, const AttemptOutcome& outcome);
  // ready -> retry_wait | failed when the process could not be started.
  Result<Run> SpawnFailed(uint64_t id, const std::string& error);
  // running -> retry_wait | failed: the attempt was interrupted (daemon
  // died or stopped). It counts as an attempt, but is retried at once while
  // attempt < max_attempts + kInterruptAllowance.
  Result<Run> Interrupt(uint64_t id, const std::string& reason);
  // leased|preparing|ready -> pending: no process ran, no attempt used.
  Result<Run> Requeue(uint64_t id, RunState from, const std::string& reason);
  // retry_wait -> pending once now >= not_before.
  Result<Run> Wake(uint64_t id);
  Result<Run> Cancel(uint64_t id, RunState from, const std::string& reason);

  // Every non-terminal run, by id. Scans `active`, never history. A run that
  // cannot be read fails the whole listing with its Status, unless `damaged`
  // is given: then it is left out and its Status appended there.
  Result<std::vector<Run>> ListActive(std::vector<Status>* damaged = nullptr) const;
  // Runs newest first matching the filter.
  Result<std::vector<Run>> List(const RunFilter& filter) const;

  Result<std::optional<Cursor>> GetCursor(const std::string& repo, const std::string& worktree,
                                          const std::string& branch) const;
  Status PutCursor(const CursorUpdate& update);
  // Every cursor of repository `repo` (any worktree, any branch), in key
  // order. A cursor that cannot be decoded fails the listing, naming it.
  Result<std::vector<CursorEntry>> ListCursors(const std::string& repo) const;

  // Deletes the oldest events beyond the newest `keep`.
  Status TrimEvents(uint64_t keep);

  StateStore* store() const { return store_; }
  Clock* clock() const { return clock_; }
  const RetryPolicy& retry_policy() const { return retry_; }

 private:
  static constexpr size_t kStripes = 64;
  std::mutex& StripeFor(uint64_t id) const { return stripes_[id % kStripes]; }
  void AddEvent(WriteBatch* b, const Run& run, RunState from, int64_t now);
  // The run record, and its `active` key when it enters (was_active false)
  // or leaves (terminal) the active set.
  static void PutRun(WriteBatch* b, const Run& run, bool was_active);
  // Reads run `id` under its stripe lock, lets `decide` mutate it and name
  // the target state (or refuse), checks legality and commits.
  Result<Run> Apply(uint64_t id, const std::function<Result<RunState>(Run&)>& decide);
  // A failed attempt: retry_wait with backoff while attempts remain, else
  // `final_state`.
  RunState AfterFailedAttempt(Run& r, RunState final_state, int64_t now) const;

  StateStore* store_;
  Clock* clock_;
  RetryPolicy retry_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> next_event_{1};
  // The stripes serialize read-modify-write of store keys (a run by id, a
  // run key by hash), not members of this object, so nothing here is
  // GUARDED_BY them; Enqueue holds a set of stripes chosen at run time, which
  // the thread-safety analysis cannot express. Hence plain std::mutex.
  mutable std::array<std::mutex, kStripes> stripes_;
  mutable std::array<std::mutex, kStripes> key_stripes_;  // by hash of the run key
};

}  // namespace wtd

#endif  // WTD_RUNS_RUN_STORE_H_
