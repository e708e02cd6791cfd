#include "runs/run_store.h"

#include <algorithm>

#include "base/crash_point.h"
#include "base/time_format.h"
#include "runs/run_stats.h"
#include "store/keys.h"

namespace wtd {
namespace {

using S = RunState;

// legal[from][to]; see docs/design/state-machine.md.
constexpr bool kLegal[kRunStateCount][kRunStateCount] = {
    // to: pend  leas   prep   ready  run    retry  succ   fail   tout   canc   fini   skip
    /* pending */ {false, true, false, false, false, false, false, false, false, true, false,
                   false},
    /* leased  */ {true, false, true, true, false, true, false, true, false, true, false, true},
    /* prepar. */ {true, false, false, true, false, true, false, true, false, true, false, false},
    /* ready   */ {true, false, false, false, true, true, false, true, false, true, false, false},
    /* running */ {false, false, false, false, false, true, true, true, true, true, true, false},
    /* retry   */
    {true, false, false, false, false, false, false, false, false, true, false, false},
    /* succ.   */
    {false, false, false, false, false, false, false, false, false, false, false, false},
    /* failed  */
    {false, false, false, false, false, false, false, false, false, false, false, false},
    /* t/out   */
    {false, false, false, false, false, false, false, false, false, false, false, false},
    /* canc.   */
    {false, false, false, false, false, false, false, false, false, false, false, false},
    /* finish. */ {false, false, false, false, false, true, true, true, true, false, false, true},
    /* skipped */
    {false, false, false, false, false, false, false, false, false, false, false, false},
};

// meta keys kept here (docs/design/store.md).
constexpr char kMetaFencingToken[] = "fencing_token";
constexpr char kMetaWatchedRepos[] = "watched_repos";
constexpr char kMetaMaxCollectedRunId[] = "max_collected_run_id";
constexpr std::string_view kReapPrefix = "lock_reap/";
constexpr std::string_view kMetaLockWaitsPrefix("lock_waits\0", 11);

std::string LockWaitsKey(std::string_view repo, std::string_view job) {
  std::string key(kMetaLockWaitsPrefix);
  key.append(repo).push_back('\0');
  key.append(job);
  return key;
}

std::string RunName(uint64_t id) { return "run " + std::to_string(id); }

Status Illegal(uint64_t id, RunState from, RunState to) {
  return Status::FailedPrecondition(RunName(id) + ": illegal transition " +
                                    std::string(RunStateName(from)) + " -> " +
                                    std::string(RunStateName(to)));
}

Status WrongState(const Run& r, RunState expected) {
  return Status::FailedPrecondition(RunName(r.id) + " is " + std::string(RunStateName(r.state)) +
                                    ", not " + std::string(RunStateName(expected)));
}

std::string LeaseName(std::string_view repo, std::string_view name) {
  return "lease " + std::string(name) + " in " + std::string(repo);
}

// Refuses unless `row` exists with fencing token `token`.
Status CheckFence(const std::optional<wtd::Lease>& row, std::string_view repo,
                  std::string_view name, uint64_t token) {
  if (!row) {
    return Status::FailedPrecondition(LeaseName(repo, name) + ": no lease (token " +
                                      std::to_string(token) + ")");
  }
  if (row->fencing_token != token) {
    return Status::FailedPrecondition(LeaseName(repo, name) + " fenced: token " +
                                      std::to_string(token) + " is " +
                                      (token < row->fencing_token ? "stale" : "unknown") +
                                      ", current " + std::to_string(row->fencing_token));
  }
  return Status::OK();
}

// CheckFence, and the row must be held.
Status CheckHeld(const std::optional<wtd::Lease>& row, std::string_view repo, std::string_view name,
                 uint64_t token) {
  WTD_RETURN_IF_ERROR(CheckFence(row, repo, name, token));
  if (row->state != LeaseState::kHeld) {
    return Status::FailedPrecondition(LeaseName(repo, name) + " is " +
                                      std::string(LeaseStateName(row->state)) + ", not held");
  }
  return Status::OK();
}

// Refuses unless `token` is the one run `r` holds (0 for a run without a
// lease).
Status CheckRunToken(const Run& r, uint64_t token) {
  if (r.lease_token == token) return Status::OK();
  if (r.lease_token == 0) {
    return Status::FailedPrecondition(RunName(r.id) + " holds no lease (token " +
                                      std::to_string(token) + " given)");
  }
  return Status::FailedPrecondition(
      LeaseName(r.key.repo, LockName(r.key)) + " fenced: token " + std::to_string(token) + " is " +
      (token < r.lease_token ? "stale" : "unknown") + ", current " + std::to_string(r.lease_token));
}

void PutLease(WriteBatch* b, const wtd::Lease& l) {
  b->Put(Family::kLocks, EncodeLeaseKey(l.repo, l.name), EncodeLease(l));
}

// Moves the ref blob as a renewal does; "" keeps it.
void MoveRefBlob(Lease* l, const std::string& new_ref_blob) {
  if (new_ref_blob.empty()) return;
  l->prev_ref_blob = l->ref_blob;
  l->ref_blob = new_ref_blob;
}

}  // namespace

bool IsLeaseHoldingState(RunState s) {
  return s == S::kLeased || s == S::kPreparing || s == S::kReady || s == S::kRunning ||
         s == S::kFinishing;
}

bool IsLegalTransition(RunState from, RunState to) {
  auto f = static_cast<size_t>(from), t = static_cast<size_t>(to);
  return f < kRunStateCount && t < kRunStateCount && kLegal[f][t];
}

RunStore::RunStore(StateStore* store, Clock* clock, RetryPolicy retry)
    : store_(store), clock_(clock), retry_(std::move(retry)) {}

Status RunStore::Init() {
  WTD_ASSIGN_OR_RETURN(std::string last_run, store_->LastKey(Family::kRuns));
  if (!last_run.empty()) {
    WTD_ASSIGN_OR_RETURN(uint64_t id, DecodeU64Key(last_run));
    next_id_ = id + 1;
  }
  // Collected runs leave no key in `runs`: their ids are never handed out
  // again (run_keys and events still name them).
  Result<std::string> collected = store_->Get(Family::kMeta, kMetaMaxCollectedRunId);
  if (!collected.ok() && !collected.status().IsNotFound()) return collected.status();
  if (collected.ok()) {
    Result<uint64_t> id = DecodeU64Key(*collected);
    if (!id.ok()) return id.status().WithContext("meta/max_collected_run_id");
    if (*id + 1 > next_id_) next_id_ = *id + 1;
  }
  WTD_ASSIGN_OR_RETURN(std::string last_event, store_->LastKey(Family::kEvents));
  if (!last_event.empty()) {
    WTD_ASSIGN_OR_RETURN(uint64_t seq, DecodeU64Key(last_event));
    next_event_ = seq + 1;
  }
  Result<std::string> token = store_->Get(Family::kMeta, kMetaFencingToken);
  if (!token.ok() && !token.status().IsNotFound()) return token.status();
  if (token.ok()) {
    Result<uint64_t> last = DecodeU64Key(*token);
    if (!last.ok()) return last.status().WithContext("meta/fencing_token");
    MutexLock lock(&token_mu_);
    next_token_ = *last + 1;
  }
  return Status::OK();
}

void RunStore::PutRun(WriteBatch* b, const Run& run, bool was_active) {
  std::string key = EncodeU64Key(run.id);
  b->Put(Family::kRuns, key, EncodeRun(run));
  // `active` changes only when a run enters it or leaves it: a transition
  // between two non-terminal states finds its key there already.
  if (IsTerminal(run.state)) {
    b->Delete(Family::kActive, key);
  } else if (!was_active) {
    b->Put(Family::kActive, key, "");
  }
}

void RunStore::AddEvent(WriteBatch* b, const Run& run, RunState from, int64_t now) {
  Event e{run.id, from, run.state, run.attempt, now};
  b->Put(Family::kEvents, EncodeU64Key(next_event_.fetch_add(1)), EncodeEvent(e));
}

Result<std::vector<EventEntry>> RunStore::ListEvents(uint64_t after, size_t limit) const {
  std::vector<EventEntry> out;
  Status damaged;
  WTD_RETURN_IF_ERROR(store_->ScanFrom(
      Family::kEvents, EncodeU64Key(after + 1), [&](std::string_view k, std::string_view v) {
        if (out.size() >= limit) return false;
        Result<uint64_t> seq = DecodeU64Key(k);
        Result<Event> e = DecodeEvent(v);
        if (!seq.ok() || !e.ok()) {
          damaged = Status::Corruption("events/" + (seq.ok() ? std::to_string(*seq) : "?") + ": " +
                                       (e.ok() ? "bad key" : e.status().message()));
          return false;
        }
        out.push_back(EventEntry{*seq, *e});
        return true;
      }));
  WTD_RETURN_IF_ERROR(damaged);
  return out;
}

Result<uint64_t> RunStore::LastEventSeq() const {
  WTD_ASSIGN_OR_RETURN(std::string last, store_->LastKey(Family::kEvents));
  if (last.empty()) return uint64_t{0};
  return DecodeU64Key(last);
}

Result<std::vector<Run>> RunStore::Enqueue(const std::vector<NewRun>& runs,
                                           const std::optional<CursorUpdate>& cursor) {
  // The check-then-insert on run_keys is serialized per key stripe (locked
  // in ascending order), so enqueues of unrelated keys share group commits.
  std::vector<size_t> stripes;
  for (const NewRun& n : runs) {
    stripes.push_back(std::hash<std::string>()(EncodeRunKey(n.key)) % kStripes);
  }
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  for (size_t i : stripes) locks.emplace_back(key_stripes_[i]);
  int64_t now = clock_->NowMs();
  WriteBatch b;
  std::vector<Run> created;
  std::vector<std::string> keys_in_batch;
  for (const NewRun& n : runs) {
    WTD_RETURN_IF_ERROR(CheckKeyPart("repo", n.key.repo));
    WTD_RETURN_IF_ERROR(CheckKeyPart("worktree", n.key.worktree));
    WTD_RETURN_IF_ERROR(CheckKeyPart("job", n.key.job));
    WTD_RETURN_IF_ERROR(CheckKeyPart("sha", n.key.sha));
    std::string rk = EncodeRunKey(n.key);
    if (std::find(keys_in_batch.begin(), keys_in_batch.end(), rk) != keys_in_batch.end()) continue;
    Result<std::string> existing = store_->Get(Family::kRunKeys, rk);
    if (existing.ok()) continue;
    if (!existing.status().IsNotFound()) return existing.status();
    Run r;
    r.id = next_id_.fetch_add(1);
    r.key = n.key;
    r.branch = n.branch;
    r.worktree_path = n.worktree_path;
    r.max_attempts = std::max<uint32_t>(1, n.max_attempts);
    r.retry_backoff_ms = n.retry_backoff_ms;
    r.timeout_ms = n.timeout_ms;
    r.command = n.command;
    r.env = n.env;
    r.commit_subject = n.commit_subject;
    r.commit_author = n.commit_author;
    r.commit_time_s = n.commit_time_s;
    r.isolation = n.isolation;
    r.keep_worktree = n.keep_worktree;
    r.created_at_ms = r.updated_at_ms = now;
    PutRun(&b, r, /*was_active=*/false);
    b.Put(Family::kRunKeys, rk, EncodeU64Key(r.id));
    AddEvent(&b, r, RunState::kPending, now);
    keys_in_batch.push_back(std::move(rk));
    created.push_back(std::move(r));
  }
  if (cursor) {
    WTD_RETURN_IF_ERROR(CheckKeyPart("branch", cursor->branch));
    b.Put(Family::kCursors, EncodeCursorKey(cursor->repo, cursor->worktree, cursor->branch),
          EncodeCursor(cursor->cursor));
  }
  if (b.empty()) return created;
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  WTD_CRASH_POINT("after_enqueue_commit");
  return created;
}

Result<Run> RunStore::Get(uint64_t id) const {
  Result<std::string> found = store_->Get(Family::kRuns, EncodeU64Key(id));
  if (!found.ok()) {
    if (found.status().IsNotFound()) return Status::NotFound(RunName(id) + " not found");
    return found.status();
  }
  const std::string& v = *found;
  Result<Run> r = DecodeRun(v);
  if (!r.ok()) return r.status().WithContext("runs/" + std::to_string(id));
  return r;
}

Result<uint64_t> RunStore::FindByKey(const RunKey& key) const {
  WTD_ASSIGN_OR_RETURN(std::string v, store_->Get(Family::kRunKeys, EncodeRunKey(key)));
  Result<uint64_t> id = DecodeU64Key(v);
  if (!id.ok()) return id.status().WithContext("run_keys/" + key.job + "@" + key.sha);
  return id;
}

Result<std::optional<wtd::Lease>> RunStore::ReadLease(const std::string& key) const {
  Result<std::string> v = store_->Get(Family::kLocks, key);
  if (!v.ok()) {
    if (v.status().IsNotFound()) return std::optional<wtd::Lease>();
    return v.status();
  }
  Result<wtd::Lease> l = DecodeLease(*v);
  if (!l.ok()) {
    std::vector<std::string_view> parts = SplitKey(key);
    return l.status().WithContext("locks/" + std::string(parts.back()));
  }
  return std::optional<wtd::Lease>(std::move(*l));
}

Status RunStore::ReleaseIfLeaving(const Run& before, Run& after,
                                  const std::optional<wtd::Lease>& row, WriteBatch* b) {
  if (before.lease_token == 0 || IsLeaseHoldingState(after.state)) return Status::OK();
  after.lease_token = 0;
  // Only the run's own row; one of another token is not this run's to touch.
  if (row && row->fencing_token == before.lease_token && row->state == LeaseState::kHeld) {
    wtd::Lease l = *row;
    l.state = LeaseState::kReleasing;
    PutLease(b, l);
  }
  return Status::OK();
}

Result<Run> RunStore::Apply(uint64_t id, const std::function<Result<RunState>(Run&)>& decide,
                            const LeaseFn& lease) {
  std::lock_guard<std::mutex> lock(StripeFor(id));
  WTD_ASSIGN_OR_RETURN(Run r, Get(id));
  const Run before = r;
  RunState from = r.state;
  WTD_ASSIGN_OR_RETURN(RunState to, decide(r));
  if (!IsLegalTransition(from, to)) return Illegal(id, from, to);
  int64_t now = clock_->NowMs();
  r.id = id;
  r.key = before.key;
  r.state = to;
  r.updated_at_ms = now;
  if (IsTerminal(to)) r.finished_at_ms = now;
  WriteBatch b;
  // The lease row is read and written under its own stripe, so that a
  // renewal or drop of the same row cannot slip between check and commit.
  std::string lease_key = EncodeLeaseKey(before.key.repo, LockName(before.key));
  std::lock_guard<std::mutex> lease_lock(LeaseStripeFor(lease_key));
  if (lease || before.lease_token != 0) {
    WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, ReadLease(lease_key));
    WTD_RETURN_IF_ERROR(lease ? lease(before, r, row, &b) : ReleaseIfLeaving(before, r, row, &b));
  }
  // A run that ends is counted in its hour's statistics in this same batch,
  // under the record's stripe (after the run's and the lease's), so that the
  // record counts exactly the runs that are terminal, each once.
  std::unique_lock<std::mutex> stats_lock;
  if (IsTerminal(to) && !IsTerminal(from)) {
    std::string stats_key = RunStatsKey(HourOf(now), r.key.repo, r.key.worktree, r.key.job);
    stats_lock = std::unique_lock<std::mutex>(StatsStripeFor(stats_key));
    Result<RunStats> stored = ReadRunStats(stats_key);
    // The record is derived data: one that no longer decodes is started
    // afresh (its hour loses what it held) rather than keep the run from
    // ending. A read error is still an error.
    if (!stored.ok() && !stored.status().IsCorruption()) return stored.status();
    RunStats stats = stored.ok() ? std::move(*stored) : RunStats();
    AddRunToStats(stats, r);
    b.Put(Family::kMeta, stats_key, EncodeRunStats(stats));
  }
  PutRun(&b, r, /*was_active=*/!IsTerminal(from));
  AddEvent(&b, r, from, now);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  if (observer_.transition) observer_.transition(from, r);
  return r;
}

