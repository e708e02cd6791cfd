#include "runs/run_store.h"

#include "base/crash_point.h"
#include "store/keys.h"

namespace wtd {
namespace {

using S = RunState;

// legal[from][to]; see docs/design/state-machine.md.
constexpr bool kLegal[kRunStateCount][kRunStateCount] = {
    // to: pend  leas   prep   ready  run    retry  succ   fail   tout   canc
    /* pending */ {false, true, false, false, false, false, false, false, false, true},
    /* leased  */ {true, false, true, true, false, true, false, true, false, true},
    /* prepar. */ {true, false, false, true, false, true, false, true, false, true},
    /* ready   */ {true, false, false, false, true, true, false, true, false, true},
    /* running */ {false, false, false, false, false, true, true, true, true, true},
    /* retry   */ {true, false, false, false, false, false, false, false, false, true},
    /* succ.   */ {false, false, false, false, false, false, false, false, false, false},
    /* failed  */ {false, false, false, false, false, false, false, false, false, false},
    /* t/out   */ {false, false, false, false, false, false, false, false, false, false},
    /* canc.   */ {false, false, false, false, false, false, false, false, false, false},
};

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

}  // namespace

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
  WTD_ASSIGN_OR_RETURN(std::string last_event, store_->LastKey(Family::kEvents));
  if (!last_event.empty()) {
    WTD_ASSIGN_OR_RETURN(uint64_t seq, DecodeU64Key(last_event));
    next_event_ = seq + 1;
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

Result<Run> RunStore::Apply(uint64_t id, const std::function<Result<RunState>(Run&)>& decide) {
  std::lock_guard<std::mutex> lock(StripeFor(id));
  WTD_ASSIGN_OR_RETURN(Run r, Get(id));
  RunState from = r.state;
  WTD_ASSIGN_OR_RETURN(RunState to, decide(r));
  if (!IsLegalTransition(from, to)) return Illegal(id, from, to);
  int64_t now = clock_->NowMs();
  r.id = id;
  r.state = to;
  r.updated_at_ms = now;
  if (IsTerminal(to)) r.finished_at_ms = now;
  WriteBatch b;
  PutRun(&b, r, /*was_active=*/!IsTerminal(from));
  AddEvent(&b, r, from, now);
  WTD_RETURN_IF_ERROR(store_->Commit(b));
  return r;
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

Result<Run> RunStore::MarkRunning(uint64_t id, const ProcessIdentity& process, uint64_t incarnation,
                                  const std::string& log_path) {
  int64_t now = clock_->NowMs();
  return Transition(id, S::kReady, S::kRunning, [&](Run& r) {
    r.attempt += 1;
    r.pid = process.pid;
    r.pid_start_time = process.start_time;
    r.boot_id = process.boot_id;
    r.incarnation = incarnation;
    r.started_at_ms = now;
    r.log_path = log_path;
    r.exit_code = -1;
    r.term_signal = 0;
    r.duration_ms = 0;
    r.log_bytes = 0;
    r.log_truncated = false;
    r.error.clear();
  });
}

RunState RunStore::AfterFailedAttempt(Run& r, RunState final_state, int64_t now) const {
  if (r.attempt < r.max_attempts) {
    r.not_before_ms = now + retry_.Delay(r.retry_backoff_ms, r.attempt);
    return S::kRetryWait;
  }
  return final_state;
}

Result<Run> RunStore::Finish(uint64_t id, const AttemptOutcome& o) {
  int64_t now = clock_->NowMs();
  return Apply(id, [&](Run& r) -> Result<RunState> {
    if (r.state != S::kRunning) return WrongState(r, S::kRunning);
    r.exit_code = o.exit_code;
    r.term_signal = o.term_signal;
    r.duration_ms = o.duration_ms;
    r.log_bytes = o.log_bytes;
    r.log_truncated = o.log_truncated;
    r.error = o.error;
    if (!o.timed_out && o.term_signal == 0 && o.exit_code == 0) return S::kSucceeded;
    return AfterFailedAttempt(r, o.timed_out ? S::kTimedOut : S::kFailed, now);
  });
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
    // The job did not fail: it lost its daemon. Retry at once, beyond
    // max_attempts by a small allowance, so that a job that keeps killing
    // its daemon still ends.
    if (r.attempt < r.max_attempts + kInterruptAllowance) {
      r.not_before_ms = now;
      return S::kRetryWait;
    }
    return S::kFailed;
  });
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

}  // namespace wtd
