#include "property/run_ops.h"

#include <algorithm>

#include "base/crash_point.h"
#include "store/keys.h"

namespace wtd::property {
namespace {

using S = RunState;

Result<std::vector<Run>> Enqueue(RunStore* runs, FakeClock* clock, const Op& op) {
  std::vector<NewRun> batch;
  for (int key : op.keys) {
    NewRun n;
    n.key = KeyFor(key);
    n.branch = "main";
    n.worktree_path = "/repo";
    n.max_attempts = MaxAttemptsFor(key);
    n.retry_backoff_ms = kRetryBackoffMs;
    n.timeout_ms = 60'000;
    batch.push_back(std::move(n));
  }
  std::optional<CursorUpdate> cursor;
  if (op.with_cursor) {
    cursor = CursorUpdate{"/repo", "main", "main",
                          Cursor{KeyFor(op.keys.back()).sha, 1, clock->NowMs(), {}, 0}};
  }
  return runs->Enqueue(batch, cursor);
}

// Passes crash point `name` when `r` committed.
Result<Run> Then(Result<Run> r, const char* name) {
  if (r.ok()) WTD_CRASH_POINT(name);
  return r;
}

// The owner blob a ref would point at: any 40 hex digits that change with
// every write about the lease.
std::string Blob(uint64_t id, uint64_t n) {
  std::string hex = std::to_string(id) + "b" + std::to_string(n);
  return hex + std::string(40 - std::min<size_t>(hex.size(), 40), '0');
}

// As the scheduler will: a lease left releasing by an earlier attempt is
// dropped (its ref deleted) before the lock is taken again.
Result<Run> AcquireLease(RunStore* runs, FakeClock* clock, uint64_t id) {
  WTD_ASSIGN_OR_RETURN(std::optional<Lease> left, runs->LeaseOfRun(id));
  if (left && left->state == LeaseState::kReleasing) {
    WTD_RETURN_IF_ERROR(runs->DropLease(left->repo, left->name, left->fencing_token));
  }
  LeaseRequest request{"host-a",
                       "boot-a",
                       4000,
                       1,
                       runs->store()->incarnation(),
                       60'000,
                       Blob(id, static_cast<uint64_t>(clock->NowMs())),
                       {}};
  WTD_ASSIGN_OR_RETURN(LeasedRun leased, runs->AcquireLease(id, request));
  return leased.run;
}

uint64_t TokenOf(RunStore* runs, uint64_t id) {
  Result<Run> r = runs->Get(id);
  return r.ok() ? r->lease_token : 0;
}

Result<Run> Renew(RunStore* runs, FakeClock* clock, uint64_t id, bool stale) {
  WTD_ASSIGN_OR_RETURN(Run r, runs->Get(id));
  uint64_t token = r.lease_token;
  if (stale) token = token == 0 ? runs->LastFencingToken() + 1 : token - 1;
  WTD_RETURN_IF_ERROR(runs->RenewLease(r.key.repo, LockName(r.key), token, clock->NowMs() + 60'000,
                                       Blob(id, token + 7))
                          .status());
  return runs->Get(id);
}

Result<Run> MarkRunning(RunStore* runs, uint64_t id, const Op& op) {
  WTD_CRASH_POINT("after_spawn");
  WTD_CRASH_POINT("before_running_commit");
  Result<Run> r = Then(runs->MarkRunning(id, op.process, runs->store()->incarnation(),
                                         "/logs/" + std::to_string(id) + ".log",
                                         LeaseUpdate{TokenOf(runs, id), Blob(id, 1)}),
                       "after_running_commit");
  if (r.ok()) WTD_CRASH_POINT("after_release");
  return r;
}

Result<Run> Transit(RunStore* runs, FakeClock* clock, uint64_t id, const Op& op) {
  switch (op.kind) {
    case OpKind::kLease:
      return Then(AcquireLease(runs, clock, id), "after_lease_commit");
    case OpKind::kPrepare:
      return runs->Transition(id, S::kLeased, S::kPreparing);
    case OpKind::kReady:
      return Then(runs->MarkReady(id, op.from), "after_ready_commit");
    case OpKind::kRunning:
      return MarkRunning(runs, id, op);
    case OpKind::kSpawnFailed:
      return runs->SpawnFailed(id, "cannot start the job");
    case OpKind::kFinish:
      WTD_CRASH_POINT("before_outcome_commit");
      return runs->BeginFinish(id, TokenOf(runs, id), OutcomeOf(op.outcome));
    case OpKind::kComplete:
      return runs->CompleteFinish(id, TokenOf(runs, id));
    case OpKind::kSkip:
      return runs->SkipDone(id, TokenOf(runs, id), "host-b pid 7 run 3");
    case OpKind::kContended:
      return runs->LockContended(id, TokenOf(runs, id), clock->NowMs() + kRetryBackoffMs,
                                 "lock held by host-b");
    case OpKind::kRenew:
    case OpKind::kStaleRenew:
      return Renew(runs, clock, id, op.kind == OpKind::kStaleRenew);
    case OpKind::kWake:
      clock->AdvanceMs(kWakeAdvanceMs);
      return runs->Wake(id);
    case OpKind::kRequeue:
      return runs->Requeue(id, op.from, "requeued");
    case OpKind::kCancel:
      return runs->Cancel(id, op.from, "cancelled");
    case OpKind::kEnqueue:
      break;
  }
  return Status::InvalidArgument("not a transition: " + EncodeOp(op));
}

}  // namespace

AttemptOutcome OutcomeOf(Outcome outcome) {
  AttemptOutcome o;
  o.duration_ms = 10;
  o.exit_code = ExitCodeOf(outcome);
  if (outcome == Outcome::kTimeout) {
    o.term_signal = 9;
    o.timed_out = true;
  }
  return o;
}

Result<Run> AdoptRun(RunStore* runs, FakeClock* clock, const Run& run, uint64_t incarnation) {
  return runs->Adopt(run.id, run.incarnation, incarnation, [&](Lease* l) {
    l->host = "host-a";
    l->incarnation = incarnation;
    l->expires_at_ms = clock->NowMs() + 60'000;
    l->prev_ref_blob = l->ref_blob;
    l->ref_blob = Blob(run.id, 1000 + incarnation);
    return Status::OK();
  });
}

Result<Run> RecordUnwatched(RunStore* runs, const Run& run, const AttemptOutcome& outcome) {
  if (run.lease_token == 0) return runs->Finish(run.id, outcome);
  WTD_RETURN_IF_ERROR(runs->BeginFinish(run.id, run.lease_token, outcome).status());
  return runs->CompleteFinish(run.id, run.lease_token);
}

Result<std::vector<Run>> ExecuteOp(RunStore* runs, FakeClock* clock, const Op& op) {
  if (op.kind == OpKind::kEnqueue) return Enqueue(runs, clock, op);
  WTD_ASSIGN_OR_RETURN(uint64_t id, runs->FindByKey(KeyFor(op.key())));
  WTD_ASSIGN_OR_RETURN(Run run, Transit(runs, clock, id, op));
  return std::vector<Run>{std::move(run)};
}

std::vector<std::string_view> CrashPointsOf(const Op& op) {
  switch (op.kind) {
    case OpKind::kEnqueue:
      return {"after_enqueue_commit"};
    case OpKind::kLease:
      return {"after_lease_acquire_commit", "after_lease_commit"};
    case OpKind::kReady:
      return {"after_ready_commit"};
    case OpKind::kRunning:
      return {"after_spawn", "before_running_commit", "after_running_commit", "after_release"};
    case OpKind::kFinish:
      return {"before_outcome_commit", "after_finishing_commit"};
    case OpKind::kComplete:
      return {"after_finish_complete_commit"};
    case OpKind::kSkip:
      return {"after_skip_commit"};
    case OpKind::kContended:
      return {"after_lock_contended_commit"};
    case OpKind::kRenew:
      return {"after_lease_renew_commit"};
    default:
      return {};
  }
}

Result<std::map<int, Run>> ReadRuns(const RunStore& runs) {
  RunFilter all;
  all.limit = 0;
  WTD_ASSIGN_OR_RETURN(std::vector<Run> list, runs.List(all));
  std::map<int, Run> by_key;
  for (Run& r : list) {
    int key = KeyIndex(r.key);
    std::string name = "run " + std::to_string(r.id);
    if (key < 0) return Status::Corruption(name + " has a key outside the pool: " + r.key.job);
    if (by_key.count(key)) {
      return Status::Corruption(name + " and run " + std::to_string(by_key[key].id) +
                                " share the key of " + r.key.job);
    }
    by_key[key] = std::move(r);
  }
  return by_key;
}

}  // namespace wtd::property