Result<RunStats> RunStore::ReadRunStats(const std::string& key) const {
  Result<std::string> v = store_->Get(Family::kMeta, key);
  if (!v.ok()) {
    if (v.status().IsNotFound()) return RunStats();
    return v.status();
  }
  Result<RunStats> s = DecodeRunStats(*v);
  if (!s.ok()) return s.status().WithContext("meta/run_stats");
  return s;
}

Result<RunStats> RunStore::GetRunStats(int64_t hour_ms, const std::string& repo,
                                       const std::string& worktree, const std::string& job) const {
  return ReadRunStats(RunStatsKey(hour_ms, repo, worktree, job));
}

Status RunStore::ScanRunStats(int64_t since_hour_ms,
                              const std::function<bool(const RunStats&)>& fn) const {
  const std::string_view prefix = RunStatsPrefix();
  Status damaged;
  WTD_RETURN_IF_ERROR(store_->ScanFrom(
      Family::kMeta, RunStatsStartKey(since_hour_ms), [&](std::string_view k, std::string_view v) {
        if (k.substr(0, prefix.size()) != prefix) return false;
        Result<RunStats> s = DecodeRunStats(v);
        if (!s.ok()) {
          Result<uint64_t> hour = DecodeU64Key(k.substr(prefix.size(), 8));
          damaged = s.status().WithContext(
              "meta/run_stats/" +
              (hour.ok() ? FormatRfc3339(static_cast<int64_t>(*hour)) : std::string("?")));
          return false;
        }
        return fn(*s);
      }));
  return damaged;
}

