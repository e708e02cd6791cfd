// The records wtd keeps in its state store, and their encoding.
//
// Every value is a sealed record:
//   byte 0      kRecordMagic (0xD7)
//   byte 1      RecordKind
//   bytes 2..5  CRC-32C (little-endian) of bytes 1 and 6..end
//   bytes 6..   cereal portable binary archive of the record; cereal writes
//               the record's class version before its fields
// A damaged or truncated value fails the CRC (or, failing that, cereal) and
// decodes to Status::Corruption; decoding never crashes. Newer fields are
// appended under a higher class version, so older records still decode with
// those fields at their defaults. docs/design/store.md documents each record.
//
// Thread-safety: plain values and pure functions.
#ifndef WTD_STORE_RECORDS_H_
#define WTD_STORE_RECORDS_H_

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wtd/status.h"

namespace wtd {

inline constexpr uint8_t kRecordMagic = 0xD7;
inline constexpr size_t kRecordHeaderSize = 6;

enum class RecordKind : uint8_t {
  kRun = 1,
  kCursor = 2,
  kLease = 3,
  kIdem = 4,
  kEvent = 5,
  kWatchedRepos = 6,
  kSlot = 7,
  kRunStats = 8,
};

// The states of a run; see docs/design/state-machine.md. Values are stored:
// never renumber.
enum class RunState : uint8_t {
  kPending = 0,
  kLeased = 1,
  kPreparing = 2,  // not entered yet: reserved for a run whose worktree is being made
  kReady = 3,
  kRunning = 4,
  kRetryWait = 5,
  kSucceeded = 6,
  kFailed = 7,
  kTimedOut = 8,
  kCancelled = 9,
  // The attempt's outcome is recorded (with the state it will end in); its
  // receipt is being written and its lock released.
  kFinishing = 10,
  // Terminal: another daemon's receipt says the job is done for this key.
  kSkipped = 11,
};
inline constexpr int kRunStateCount = 12;

std::string_view RunStateName(RunState s);
Result<RunState> ParseRunState(std::string_view name);
bool IsTerminal(RunState s);

// What a run is for: one job on one commit in one worktree of one repository.
// At most one run exists per key and series (the run_keys family enforces it).
struct RunKey {
  std::string repo;      // absolute path of the repository's main worktree
  std::string worktree;  // worktree id: "main" or the admin name
  std::string job;       // job name (file stem)
  std::string sha;       // 40 hex digits
  // The attempt series (Run class version 6): 0 for the poller's runs; each
  // `wtctl trigger --again` makes the next. Part of the run key, not of the
  // lock name, so two series of one job on one commit never run at once.
  uint32_t series = 0;

