#include "property/run_ops.h"

#include "base/crash_point.h"

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

AttemptOutcome OutcomeOf(Outcome outcome) {
  AttemptOutcome o;
  o.duration_ms = 10;
  o.exit_code = outcome == Outcome::kSuccess ? 0 : 1;
  if (outcome == Outcome::kTimeout) {
    o.exit_code = -1;
    o.term_signal = 9;
    o.timed_out = true;
  }
  return o;
}

// Passes crash point `name` when `r` committed.
Result<Run> Then(Result<Run> r, const char* name) {
  if (r.ok()) WTD_CRASH_POINT(name);
  return r;
}

Result<Run> MarkRunning(RunStore* runs, uint64_t id, const Op& op) {
  WTD_CRASH_POINT("after_spawn");
  WTD_CRASH_POINT("before_running_commit");
  Result<Run> r = Then(runs->MarkRunning(id, op.process, runs->store()->incarnation(),
                                         "/logs/" + std::to_string(id) + ".log"),
                       "after_running_commit");
  if (r.ok()) WTD_CRASH_POINT("after_release");
  return r;
}

Result<Run> Transit(RunStore* runs, FakeClock* clock, uint64_t id, const Op& op) {
  switch (op.kind) {
    case OpKind::kLease:
      return Then(runs->Lease(id), "after_lease_commit");
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
      return Then(runs->Finish(id, OutcomeOf(op.outcome)), "after_outcome_commit");
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
      return {"after_lease_commit"};
    case OpKind::kReady:
      return {"after_ready_commit"};
    case OpKind::kRunning:
      return {"after_spawn", "before_running_commit", "after_running_commit", "after_release"};
    case OpKind::kFinish:
      return {"before_outcome_commit", "after_outcome_commit"};
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
