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
// Lock leases (docs/design/store.md, "Lock leases"): a run that holds the
// lock `<worktree-id>/<job>/<sha>` of its repository has a lease row in the
// `locks` family, written in the batch that moves it pending -> leased, with
// a fencing token from a store-wide counter that is never reset or reused.
// Every later write about the lease is given that token and checks it
// against the row in the batch that applies it; a stale token is refused
// (FailedPrecondition "lease NAME in REPO fenced: token T is stale, current
// C") and nothing is written. Every transition that ends or abandons the
// run's hold on the lock marks the row `releasing` in the same batch; the
// caller deletes the lock ref, then DropLease deletes the row.
//
// Thread-safety: all methods may be called concurrently. A transition's
// read-check-write is serialized per run (striped mutexes); an enqueue's
// check-then-insert is serialized per run key (striped by key hash); a lease
// row's read-check-write per lock (striped by lease key hash), taken after
// the run's stripe when both are needed. AcquireLease calls are serialized
// with each other (the token counter), LockContended calls likewise (the
// per-job counter). A transition that makes a run terminal also
// read-modify-writes its hourly RunStats record (runs/run_stats.h) in its
// batch, under a stripe by the record's key taken after the run's stripe and
// the lease stripe (a damaged record is replaced, not allowed to hold up the
// run). No lock is held around unrelated writes. Cursor updates
// of one worktree must come from one thread (the poller).
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
#include "base/mutex.h"
#include "base/process_table.h"
#include "runs/retry_policy.h"
#include "store/records.h"
#include "store/state_store.h"
#include "wtd/status.h"

namespace wtd {

// Whether the state machine allows from -> to.
bool IsLegalTransition(RunState from, RunState to);

// Whether a run in state `s` may hold its lock lease: leased, preparing,
// ready, running, finishing.
bool IsLeaseHoldingState(RunState s);

// How many interrupted attempts a run may have beyond max_attempts.
inline constexpr uint32_t kInterruptAllowance = 3;

// Where RunStore::Interrupt takes running run `r`: retry_wait while
// attempt < max_attempts + kInterruptAllowance, else failed.
RunState InterruptTarget(const Run& r);

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
  // Where it runs (Run class version 5).
  Isolation isolation = Isolation::kCommit;
  KeepWorktree keep_worktree = KeepWorktree::kNever;
};