  friend bool operator==(const RunKey&, const RunKey&) = default;
};

// Where a run's job runs (the job key `isolation`). Values are stored.
enum class Isolation : uint8_t {
  kCommit = 0,   // a daemon-owned worktree at exactly the run's sha
  kInplace = 1,  // the watched worktree, as it is (one such run per worktree at a time)
};
// Whether a failed run's worktree is kept (the job key `keep_worktree`).
enum class KeepWorktree : uint8_t {
  kNever = 0,
  kOnFailure = 1,
};
std::string_view IsolationName(Isolation i);        // "commit", "inplace"
std::string_view KeepWorktreeName(KeepWorktree k);  // "never", "on_failure"

struct Run {
  uint64_t id = 0;
  RunKey key;
  std::string branch;         // branch the commit was found on
  std::string worktree_path;  // where the job runs
  RunState state = RunState::kPending;
  uint32_t attempt = 0;  // processes started so far (1 while the first runs)
  uint32_t max_attempts = 1;
  int64_t retry_backoff_ms = 0;
  int64_t timeout_ms = 0;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  int64_t started_at_ms = 0;   // 0 = never started
  int64_t finished_at_ms = 0;  // 0 = not terminal
  int64_t not_before_ms = 0;   // retry_wait: earliest next attempt
  // The process of the current (or last) attempt; set when running.
  int32_t pid = 0;
  uint64_t pid_start_time = 0;
  std::string boot_id;
  uint64_t incarnation = 0;  // daemon incarnation that started it
  // Outcome of the last attempt.
  int32_t exit_code = -1;
  int32_t term_signal = 0;
  int64_t duration_ms = 0;
  std::string log_path;
  std::string error;
  // Class version 2.
  uint64_t log_bytes = 0;
  bool log_truncated = false;
  // Class version 3: what the run executes, resolved from the commit's tree
  // when it was enqueued, so dispatch never reads git. An older record has
  // an empty command and is resolved at dispatch instead.
  std::string command;                                   // run by /bin/sh -c
  std::vector<std::pair<std::string, std::string>> env;  // the job's env.* entries
  std::string commit_subject;
  std::string commit_author;  // "Name <email>"
  int64_t commit_time_s = 0;  // committer time
  // Class version 4.
  uint32_t lock_waits = 0;   // times its lock was found held by another (no attempt used)
  uint64_t lease_token = 0;  // fencing token of its current or last lease; 0: never leased
  RunState finish_state = RunState::kPending;  // finishing: the state it ends in
  // Class version 5 (an older record reads as isolation commit, keep never).
  Isolation isolation = Isolation::kCommit;
  KeepWorktree keep_worktree = KeepWorktree::kNever;
  std::string slot;  // the worktree slot of its current or last attempt ("" inplace)
  // Class version 7: `pid` is the attempt's supervisor (wtd-exec staying the
  // job's parent, docs/design/supervisor.md), which records the outcome in
  // <state-dir>/runs/<id>.exit, and not the job itself. An older record
  // reads as false: its pid is the job's.
  bool supervised = false;

  friend bool operator==(const Run&, const Run&) = default;
};

// Where polling of one (repo, worktree, branch) stands. The commits it
// counts as processed are those reachable from `sha` or from any of
// `frontier` (docs/design/loop.md).
struct Cursor {
  std::string sha;  // the last HEAD all of whose new commits were enqueued; may be empty
  int64_t commit_time_s = 0;
  int64_t updated_at_ms = 0;
  // Class version 2. While a walk toward a newer HEAD is cut short (budget):
  // the newest commits taken so far and those behind the lookback window.
  std::vector<std::string> frontier;
  uint64_t skipped = 0;  // commits passed over without runs (max-backfill, unreadable)

  friend bool operator==(const Cursor&, const Cursor&) = default;
};

// The states of a lease row. Values are stored: never renumber.
enum class LeaseState : uint8_t {
  kHeld = 0,       // the run holds the lock; its ref exists or is about to
  kReleasing = 1,  // the run let go: its ref is to be deleted, then the row
};
inline constexpr int kLeaseStateCount = 2;
std::string_view LeaseStateName(LeaseState s);

// A lock lease (locks family, keyed by repo and lock name): who holds the
// lock `<worktree-id>/<job>/<sha>` of one repository, until when, under
// which fencing token, and which owner blob its ref should point at.
struct Lease {
  std::string host;
  std::string boot_id;
  int32_t pid = 0;  // the daemon
  uint64_t pid_start_time = 0;
  uint64_t incarnation = 0;
  int64_t acquired_at_ms = 0;
  int64_t expires_at_ms = 0;
  uint64_t fencing_token = 0;
  uint64_t run_id = 0;
  // Class version 2.
  std::string repo;  // RunKey.repo
  std::string name;  // <worktree-id>/<job>/<sha>
  LeaseState state = LeaseState::kHeld;
  std::string ref_blob;       // hex id of the owner blob the ref should point at
  std::string prev_ref_blob;  // the one before the last renewal (a crash may leave it)
  int32_t job_pid = 0;        // the job's process once it runs; 0 before
  uint64_t job_start_time = 0;