Result<Run> RunStore::Transition(uint64_t id, RunState from, RunState to,
                                 const std::function<void(Run&)>& mutate) {
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != from) return WrongState(r, from);
    if (!IsLegalTransition(from, to)) return Illegal(id, from, to);
    RunKey key = r.key;
    if (mutate) mutate(r);
    r.key = std::move(key);
    return to;
  });
}

Result<Run> RunStore::Lease(uint64_t id) { return Transition(id, S::kPending, S::kLeased); }

Result<Run> RunStore::MarkReady(uint64_t id, RunState from) {
  return Transition(id, from, S::kReady);
}

namespace {

// A new attempt: ready -> running with `process`.
void StartAttempt(Run& r, const ProcessIdentity& process, uint64_t incarnation,
                  const std::string& log_path, int64_t now) {
  r.attempt += 1;
  r.pid = process.pid;
  r.pid_start_time = process.start_time;
  r.boot_id = process.boot_id;
  r.supervised = process.supervisor;
  r.incarnation = incarnation;
  r.started_at_ms = now;
  r.log_path = log_path;
  r.exit_code = -1;
  r.term_signal = 0;
  r.duration_ms = 0;
  r.log_bytes = 0;
  r.log_truncated = false;
  r.error.clear();
}

Status RefuseLeaseHolder(const Run& r, std::string_view what) {
  return Status::FailedPrecondition(RunName(r.id) + " holds " +
                                    LeaseName(r.key.repo, LockName(r.key)) + " (token " +
                                    std::to_string(r.lease_token) + "): " + std::string(what));
}

}  // namespace