// What an explicit enqueue (`wtctl trigger`) answers: the run of its key,
// and whether this call created it.
struct TriggeredRun {
  Run run;
  bool created = false;
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

// The owner a lease is acquired for, and the blob its ref will point at.
struct LeaseRequest {
  std::string host;
  std::string boot_id;
  int32_t pid = 0;  // the daemon
  uint64_t pid_start_time = 0;
  uint64_t incarnation = 0;
  int64_t ttl_ms = 0;    // expires_at = now + ttl_ms
  std::string ref_blob;  // hex id of the owner blob, computed by the caller
  // When set, replaces ref_blob: called with the new row (its fencing token,
  // acquired and expires filled) inside AcquireLease's serialized section,
  // so that the blob can name the token the row gets. An error refuses the
  // acquisition; nothing is written.
  std::function<Result<std::string>(const wtd::Lease& row)> ref_blob_of;
};

struct LeasedRun {
  Run run;
  wtd::Lease lease;
};

// What MarkRunning does to the lease of a run that holds one.
struct LeaseUpdate {
  uint64_t token = 0;        // the run's fencing token
  std::string new_ref_blob;  // the owner blob with the job's identity; "" keeps ref_blob
};

// How often runs of one job found their lock held by another owner.
// One entry of the events family: its sequence number and the transition.
struct EventEntry {
  uint64_t seq = 0;
  Event event;
};

struct JobLockWaits {
  std::string repo;
  std::string job;
  uint64_t waits = 0;
};

// What a RunStore tells its observer (the daemon's metrics), after the
// batch of each change committed, on the thread that made it. Either may be
// empty. They must be quick and must not call back into the RunStore.
struct RunStoreObserver {
  // Run `after` moved from `from` to after.state.
  std::function<void(RunState from, const Run& after)> transition;
  // Run `run` found its lock held by another owner (LockContended).
  std::function<void(const Run& run)> lock_contended;
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
  // Refused for a run that holds a lease: use the overload below.
  Result<Run> MarkRunning(uint64_t id, const ProcessIdentity& process, uint64_t incarnation,
                          const std::string& log_path);
  // The same for a run holding a lease: in the same batch, checks the
  // lease's token and records the process as the lease's job_pid and
  // job_start_time (and moves its ref blob, as RenewLease does).
  Result<Run> MarkRunning(uint64_t id, const ProcessIdentity& process, uint64_t incarnation,
                          const std::string& log_path, const LeaseUpdate& lease);
  // running -> succeeded | retry_wait | failed | timed_out, for a run
  // without a lease (one holding a lease goes through BeginFinish and
  // CompleteFinish, so that its receipt is written in between).
  Result<Run> Finish(uint64_t id, const AttemptOutcome& outcome);
  // ready -> retry_wait | failed when the process could not be started.
  Result<Run> SpawnFailed(uint64_t id, const std::string& error);
  // running -> retry_wait | failed: the attempt was interrupted (daemon
  // died or stopped). It counts as an attempt, but is retried at once while
  // attempt < max_attempts + kInterruptAllowance.
  Result<Run> Interrupt(uint64_t id, const std::string& reason);
  // A running run started by incarnation `from_incarnation` whose supervisor
  // still runs becomes this incarnation's (`incarnation`): adopted at
  // recovery (docs/design/supervisor.md). Not a transition: the state stays
  // running, no event. For a run holding a lease, `reown` rewrites its held
  // row (new owner, expiry, ref blob) in the same batch; without one the row
  // is left as it is. FailedPrecondition when the run is not running or is
  // another incarnation's.
  Result<Run> Adopt(uint64_t id, uint64_t from_incarnation, uint64_t incarnation,
                    const std::function<Status(wtd::Lease*)>& reown = nullptr);
  // leased|preparing|ready -> pending: no process ran, no attempt used.
  Result<Run> Requeue(uint64_t id, RunState from, const std::string& reason);
  // retry_wait -> pending once now >= not_before.
  Result<Run> Wake(uint64_t id);
  Result<Run> Cancel(uint64_t id, RunState from, const std::string& reason);

  // --- Lock leases. Each call below that changes something commits one
  // synced batch; a refusal (FailedPrecondition) writes nothing. ---

  // pending -> leased, with a `held` lease row at the run's lock name under a
  // fresh fencing token. Refused when a row exists there already (another
  // run of this store holds it, or this run's earlier lease is still
  // releasing: drop it first).
  Result<LeasedRun> AcquireLease(uint64_t id, const LeaseRequest& request);
  // leased -> retry_wait without using an attempt: the lock is held by
  // another owner. Deletes the lease row (its ref was never made), counts
  // the wait on the run (lock_waits) and on its job (JobLockWaits), and sets
  // not_before_ms and error = reason.
  Result<Run> LockContended(uint64_t id, uint64_t token, int64_t not_before_ms,
                            const std::string& reason);
  // Moves a held lease's expiry and ref blob: prev_ref_blob = the old
  // ref_blob, ref_blob = new_ref_blob ("" keeps both).
  Result<wtd::Lease> RenewLease(const std::string& repo, const std::string& name, uint64_t token,
                                int64_t new_expires_ms, const std::string& new_ref_blob);
  // running -> finishing with the attempt's outcome and the state it will
  // end in, decided as Finish decides; the lease stays held. `token` is the
  // run's lease token (0 for a run without a lease).
  Result<Run> BeginFinish(uint64_t id, uint64_t token, const AttemptOutcome& outcome);
  // finishing -> the state BeginFinish recorded; the lease becomes
  // `releasing` in the same batch.
  Result<Run> CompleteFinish(uint64_t id, uint64_t token);
  // leased | finishing -> skipped: another daemon's receipt says the job is
  // done; error = "done by " + by ("HOST pid N run R"); the lease becomes
  // `releasing`.
  Result<Run> SkipDone(uint64_t id, uint64_t token, const std::string& by);
  // Deletes a lease row that is `releasing`, or held for a run that no
  // longer holds it. OK when there is no row; refused for another token or
  // while the run still holds it.
  Status DropLease(const std::string& repo, const std::string& name, uint64_t token);
  // Marks a held row `releasing` when its run no longer holds it (missing,
  // terminal, or holding nothing or another token): what recovery does with
  // an orphaned lease. Refused while the run holds it.
  Result<wtd::Lease> ReleaseOrphanLease(const std::string& repo, const std::string& name,
                                        uint64_t token);