  friend bool operator==(const Lease&, const Lease&) = default;
};

// The repositories the daemon watches and where it keeps their locks
// (meta/watched_repos), so that operator commands can find the locks while
// the daemon is down. Version 1 held only the paths; the lock settings then
// read as their defaults.
struct WatchedRepos {
  std::vector<std::string> paths;             // sorted, no duplicates
  std::string locks_root = "refs/wtd/locks";  // --locks-root
  std::string notes_ref = "refs/notes/wtd";   // --notes-ref
  int64_t lock_grace_ms = 60'000;             // --lock-grace-s, in ms

  friend bool operator==(const WatchedRepos&, const WatchedRepos&) = default;
};

// The statuses of an idempotency record (docs/design/idempotency.md).
// Values are stored: never renumber.
enum class IdemStatus : uint8_t {
  kInProgress = 0,  // an owner is doing the operation (or died doing it)
  kCompleted = 1,   // done: its result is cached
  kFailed = 2,      // the last attempt failed; retried from next_retry_at_ms
  kRolledBack = 3,  // a dead owner's half-done work was undone; retried at once
  kBlocked = 4,     // attempts exhausted: refused until an operator unblocks it
};
inline constexpr int kIdemStatusCount = 5;
// "in_progress", "completed", "failed", "rolled_back", "blocked".
std::string_view IdemStatusName(IdemStatus s);
Result<IdemStatus> ParseIdemStatus(std::string_view name);

// Who does (or did) an idempotent operation: a daemon process, named as a
// lease owner is.
struct IdemOwner {
  std::string host;
  std::string boot_id;
  int32_t pid = 0;
  uint64_t pid_start_time = 0;
  uint64_t incarnation = 0;  // of the state store, when it began

  friend bool operator==(const IdemOwner&, const IdemOwner&) = default;
};

// An idempotency record (idem family), keyed by
// Sha256Hex(op + '\0' + params) (IdemStore, src/idem).
struct IdemRecord {
  std::string op;
  std::string params;  // canonical, as hashed into the key
  IdemStatus status = IdemStatus::kInProgress;
  uint32_t attempts = 0;         // attempts begun (reset by an operator's unblock)
  int64_t next_retry_at_ms = 0;  // failed: earliest next attempt
  std::string result;            // completed: what the operation returned
  std::string rollback_payload;  // what undoing the current attempt must remove
  std::string error;             // the last failure or rollback
  // Class version 2.
  int64_t first_at_ms = 0;  // the first attempt's begin
  int64_t last_at_ms = 0;   // the last write of the record
  IdemOwner owner;          // who began the current (or last) attempt

  friend bool operator==(const IdemRecord&, const IdemRecord&) = default;
};

// The states of a worktree slot (docs/design/worktrees.md). Values are
// stored: never renumber.
enum class SlotState : uint8_t {
  kCreating = 0,  // its worktree is being added; its idempotency record names the pieces
  kFree = 1,      // ready for the next run
  kBusy = 2,      // a run's job uses it (run_id)
  kKept = 3,      // a failed run's (run_id), kept aside for inspection
  kManual = 4,    // made by an operator (`wtctl worktree create`); never given to a run
  kRemoving = 5,  // being removed: the pieces go first, then the record
};
inline constexpr int kSlotStateCount = 6;
// "creating", "free", "busy", "kept", "manual", "removing".
std::string_view SlotStateName(SlotState s);

// A daemon-owned worktree (slots family, keyed by name).
struct Slot {
  std::string name;  // also its admin entry's name: <common>/worktrees/<name>
  std::string repo;  // the repository (RunKey.repo)
  std::string path;  // <worktree root>/<name>
  std::string sha;   // the commit checked out; "" when unknown
  SlotState state = SlotState::kCreating;
  uint64_t run_id = 0;   // busy, kept: the run
  std::string idem_key;  // the idempotency record of its creation
  std::string branch;    // the branch its creation makes and deletes again
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;