Result<Run> RunStore::MarkRunning(uint64_t id, const ProcessIdentity& process, uint64_t incarnation,
                                  const std::string& log_path) {
  int64_t now = clock_->NowMs();
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != S::kReady) return WrongState(r, S::kReady);
    if (r.lease_token != 0) return RefuseLeaseHolder(r, "start it with its lease token");
    StartAttempt(r, process, incarnation, log_path, now);
    return S::kRunning;
  });
}

Result<Run> RunStore::MarkRunning(uint64_t id, const ProcessIdentity& process, uint64_t incarnation,
                                  const std::string& log_path, const LeaseUpdate& update) {
  int64_t now = clock_->NowMs();
  return Apply(
      id,
      [&](Run& r) -> Result<RunState> {
        if (r.state != S::kReady) return WrongState(r, S::kReady);
        if (update.token == 0) {
          return Status::InvalidArgument(RunName(id) + ": a lease token of 0 names no lease");
        }
        WTD_RETURN_IF_ERROR(CheckRunToken(r, update.token));
        StartAttempt(r, process, incarnation, log_path, now);
        return S::kRunning;
      },
      [&](const Run& before, Run&, const std::optional<wtd::Lease>& row, WriteBatch* b) -> Status {
        WTD_RETURN_IF_ERROR(
            CheckHeld(row, before.key.repo, LockName(before.key), before.lease_token));
        wtd::Lease l = *row;
        l.job_pid = process.pid;
        l.job_start_time = process.start_time;
        MoveRefBlob(&l, update.new_ref_blob);
        PutLease(b, l);
        return Status::OK();
      });
}

Result<Run> RunStore::Adopt(uint64_t id, uint64_t from_incarnation, uint64_t incarnation,
                            const std::function<Status(wtd::Lease*)>& reown) {
  std::lock_guard<std::mutex> lock(StripeFor(id));
  WTD_ASSIGN_OR_RETURN(Run r, Get(id));
  if (r.state != S::kRunning) return WrongState(r, S::kRunning);
  if (r.incarnation != from_incarnation) {
    return Status::FailedPrecondition(RunName(id) + " is incarnation " +
                                      std::to_string(r.incarnation) + "'s, not " +
                                      std::to_string(from_incarnation) + "'s");
  }
  r.incarnation = incarnation;
  r.updated_at_ms = clock_->NowMs();
  WriteBatch b;
  std::string lease_key = EncodeLeaseKey(r.key.repo, LockName(r.key));
  std::lock_guard<std::mutex> lease_lock(LeaseStripeFor(lease_key));
  if (reown && r.lease_token != 0) {
    WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, ReadLease(lease_key));
    WTD_RETURN_IF_ERROR(CheckHeld(row, r.key.repo, LockName(r.key), r.lease_token));
    wtd::Lease l = *row;
    WTD_RETURN_IF_ERROR(reown(&l));
    PutLease(&b, l);
  }
  PutRun(&b, r, /*was_active=*/true);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  return r;
}

RunState RunStore::AfterFailedAttempt(Run& r, RunState final_state, int64_t now) const {
  if (r.attempt < r.max_attempts) {
    r.not_before_ms = now + retry_.Delay(r.retry_backoff_ms, r.attempt);
    return S::kRetryWait;
  }
  return final_state;
}

RunState RunStore::RecordOutcome(Run& r, const AttemptOutcome& o, int64_t now) const {
  r.exit_code = o.exit_code;
  r.term_signal = o.term_signal;
  r.duration_ms = o.duration_ms;
  r.log_bytes = o.log_bytes;
  r.log_truncated = o.log_truncated;
  r.error = o.error;
  if (!o.timed_out && o.term_signal == 0 && o.exit_code == 0) return S::kSucceeded;
  return AfterFailedAttempt(r, o.timed_out ? S::kTimedOut : S::kFailed, now);
}