  // Commits the write-ahead record of a reap (meta
  // "lock_reap/<repo>\x1f<name>\x1f<blob>" = `record`, JSON), before the
  // lock ref `name` of `repo` is deleted by compare-and-swap on `blob`. A
  // crash after it leaves the ref at that blob, judged stale again later.
  Status RecordLockReap(const std::string& repo, const std::string& name, const std::string& blob,
                        const std::string& record);

  Result<std::optional<wtd::Lease>> GetLease(const std::string& repo,
                                             const std::string& name) const;
  // Every lease row, in key order (repo, then name). An undecodable row
  // fails the listing, naming it.
  Result<std::vector<wtd::Lease>> ListLeases() const;
  // The row at run `id`'s lock name when it belongs to that run.
  Result<std::optional<wtd::Lease>> LeaseOfRun(uint64_t id) const;
  // The last fencing token handed out (0: none yet).
  uint64_t LastFencingToken() const EXCLUDES(token_mu_);
  Result<uint64_t> GetJobLockWaits(const std::string& repo, const std::string& job) const;

  Result<std::vector<JobLockWaits>> ListJobLockWaits() const;

  // --- Run statistics (docs/design/stats.md). ---

  // The RunStats record of one (repo, worktree, job) for the hour starting at
  // `hour_ms`; an empty record (no runs) when none is stored.
  Result<RunStats> GetRunStats(int64_t hour_ms, const std::string& repo,
                               const std::string& worktree, const std::string& job) const;
  // Calls `fn` with every RunStats record of the hours >= `since_hour_ms`,
  // oldest hour first; stops early when it returns false. Reads only those
  // records (one range scan of meta), never run history. An undecodable
  // record fails the listing, naming its hour.
  Status ScanRunStats(int64_t since_hour_ms, const std::function<bool(const RunStats&)>& fn) const;

  // --- Watched repositories (meta/watched_repos). ---

  // Records `w` (its paths sorted, duplicates dropped) unless it is what the
  // store holds already; returns whether it wrote.
  Result<bool> RecordWatchedRepos(wtd::WatchedRepos w) EXCLUDES(watched_mu_);
  // The record; no paths and the default lock settings when none was
  // recorded.
  Result<wtd::WatchedRepos> WatchedRepos() const;

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
  // Up to `limit` events with sequence numbers > `after`, oldest first
  // (`wtctl events`). An event that cannot be decoded fails the listing,
  // naming its sequence number.
  Result<std::vector<EventEntry>> ListEvents(uint64_t after, size_t limit) const;
  // The sequence number of the newest event stored (0: none).
  Result<uint64_t> LastEventSeq() const;

  // Set before the RunStore is shared between threads.
  void SetObserver(RunStoreObserver observer) { observer_ = std::move(observer); }
  // --- Retention (src/retention; docs/design/store.md, "Retention"). ---

  // Calls fn(id, run) for each run with id >= `from`, in id order, until fn
  // returns false. A record that cannot be decoded is passed as its error
  // (naming the run); the scan goes on if fn says so.
  Status ScanRunsFrom(uint64_t from,
                      const std::function<bool(uint64_t id, const Result<Run>& run)>& fn) const;
  // Deletes the records of runs `ids` in one synced batch, which also raises
  // meta/max_collected_run_id so that Init never hands out a collected id
  // again. Their run_keys entries stay: a commit whose run was collected is
  // never enqueued again. Refused (FailedPrecondition, nothing written) when
  // one of them is missing or not terminal.
  Status DeleteTerminalRuns(const std::vector<uint64_t>& ids);
  // The reap records (meta "lock_reap/..."), from the first key after
  // `after` ("" for the first), at most `limit` of them, in key order:
  // {key, JSON value}.
  Result<std::vector<std::pair<std::string, std::string>>> ListReapRecords(const std::string& after,
                                                                           size_t limit) const;
  // Deletes reap records by key, in one synced batch (keys without the
  // "lock_reap/" prefix are refused).
  Status DeleteReapRecords(const std::vector<std::string>& keys);