  friend bool operator==(const Slot&, const Slot&) = default;
};

// The upper bounds (ms, inclusive) of the duration histogram of RunStats:
// log-scale 1-2-5 steps from 1 ms to 100000 s, then +Inf. Stored as bucket
// counts by position: never change them.
inline constexpr int64_t kRunStatsBucketBounds[] = {
    1,          2,          5,          10,         20,        50,        100,
    200,        500,        1'000,      2'000,      5'000,     10'000,    20'000,
    50'000,     100'000,    200'000,    500'000,    1'000'000, 2'000'000, 5'000'000,
    10'000'000, 20'000'000, 50'000'000, 100'000'000};
// The finite buckets above and the +Inf one.
inline constexpr size_t kRunStatsBuckets = std::size(kRunStatsBucketBounds) + 1;
// The slowest runs and newest failing runs one RunStats keeps (enough for
// the top ones of any merged window to be exact).
inline constexpr size_t kRunStatsSlowest = 3;
inline constexpr size_t kRunStatsFailures = 5;

// One run named in a RunStats record.
struct RunStatsRun {
  uint64_t run_id = 0;
  int64_t duration_ms = 0;  // slowest: its duration
  RunState state = RunState::kFailed;
  int64_t at_ms = 0;  // when it became terminal

  friend bool operator==(const RunStatsRun&, const RunStatsRun&) = default;
};

// What the runs of one (repo, worktree, job) that became terminal in one
// hour came to (meta "run_stats\0" + hour + repo + worktree + job, written
// in the batch that makes each run terminal; docs/design/stats.md).
struct RunStats {
  std::string repo;
  std::string worktree;
  std::string job;
  int64_t hour_ms = 0;  // start of the hour (UTC, ms since the epoch)
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t timed_out = 0;
  uint64_t cancelled = 0;
  uint64_t skipped = 0;
  uint64_t attempts = 0;  // sum of Run::attempt
  uint64_t timed = 0;     // runs with a duration (those that started)
  int64_t duration_sum_ms = 0;
  uint64_t lock_waits = 0;            // sum of Run::lock_waits
  std::vector<uint64_t> histogram;    // kRunStatsBuckets counts (empty: all zero)
  std::vector<RunStatsRun> slowest;   // longest first, ties by lower id
  std::vector<RunStatsRun> failures;  // failed or timed out, newest first

  uint64_t runs() const { return succeeded + failed + timed_out + cancelled + skipped; }
  friend bool operator==(const RunStats&, const RunStats&) = default;
};

// One state transition of one run (events family).
struct Event {
  uint64_t run_id = 0;
  RunState from = RunState::kPending;
  RunState to = RunState::kPending;
  uint32_t attempt = 0;
  int64_t at_ms = 0;

  friend bool operator==(const Event&, const Event&) = default;
};

std::string EncodeRun(const Run& r);
std::string EncodeCursor(const Cursor& c);
std::string EncodeLease(const Lease& l);
std::string EncodeIdem(const IdemRecord& r);
std::string EncodeEvent(const Event& e);
std::string EncodeWatchedRepos(const WatchedRepos& w);
std::string EncodeSlot(const Slot& s);
std::string EncodeRunStats(const RunStats& s);

// Corruption (naming the record kind) on any damage.
Result<Run> DecodeRun(std::string_view value);
Result<Cursor> DecodeCursor(std::string_view value);
Result<Lease> DecodeLease(std::string_view value);
Result<IdemRecord> DecodeIdem(std::string_view value);
Result<Event> DecodeEvent(std::string_view value);
Result<WatchedRepos> DecodeWatchedRepos(std::string_view value);
Result<Slot> DecodeSlot(std::string_view value);
Result<RunStats> DecodeRunStats(std::string_view value);

// Wraps a cereal payload in the record envelope (exposed for tests that
// write records of an older class version).
std::string SealRecord(RecordKind kind, std::string_view payload);
// Checks the envelope and returns the payload.
Result<std::string_view> UnsealRecord(RecordKind kind, std::string_view value);

}  // namespace wtd

#endif  // WTD_STORE_RECORDS_H_