Result<Run> RunStore::Finish(uint64_t id, const AttemptOutcome& o) {
  int64_t now = clock_->NowMs();
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != S::kRunning) return WrongState(r, S::kRunning);
    if (r.lease_token != 0) {
      return RefuseLeaseHolder(r, "finish it with BeginFinish and CompleteFinish");
    }
    return RecordOutcome(r, o, now);
  });
}

Result<Run> RunStore::BeginFinish(uint64_t id, uint64_t token, const AttemptOutcome& o) {
  int64_t now = clock_->NowMs();
  Result<Run> r = Apply(
      id,
      [&](Run& r) -> Result<RunState> {
        if (r.state != S::kRunning) return WrongState(r, S::kRunning);
        WTD_RETURN_IF_ERROR(CheckRunToken(r, token));
        r.finish_state = RecordOutcome(r, o, now);
        return S::kFinishing;
      },
      [&](const Run& before, Run&, const std::optional<wtd::Lease>& row, WriteBatch*) -> Status {
        if (before.lease_token == 0) return Status::OK();
        return CheckHeld(row, before.key.repo, LockName(before.key), before.lease_token);
      });
  if (r.ok()) WTD_CRASH_POINT("after_finishing_commit");
  return r;
}

Result<Run> RunStore::EndLease(uint64_t id, uint64_t token, const std::vector<RunState>& from,
                               const std::function<RunState(Run&)>& target) {
  return Apply(
      id,
      [&](Run& r) -> Result<RunState> {
        if (std::find(from.begin(), from.end(), r.state) == from.end()) {
          std::string names;
          for (RunState f : from)
            names += (names.empty() ? "" : " or ") + std::string(RunStateName(f));
          return Status::FailedPrecondition(RunName(r.id) + " is " +
                                            std::string(RunStateName(r.state)) + ", not " + names);
        }
        WTD_RETURN_IF_ERROR(CheckRunToken(r, token));
        return target(r);
      },
      [&](const Run& before, Run& after, const std::optional<wtd::Lease>& row,
          WriteBatch* b) -> Status {
        if (before.lease_token == 0) return Status::OK();
        WTD_RETURN_IF_ERROR(
            CheckHeld(row, before.key.repo, LockName(before.key), before.lease_token));
        return ReleaseIfLeaving(before, after, row, b);
      });
}

Result<Run> RunStore::CompleteFinish(uint64_t id, uint64_t token) {
  Result<Run> r = EndLease(id, token, {S::kFinishing}, [](Run& r) { return r.finish_state; });
  if (r.ok()) WTD_CRASH_POINT("after_finish_complete_commit");
  return r;
}

Result<Run> RunStore::SkipDone(uint64_t id, uint64_t token, const std::string& by) {
  Result<Run> r = EndLease(id, token, {S::kLeased, S::kFinishing}, [&](Run& r) {
    r.error = "done by " + by;
    return S::kSkipped;
  });
  if (r.ok()) WTD_CRASH_POINT("after_skip_commit");
  return r;
}

Result<Run> RunStore::SpawnFailed(uint64_t id, const std::string& error) {
  int64_t now = clock_->NowMs();
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != S::kReady) return WrongState(r, S::kReady);
    r.attempt += 1;  // a start was attempted; bounded by max_attempts
    r.error = error;
    return AfterFailedAttempt(r, S::kFailed, now);
  });
}

Result<Run> RunStore::Interrupt(uint64_t id, const std::string& reason) {
  int64_t now = clock_->NowMs();
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != S::kRunning) return WrongState(r, S::kRunning);
    r.error = reason;
    RunState to = InterruptTarget(r);
    if (to == S::kRetryWait) r.not_before_ms = now;
    return to;
  });
}

RunState InterruptTarget(const Run& r) {
  // The job did not fail: it lost its daemon. Retry at once, beyond
  // max_attempts by a small allowance, so that a job that keeps killing
  // its daemon still ends.
  return r.attempt < r.max_attempts + kInterruptAllowance ? RunState::kRetryWait
                                                          : RunState::kFailed;
}

Result<Run> RunStore::Requeue(uint64_t id, RunState from, const std::string& reason) {
  return Transition(id, from, S::kPending, [&](Run& r) { r.error = reason; });
}

Result<Run> RunStore::Wake(uint64_t id) {
  int64_t now = clock_->NowMs();
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != S::kRetryWait) return WrongState(r, S::kRetryWait);
    if (now < r.not_before_ms) {
      return Status::FailedPrecondition(RunName(id) + " may not retry before " +
                                        std::to_string(r.not_before_ms));
    }
    return S::kPending;
  });
}

Result<Run> RunStore::Cancel(uint64_t id, RunState from, const std::string& reason) {
  return Transition(id, from, S::kCancelled, [&](Run& r) { r.error = reason; });
}

Result<std::vector<Run>> RunStore::ListActive(std::vector<Status>* damaged) const {
  std::vector<uint64_t> ids;
  Status scan_error;
  WTD_RETURN_IF_ERROR(store_->Scan(Family::kActive, "", [&](std::string_view k, std::string_view) {
    Result<uint64_t> id = DecodeU64Key(k);
    if (id.ok()) {
      ids.push_back(*id);
    } else if (damaged) {
      damaged->push_back(id.status().WithContext("active"));
    } else {
      scan_error = id.status().WithContext("active");
      return false;
    }
    return true;
  }));
  WTD_RETURN_IF_ERROR(scan_error);
  std::vector<Run> runs;
  runs.reserve(ids.size());
  for (uint64_t id : ids) {
    Result<Run> r = Get(id);
    if (r.ok()) {
      runs.push_back(std::move(*r));
    } else if (damaged) {
      damaged->push_back(r.status());
    } else {
      return r.status();
    }
  }
  return runs;
}