  StateStore* store() const { return store_; }
  Clock* clock() const { return clock_; }
  const RetryPolicy& retry_policy() const { return retry_; }

 private:
  static constexpr size_t kStripes = 64;
  std::mutex& StripeFor(uint64_t id) const { return stripes_[id % kStripes]; }
  std::mutex& LeaseStripeFor(const std::string& lease_key) const {
    return lease_stripes_[std::hash<std::string>()(lease_key) % kStripes];
  }
  std::mutex& StatsStripeFor(const std::string& stats_key) const {
    return stats_stripes_[std::hash<std::string>()(stats_key) % kStripes];
  }
  Result<RunStats> ReadRunStats(const std::string& key) const;
  // What a transition does to the run's lease row, in its batch: `row` is
  // the row at the run's lock name (read under the lease stripe). Refuses,
  // or adds its writes to `b`.
  using LeaseFn = std::function<Status(const Run& before, Run& after,
                                       const std::optional<wtd::Lease>& row, WriteBatch* b)>;
  // The default: a run that stops holding its lease (leaves the holding
  // states) marks its row releasing and forgets the token.
  static Status ReleaseIfLeaving(const Run& before, Run& after,
                                 const std::optional<wtd::Lease>& row, WriteBatch* b);
  Result<std::optional<wtd::Lease>> ReadLease(const std::string& key) const;
  void AddEvent(WriteBatch* b, const Run& run, RunState from, int64_t now);
  // The run record, and its `active` key when it enters (was_active false)
  // or leaves (terminal) the active set.
  static void PutRun(WriteBatch* b, const Run& run, bool was_active);
  // Reads run `id` under its stripe lock, lets `decide` mutate it and name
  // the target state (or refuse), checks legality and commits.
  Result<Run> Apply(uint64_t id, const std::function<Result<RunState>(Run&)>& decide,
                    const LeaseFn& lease = nullptr);
  // A failed attempt: retry_wait with backoff while attempts remain, else
  // `final_state`.
  RunState AfterFailedAttempt(Run& r, RunState final_state, int64_t now) const;
  // Records an attempt's outcome in `r` and returns the state it ends in.
  RunState RecordOutcome(Run& r, const AttemptOutcome& o, int64_t now) const;
  // A run in one of `from` that holds `token` (0: none) leaves its lease:
  // to `target(r)`, its held row marked releasing in the same batch.
  Result<Run> EndLease(uint64_t id, uint64_t token, const std::vector<RunState>& from,
                       const std::function<RunState(Run&)>& target);
  // Refuses while the run named by `row` still holds it.
  Status CheckNotHeldByRun(const wtd::Lease& row) const;

  StateStore* store_;
  Clock* clock_;
  RetryPolicy retry_;
  RunStoreObserver observer_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> next_event_{1};
  // The stripes serialize read-modify-write of store keys (a run by id, a
  // run key by hash), not members of this object, so nothing here is
  // GUARDED_BY them; Enqueue holds a set of stripes chosen at run time, which
  // the thread-safety analysis cannot express. Hence plain std::mutex.
  mutable std::array<std::mutex, kStripes> stripes_;
  mutable std::array<std::mutex, kStripes> key_stripes_;    // by hash of the run key
  mutable std::array<std::mutex, kStripes> lease_stripes_;  // by hash of the lease key
  mutable std::array<std::mutex, kStripes> stats_stripes_;  // by hash of the RunStats key
  // Held across an AcquireLease's commit, so that the stored counter only
  // grows and a token is never handed out twice.
  mutable Mutex token_mu_;
  uint64_t next_token_ GUARDED_BY(token_mu_) = 1;
  // Held across LockContended's read-modify-write of the per-job counter.
  Mutex contention_mu_;
  Mutex watched_mu_;  // RecordWatchedRepos' read-compare-write
};

}  // namespace wtd

#endif  // WTD_RUNS_RUN_STORE_H_