Result<std::vector<Run>> RunStore::List(const RunFilter& f) const {
  std::vector<Run> out;
  Status decode_error;
  WTD_RETURN_IF_ERROR(store_->Scan(
      Family::kRuns, "",
      [&](std::string_view k, std::string_view v) {
        Result<Run> r = DecodeRun(v);
        if (!r.ok()) {
          Result<uint64_t> id = DecodeU64Key(k);
          decode_error = r.status().WithContext("runs/" + (id.ok() ? std::to_string(*id) : "?"));
          return false;
        }
        if (!f.job.empty() && r->key.job != f.job) return true;
        if (!f.worktree.empty() && r->key.worktree != f.worktree) return true;
        if (f.state && r->state != *f.state) return true;
        out.push_back(std::move(*r));
        return f.limit == 0 || out.size() < f.limit;
      },
      /*reverse=*/true));
  WTD_RETURN_IF_ERROR(decode_error);
  return out;
}

Result<std::optional<Cursor>> RunStore::GetCursor(const std::string& repo,
                                                  const std::string& worktree,
                                                  const std::string& branch) const {
  std::string key = EncodeCursorKey(repo, worktree, branch);
  Result<std::string> v = store_->Get(Family::kCursors, key);
  if (!v.ok()) {
    if (v.status().IsNotFound()) return std::optional<Cursor>();
    return v.status();
  }
  Result<Cursor> c = DecodeCursor(*v);
  if (!c.ok()) return c.status().WithContext("cursors/" + worktree + "/" + branch);
  return std::optional<Cursor>(std::move(*c));
}

Status RunStore::PutCursor(const CursorUpdate& u) {
  Result<std::vector<Run>> r = Enqueue({}, u);
  return r.status();
}

Result<std::vector<CursorEntry>> RunStore::ListCursors(const std::string& repo) const {
  std::vector<CursorEntry> out;
  Status damaged;
  WTD_RETURN_IF_ERROR(store_->Scan(
      Family::kCursors, CursorRepoPrefix(repo), [&](std::string_view k, std::string_view v) {
        std::vector<std::string_view> parts = SplitKey(k);
        if (parts.size() != 3) {
          damaged = Status::Corruption("cursor key with " + std::to_string(parts.size()) +
                                       " parts in " + repo);
          return false;
        }
        Result<Cursor> c = DecodeCursor(v);
        if (!c.ok()) {
          damaged = c.status().WithContext("cursors/" + std::string(parts[1]) + "/" +
                                           std::string(parts[2]));
          return false;
        }
        out.push_back(CursorEntry{std::string(parts[1]), std::string(parts[2]), std::move(*c)});
        return true;
      }));
  WTD_RETURN_IF_ERROR(damaged);
  return out;
}

Status RunStore::TrimEvents(uint64_t keep) {
  uint64_t next = next_event_.load();
  if (next <= keep + 1) return Status::OK();
  std::string limit = EncodeU64Key(next - keep);
  WriteBatch b;
  WTD_RETURN_IF_ERROR(store_->Scan(Family::kEvents, "", [&](std::string_view k, std::string_view) {
    if (k >= limit || b.size() >= 10000) return false;
    b.Delete(Family::kEvents, k);
    return true;
  }));
  if (b.empty()) return Status::OK();
  return store_->Commit(b);
}

Result<LeasedRun> RunStore::AcquireLease(uint64_t id, const LeaseRequest& q) {
  MutexLock token_lock(&token_mu_);
  const uint64_t token = next_token_;
  int64_t now = clock_->NowMs();
  wtd::Lease lease;
  Result<Run> r = Apply(
      id,
      [&](Run& r) -> Result<RunState> {
        if (r.state != S::kPending) return WrongState(r, S::kPending);
        r.lease_token = token;
        return S::kLeased;
      },
      [&](const Run& before, Run&, const std::optional<wtd::Lease>& row, WriteBatch* b) -> Status {
        std::string name = LockName(before.key);
        if (row) {
          std::string why = row->run_id == id && row->state == LeaseState::kReleasing
                                ? " is still releasing this run's earlier lease: delete its "
                                  "ref and drop it first"
                                : " is held in this store by run " + std::to_string(row->run_id);
          return Status::FailedPrecondition(LeaseName(before.key.repo, name) + why + " (token " +
                                            std::to_string(row->fencing_token) + ")");
        }
        lease = wtd::Lease();
        lease.host = q.host;
        lease.boot_id = q.boot_id;
        lease.pid = q.pid;
        lease.pid_start_time = q.pid_start_time;
        lease.incarnation = q.incarnation;
        lease.acquired_at_ms = now;
        lease.expires_at_ms = now + q.ttl_ms;
        lease.fencing_token = token;
        lease.run_id = id;
        lease.repo = before.key.repo;
        lease.name = std::move(name);
        lease.ref_blob = q.ref_blob;
        if (q.ref_blob_of) {
          Result<std::string> blob = q.ref_blob_of(lease);
          if (!blob.ok()) return blob.status();
          lease.ref_blob = *blob;
        }
        PutLease(b, lease);
        b->Put(Family::kMeta, kMetaFencingToken, EncodeU64Key(token));
        return Status::OK();
      });
  if (!r.ok()) return r.status();
  next_token_ = token + 1;
  WTD_CRASH_POINT("after_lease_acquire_commit");
  return LeasedRun{std::move(*r), std::move(lease)};
}

Result<Run> RunStore::LockContended(uint64_t id, uint64_t token, int64_t not_before_ms,
                                    const std::string& reason) {
  MutexLock contention_lock(&contention_mu_);
  Result<Run> r = Apply(
      id,
      [&](Run& r) -> Result<RunState> {
        if (r.state != S::kLeased) return WrongState(r, S::kLeased);
        if (token == 0)
          return Status::InvalidArgument(RunName(id) + ": a lease token of 0 names no lease");
        WTD_RETURN_IF_ERROR(CheckRunToken(r, token));
        r.lease_token = 0;
        r.lock_waits += 1;
        r.not_before_ms = not_before_ms;
        r.error = reason;
        return S::kRetryWait;
      },
      [&](const Run& before, Run&, const std::optional<wtd::Lease>& row, WriteBatch* b) -> Status {
        std::string name = LockName(before.key);
        WTD_RETURN_IF_ERROR(CheckHeld(row, before.key.repo, name, token));
        b->Delete(Family::kLocks, EncodeLeaseKey(before.key.repo, name));
        WTD_ASSIGN_OR_RETURN(uint64_t waits, GetJobLockWaits(before.key.repo, before.key.job));
        b->Put(Family::kMeta, LockWaitsKey(before.key.repo, before.key.job),
               EncodeU64Key(waits + 1));
        return Status::OK();
      });
  if (r.ok()) {
    WTD_CRASH_POINT("after_lock_contended_commit");
    if (observer_.lock_contended) observer_.lock_contended(*r);
  }
  return r;
}

Result<wtd::Lease> RunStore::RenewLease(const std::string& repo, const std::string& name,
                                        uint64_t token, int64_t new_expires_ms,
                                        const std::string& new_ref_blob) {
  std::string key = EncodeLeaseKey(repo, name);
  std::lock_guard<std::mutex> lock(LeaseStripeFor(key));
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, ReadLease(key));
  WTD_RETURN_IF_ERROR(CheckHeld(row, repo, name, token));
  wtd::Lease l = *row;
  l.expires_at_ms = new_expires_ms;
  MoveRefBlob(&l, new_ref_blob);
  WriteBatch b;
  PutLease(&b, l);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  WTD_CRASH_POINT("after_lease_renew_commit");
  return l;
}

Status RunStore::CheckNotHeldByRun(const wtd::Lease& row) const {
  Result<Run> run = Get(row.run_id);
  if (!run.ok() && !run.status().IsNotFound()) return run.status();
  if (run.ok() && run->lease_token == row.fencing_token) {
    return Status::FailedPrecondition(LeaseName(row.repo, row.name) + " is held by " +
                                      RunName(row.run_id) + " (" +
                                      std::string(RunStateName(run->state)) + ")");
  }
  return Status::OK();
}

Status RunStore::DropLease(const std::string& repo, const std::string& name, uint64_t token) {
  std::string key = EncodeLeaseKey(repo, name);
  std::lock_guard<std::mutex> lock(LeaseStripeFor(key));
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, ReadLease(key));
  if (!row) return Status::OK();
  WTD_RETURN_IF_ERROR(CheckFence(row, repo, name, token));
  if (row->state == LeaseState::kHeld) WTD_RETURN_IF_ERROR(CheckNotHeldByRun(*row));
  WriteBatch b;
  b.Delete(Family::kLocks, key);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  WTD_CRASH_POINT("after_lease_drop_commit");
  return Status::OK();
}

Result<wtd::Lease> RunStore::ReleaseOrphanLease(const std::string& repo, const std::string& name,
                                                uint64_t token) {
  std::string key = EncodeLeaseKey(repo, name);
  std::lock_guard<std::mutex> lock(LeaseStripeFor(key));
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, ReadLease(key));
  WTD_RETURN_IF_ERROR(CheckFence(row, repo, name, token));
  if (row->state == LeaseState::kReleasing) return *row;
  WTD_RETURN_IF_ERROR(CheckNotHeldByRun(*row));
  wtd::Lease l = *row;
  l.state = LeaseState::kReleasing;
  WriteBatch b;
  PutLease(&b, l);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  return l;
}

Result<std::optional<wtd::Lease>> RunStore::GetLease(const std::string& repo,
                                                     const std::string& name) const {
  return ReadLease(EncodeLeaseKey(repo, name));
}

Result<std::vector<wtd::Lease>> RunStore::ListLeases() const {
  std::vector<wtd::Lease> out;
  Status damaged;
  WTD_RETURN_IF_ERROR(store_->Scan(Family::kLocks, "", [&](std::string_view k, std::string_view v) {
    Result<wtd::Lease> l = DecodeLease(v);
    if (!l.ok()) {
      std::vector<std::string_view> parts = SplitKey(k);
      damaged = l.status().WithContext("locks/" + std::string(parts.back()));
      return false;
    }
    out.push_back(std::move(*l));
    return true;
  }));
  WTD_RETURN_IF_ERROR(damaged);
  return out;
}

Result<std::optional<wtd::Lease>> RunStore::LeaseOfRun(uint64_t id) const {
  WTD_ASSIGN_OR_RETURN(Run r, Get(id));
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, GetLease(r.key.repo, LockName(r.key)));
  if (row && row->run_id != id) return std::optional<wtd::Lease>();
  return row;
}

uint64_t RunStore::LastFencingToken() const {
  MutexLock lock(&token_mu_);
  return next_token_ - 1;
}

Result<uint64_t> RunStore::GetJobLockWaits(const std::string& repo, const std::string& job) const {
  Result<std::string> v = store_->Get(Family::kMeta, LockWaitsKey(repo, job));
  if (!v.ok()) {
    if (v.status().IsNotFound()) return uint64_t{0};
    return v.status();
  }
  Result<uint64_t> n = DecodeU64Key(*v);
  if (!n.ok()) return n.status().WithContext("meta/lock_waits/" + repo + "/" + job);
  return n;
}

Result<std::vector<JobLockWaits>> RunStore::ListJobLockWaits() const {
  std::vector<JobLockWaits> out;
  Status damaged;
  WTD_RETURN_IF_ERROR(store_->Scan(
      Family::kMeta, kMetaLockWaitsPrefix, [&](std::string_view k, std::string_view v) {
        std::vector<std::string_view> parts = SplitKey(k);
        Result<uint64_t> n = DecodeU64Key(v);
        if (parts.size() != 3 || !n.ok()) {
          damaged = Status::Corruption("meta: undecodable lock_waits entry");
          return false;
        }
        out.push_back(JobLockWaits{std::string(parts[1]), std::string(parts[2]), *n});
        return true;
      }));
  WTD_RETURN_IF_ERROR(damaged);
  return out;
}

Status RunStore::RecordLockReap(const std::string& repo, const std::string& name,
                                const std::string& blob, const std::string& record) {
  WTD_RETURN_IF_ERROR(CheckKeyPart("repository", repo));
  WTD_RETURN_IF_ERROR(CheckKeyPart("lock name", name));
  WriteBatch b;
  b.Put(Family::kMeta, "lock_reap/" + repo + '\x1f' + name + '\x1f' + blob, record);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  WTD_CRASH_POINT("after_reap_record");
  return Status::OK();
}

Result<bool> RunStore::RecordWatchedRepos(wtd::WatchedRepos want) {
  std::sort(want.paths.begin(), want.paths.end());
  want.paths.erase(std::unique(want.paths.begin(), want.paths.end()), want.paths.end());
  for (const std::string& p : want.paths)
    WTD_RETURN_IF_ERROR(CheckKeyPart("watched repository", p));
  MutexLock lock(&watched_mu_);
  Result<std::string> present = store_->Get(Family::kMeta, kMetaWatchedRepos);
  if (!present.ok() && !present.status().IsNotFound()) return present.status();
  if (present.ok()) {
    Result<wtd::WatchedRepos> stored = DecodeWatchedRepos(*present);
    if (stored.ok() && *stored == want) return false;
  }
  WriteBatch b;
  b.Put(Family::kMeta, kMetaWatchedRepos, EncodeWatchedRepos(want));
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  WTD_CRASH_POINT("after_watched_repos_commit");
  return true;
}

Result<wtd::WatchedRepos> RunStore::WatchedRepos() const {
  Result<std::string> v = store_->Get(Family::kMeta, kMetaWatchedRepos);
  if (!v.ok()) {
    if (v.status().IsNotFound()) return wtd::WatchedRepos();
    return v.status();
  }
  Result<wtd::WatchedRepos> w = DecodeWatchedRepos(*v);
  if (!w.ok()) return w.status().WithContext("meta/watched_repos");
  return w;
}

Status RunStore::ScanRunsFrom(
    uint64_t from, const std::function<bool(uint64_t id, const Result<Run>& run)>& fn) const {
  Status bad_key;
  WTD_RETURN_IF_ERROR(store_->ScanFrom(
      Family::kRuns, EncodeU64Key(from), [&](std::string_view k, std::string_view v) {
        Result<uint64_t> id = DecodeU64Key(k);
        if (!id.ok()) {
          bad_key = id.status().WithContext("runs");
          return false;
        }
        Result<Run> r = DecodeRun(v);
        if (!r.ok()) r = r.status().WithContext("runs/" + std::to_string(*id));
        return fn(*id, r);
      }));
  return bad_key;
}

Status RunStore::DeleteTerminalRuns(const std::vector<uint64_t>& ids) {
  if (ids.empty()) return Status::OK();
  // A terminal run has no transition left, so nothing can change it between
  // this check and the commit; the stripes keep the check honest against a
  // caller that passes a run still moving.
  std::vector<size_t> stripes;
  for (uint64_t id : ids) stripes.push_back(id % kStripes);
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  std::vector<std::unique_lock<std::mutex>> held;
  for (size_t s : stripes) held.emplace_back(stripes_[s]);
  uint64_t max_id = 0;
  Result<std::string> stored = store_->Get(Family::kMeta, kMetaMaxCollectedRunId);
  if (!stored.ok() && !stored.status().IsNotFound()) return stored.status();
  if (stored.ok()) {
    Result<uint64_t> v = DecodeU64Key(*stored);
    if (!v.ok()) return v.status().WithContext("meta/max_collected_run_id");
    max_id = *v;
  }
  WriteBatch b;
  for (uint64_t id : ids) {
    WTD_ASSIGN_OR_RETURN(Run r, Get(id));
    if (!IsTerminal(r.state)) {
      return Status::FailedPrecondition(RunName(id) + " is " + std::string(RunStateName(r.state)) +
                                        ", not terminal: not collected");
    }
    b.Delete(Family::kRuns, EncodeU64Key(id));
    max_id = std::max(max_id, id);
  }
  b.Put(Family::kMeta, kMetaMaxCollectedRunId, EncodeU64Key(max_id));
  return store_->Commit(b);
}

Result<std::vector<std::pair<std::string, std::string>>> RunStore::ListReapRecords(
    const std::string& after, size_t limit) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (limit == 0) return out;
  std::string start = after.empty() ? std::string(kReapPrefix) : after + '\0';
  WTD_RETURN_IF_ERROR(
      store_->ScanFrom(Family::kMeta, start, [&](std::string_view k, std::string_view v) {
        if (k.substr(0, kReapPrefix.size()) != kReapPrefix) return false;
        out.emplace_back(std::string(k), std::string(v));
        return out.size() < limit;
      }));
  return out;
}

Status RunStore::DeleteReapRecords(const std::vector<std::string>& keys) {
  if (keys.empty()) return Status::OK();
  WriteBatch b;
  for (const std::string& k : keys) {
    if (k.compare(0, kReapPrefix.size(), kReapPrefix) != 0) {
      return Status::InvalidArgument("not a reap record key: meta/" + k);
    }
    b.Delete(Family::kMeta, k);
  }
  return store_->Commit(b);
}

}  // namespace wtd
