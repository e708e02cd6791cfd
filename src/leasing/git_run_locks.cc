#include "leasing/git_run_locks.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/crash_point.h"
#include "locks/receipts.h"
#include "locks/stale.h"

namespace wtd {
namespace {

// Backoff of a contended run: 1 s doubling with each wait, at most a third
// of the TTL (the holder renews that often, so a later look sees news).
int64_t ContentionBackoffMs(uint32_t waits, int64_t ttl_ms) {
  int64_t backoff = int64_t{1000} << std::min<uint32_t>(waits, 10);
  return std::max<int64_t>(1, std::min(backoff, ttl_ms / 3));
}

std::string Holder(const locks::LockEntry& e) {
  if (!e.owner) return "unknown (" + e.error + ")";
  return e.owner->host + " pid " + std::to_string(e.owner->pid) + " run " +
         std::to_string(e.owner->run_id);
}

bool IsFinal(RunState s) { return s != RunState::kRetryWait; }

}  // namespace

GitRunLocks::GitRunLocks(GitRunLocksDeps deps)
    : deps_(std::move(deps)), ttl_ms_(deps_.options.lease_ttl_s * 1000) {}

locks::LockOwner GitRunLocks::OwnerOf(const wtd::Lease& row) {
  locks::LockOwner o;
  o.host = row.host;
  o.boot_id = row.boot_id;
  o.pid = row.pid;
  o.pid_start_time = row.pid_start_time;
  o.incarnation = row.incarnation;
  o.run_id = row.run_id;
  o.token = row.fencing_token;
  o.acquired_at_ms = row.acquired_at_ms;
  o.expires_at_ms = row.expires_at_ms;
  o.job_pid = row.job_pid;
  o.job_start_time = row.job_start_time;
  return o;
}

locks::LockName GitRunLocks::NameOf(const Run& run) {
  return locks::LockName{run.key.worktree, run.key.job, run.key.sha};
}

Result<locks::LockRefs*> GitRunLocks::RefsFor(const std::string& repo) {
  auto it = refs_.find(repo);
  if (it != refs_.end()) return it->second.get();
  locks::LockRefsOptions o;
  o.locks_root = deps_.options.locks_root;
  WTD_ASSIGN_OR_RETURN(std::unique_ptr<locks::LockRefs> refs, locks::LockRefs::Open(repo, o));
  locks::LockRefs* out = refs.get();
  refs_[repo] = std::move(refs);
  return out;
}

Result<AcquireResult> GitRunLocks::Acquire(uint64_t id) {
  WTD_ASSIGN_OR_RETURN(Run pending, deps_.runs->Get(id));
  WTD_ASSIGN_OR_RETURN(locks::LockRefs * refs, RefsFor(pending.key.repo));
  // The ref name is checked before anything is written: a worktree id or job
  // that gives no valid ref is refused, never rewritten. No attempt of it
  // could ever hold its lock: the run ends cancelled, saying why.
  Result<std::string> ref = locks::LockRefName(deps_.options.locks_root, NameOf(pending));
  if (!ref.ok()) {
    std::string why = "no valid lock ref for it: " + ref.status().message();
    WTD_ASSIGN_OR_RETURN(Run cancelled, deps_.runs->Cancel(id, RunState::kPending, why));
    AcquireResult out;
    out.kind = AcquireResult::Kind::kRefused;
    out.run = std::move(cancelled);
    out.detail = why;
    return out;
  }
  // A release that failed earlier (the repository failing) may have left
  // this run's row releasing: finish it, or the new lease is refused.
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> earlier,
                       deps_.runs->GetLease(pending.key.repo, NameOf(pending).ToString()));
  if (earlier && earlier->run_id == id && earlier->state == LeaseState::kReleasing) {
    WTD_RETURN_IF_ERROR(ReleaseLeaseRow(*earlier));
  }
  WTD_ASSIGN_OR_RETURN(ProcessIdentity self, deps_.processes->Self());
  LeaseRequest q;
  q.host = deps_.host;
  q.boot_id = self.boot_id;
  q.pid = self.pid;
  q.pid_start_time = self.start_time;
  q.incarnation = deps_.incarnation;
  q.ttl_ms = ttl_ms_;
  q.ref_blob_of = [](const wtd::Lease& row) { return locks::BlobIdOf(OwnerOf(row)); };
  WTD_ASSIGN_OR_RETURN(LeasedRun leased, deps_.runs->AcquireLease(id, q));
  Result<AcquireResult> taken = TakeRef(leased.run, leased.lease, refs, /*may_reap=*/true);
  if (taken.ok()) return taken;
  // The repository failed: give the lock back and wait for the next step.
  Result<Run> back = deps_.runs->Requeue(id, RunState::kLeased, taken.status().ToString());
  if (back.ok()) Release(*back).IgnoreError();
  return taken.status();
}

Result<AcquireResult> GitRunLocks::TakeRef(const Run& run, const wtd::Lease& row,
                                           locks::LockRefs* refs, bool may_reap) {
  Result<std::string> created = refs->Create(NameOf(run), OwnerOf(row));
  if (!created.ok()) {
    if (locks::IsHeld(created.status()) && may_reap) return OnHeld(run, row, refs);
    if (locks::IsHeld(created.status()) || locks::IsRefLockFilePresent(created.status())) {
      return Contended(run, row.fencing_token, created.status().message());
    }
    // Anything else (the repository failing): the run goes back to waiting
    // through the lease's release; the error is the dispatch's.
    return created.status();
  }
  WTD_CRASH_POINT("after_ref_create");
  // Holding the ref, every earlier holder has written its receipt (before
  // its release): one there now means the job is done.
  WTD_ASSIGN_OR_RETURN(std::optional<locks::Receipt> done,
                       locks::FindReceipt(*refs, deps_.options.notes_ref, run.key.sha,
                                          run.key.worktree, run.key.job, run.key.series));
  if (done) return Skip(run, row, locks::DoneBy(*done));
  AcquireResult out;
  out.run = run;
  return out;
}

Result<AcquireResult> GitRunLocks::OnHeld(const Run& run, const wtd::Lease& row,
                                          locks::LockRefs* refs) {
  Result<locks::LockEntry> seen = refs->Read(NameOf(run));
  if (!seen.ok() && seen.status().IsNotFound()) {
    return TakeRef(run, row, refs, /*may_reap=*/false);  // released meanwhile: once more
  }
  if (!seen.ok()) return Contended(run, row.fencing_token, seen.status().message());
  locks::JudgeContext ctx{deps_.processes, deps_.clock->NowMs(), deps_.host,
                          deps_.processes->BootId(), deps_.options.lock_grace_s * 1000};
  locks::LockVerdict verdict = locks::JudgeLock(*seen, ctx);
  if (!verdict.stale) return Contended(run, row.fencing_token, Holder(*seen));
  // Write-ahead: the reap record first; the reap itself is a CAS on the
  // exact blob judged stale, so a repeat or a race is harmless.
  std::string reason = std::string(locks::ReasonName(verdict.reason)) + " (" + verdict.detail + ")";
  locks::ReapRecord record{
      run.key.repo, NameOf(run).ToString(),          seen->ref,           seen->blob,
      reason,       "run " + std::to_string(run.id), deps_.clock->NowMs()};
  WTD_RETURN_IF_ERROR(
      deps_.runs->RecordLockReap(record.repo, record.name, record.blob, record.ToJson()));
  spdlog::warn("run {}: reaping stale lock {} of {}: {}", run.id, seen->ref, Holder(*seen), reason);
  Status deleted = refs->Delete(NameOf(run), seen->blob);
  if (!deleted.ok() && !deleted.IsNotFound()) {
    return Contended(run, row.fencing_token, Holder(*seen) + ": " + deleted.message());
  }
  return TakeRef(run, row, refs, /*may_reap=*/false);
}

Result<AcquireResult> GitRunLocks::Contended(const Run& run, uint64_t token,
                                             const std::string& holder) {
  int64_t not_before = deps_.clock->NowMs() + ContentionBackoffMs(run.lock_waits, ttl_ms_);
  std::string reason = "lock held by " + holder;
  WTD_ASSIGN_OR_RETURN(Run waiting, deps_.runs->LockContended(run.id, token, not_before, reason));
  AcquireResult out;
  out.kind = AcquireResult::Kind::kContended;
  out.run = std::move(waiting);
  out.detail = holder;
  return out;
}

Result<AcquireResult> GitRunLocks::Skip(const Run& run, const wtd::Lease& row,
                                        const std::string& by) {
  WTD_ASSIGN_OR_RETURN(Run skipped, deps_.runs->SkipDone(run.id, row.fencing_token, by));
  ReleaseOrRetry(skipped);
  AcquireResult out;
  out.kind = AcquireResult::Kind::kDone;
  out.run = std::move(skipped);
  out.detail = by;
  return out;
}

Result<Run> GitRunLocks::Started(const Run& run, const ProcessIdentity& process,
                                 uint64_t incarnation, const std::string& log_path) {
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, deps_.runs->LeaseOfRun(run.id));
  if (!row) return Status::FailedPrecondition("run " + std::to_string(run.id) + ": no lease");
  wtd::Lease next = *row;
  next.job_pid = process.pid;
  next.job_start_time = process.start_time;
  locks::LockOwner owner = OwnerOf(next);
  WTD_ASSIGN_OR_RETURN(std::string blob, locks::BlobIdOf(owner));
  WTD_ASSIGN_OR_RETURN(Run running, deps_.runs->MarkRunning(run.id, process, incarnation, log_path,
                                                            LeaseUpdate{row->fencing_token, blob}));
  WTD_ASSIGN_OR_RETURN(locks::LockRefs * refs, RefsFor(run.key.repo));
  WTD_RETURN_IF_ERROR(refs->Update(NameOf(run), row->ref_blob, owner).status());
  renewed_at_[run.id] = deps_.clock->NowMs();
  return running;
}

Result<Run> GitRunLocks::Adopt(const Run& run, uint64_t incarnation) {
  if (run.lease_token == 0) return deps_.runs->Adopt(run.id, run.incarnation, incarnation);
  WTD_ASSIGN_OR_RETURN(ProcessIdentity self, deps_.processes->Self());
  int64_t now = deps_.clock->NowMs();
  wtd::Lease before;
  locks::LockOwner owner;
  WTD_ASSIGN_OR_RETURN(
      Run adopted,
      deps_.runs->Adopt(run.id, run.incarnation, incarnation, [&](wtd::Lease* l) -> Status {
        before = *l;
        l->host = deps_.host;
        l->boot_id = self.boot_id;
        l->pid = self.pid;
        l->pid_start_time = self.start_time;
        l->incarnation = incarnation;
        l->expires_at_ms = now + ttl_ms_;
        owner = OwnerOf(*l);
        WTD_ASSIGN_OR_RETURN(std::string blob, locks::BlobIdOf(owner));
        l->prev_ref_blob = l->ref_blob;
        l->ref_blob = blob;
        return Status::OK();
      }));
  WTD_ASSIGN_OR_RETURN(locks::LockRefs * refs, RefsFor(run.key.repo));
  Result<std::string> moved = refs->Update(NameOf(run), before.ref_blob, owner);
  if (!moved.ok() && locks::IsChanged(moved.status()) && !before.prev_ref_blob.empty()) {
    moved = refs->Update(NameOf(run), before.prev_ref_blob, owner);  // a renewal cut short
  }
  if (!moved.ok() && (locks::IsChanged(moved.status()) || moved.status().IsNotFound())) {
    return Status::Aborted(
        "lock " + before.name + " in " + before.repo +
        " was taken by another owner while no daemon renewed it: " + moved.status().message());
  }
  WTD_RETURN_IF_ERROR(moved.status());
  renewed_at_[run.id] = now;
  return adopted;
}

Status GitRunLocks::Renew(const Run& run) {
  int64_t now = deps_.clock->NowMs();
  auto it = renewed_at_.find(run.id);
  if (it != renewed_at_.end() && now - it->second < ttl_ms_ / 3) return Status::OK();
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row, deps_.runs->LeaseOfRun(run.id));
  if (!row) return Status::Aborted("run " + std::to_string(run.id) + ": its lease is gone");
  wtd::Lease next = *row;
  next.expires_at_ms = now + ttl_ms_;
  locks::LockOwner owner = OwnerOf(next);
  WTD_ASSIGN_OR_RETURN(std::string blob, locks::BlobIdOf(owner));
  WTD_RETURN_IF_ERROR(
      deps_.runs->RenewLease(row->repo, row->name, row->fencing_token, next.expires_at_ms, blob)
          .status());
  WTD_ASSIGN_OR_RETURN(locks::LockRefs * refs, RefsFor(run.key.repo));
  Result<std::string> moved = refs->Update(NameOf(run), row->ref_blob, owner);
  if (!moved.ok() && locks::IsChanged(moved.status()) && !row->prev_ref_blob.empty()) {
    // An earlier renewal's ref update did not happen: the ref is one behind.
    moved = refs->Update(NameOf(run), row->prev_ref_blob, owner);
  }
  if (!moved.ok() && (locks::IsChanged(moved.status()) || moved.status().IsNotFound())) {
    return Status::Aborted(
        "lock " + row->name + " in " + row->repo +
        " was taken by another owner (reaped as stale?): " + moved.status().message());
  }
  WTD_RETURN_IF_ERROR(moved.status());
  renewed_at_[run.id] = now;
  return Status::OK();
}

int64_t GitRunLocks::NextRenewalMs() const {
  int64_t next = -1;
  auto fold = [&next](int64_t at) { next = next < 0 ? at : std::min(next, at); };
  for (const auto& [id, at] : renewed_at_) fold(at + ttl_ms_ / 3);
  for (const auto& [id, r] : retry_) fold(r.at_ms);
  if (next < 0) return -1;
  return std::max<int64_t>(0, next - deps_.clock->NowMs());
}

Result<Run> GitRunLocks::Finish(const Run& run, const AttemptOutcome& outcome) {
  renewed_at_.erase(run.id);
  WTD_ASSIGN_OR_RETURN(Run finishing, deps_.runs->BeginFinish(run.id, run.lease_token, outcome));
  WTD_CRASH_POINT("after_outcome_commit");
  Result<Run> done = CompleteFinishing(finishing);
  if (done.ok()) return done;
  // The outcome is recorded: the rest is retried, not lost.
  RetryLater(run.id, "write its receipt and finish", done.status());
  return finishing;
}

Result<Run> GitRunLocks::CompleteFinishing(const Run& finishing) {
  if (IsFinal(finishing.finish_state)) {
    WTD_ASSIGN_OR_RETURN(std::string by, WriteReceipt(finishing));
    if (!by.empty()) {
      WTD_ASSIGN_OR_RETURN(Run skipped,
                           deps_.runs->SkipDone(finishing.id, finishing.lease_token, by));
      ReleaseOrRetry(skipped);
      return skipped;
    }
  }
  WTD_ASSIGN_OR_RETURN(Run done, deps_.runs->CompleteFinish(finishing.id, finishing.lease_token));
  ReleaseOrRetry(done);
  return done;
}

void GitRunLocks::ReleaseOrRetry(const Run& run) {
  Status st = ReleaseNow(run);
  if (!st.ok()) RetryLater(run.id, "release its lock", st);
}

void GitRunLocks::RetryLater(uint64_t id, const std::string& what, const Status& why) {
  Retry& r = retry_[id];
  r.backoff_ms = r.backoff_ms == 0 ? 1'000 : std::min<int64_t>(r.backoff_ms * 2, 60'000);
  r.at_ms = deps_.clock->NowMs() + r.backoff_ms;
  spdlog::warn("run {}: cannot {} yet, retried in {} ms: {}", id, what, r.backoff_ms,
               why.ToString());
}

void GitRunLocks::RetryUnfinished() {
  int64_t now = deps_.clock->NowMs();
  std::vector<uint64_t> due;
  for (const auto& [id, r] : retry_) {
    if (r.at_ms <= now) due.push_back(id);
  }
  for (uint64_t id : due) {
    Result<Run> run = deps_.runs->Get(id);
    if (!run.ok() && run.status().IsNotFound()) {
      retry_.erase(id);
      continue;
    }
    Status st = run.status();
    if (run.ok() && run->state == RunState::kFinishing) {
      Result<Run> done = CompleteFinishing(*run);
      st = done.status();
      if (done.ok()) {
        spdlog::info("run {} {}: receipt written and finished after a retry", id,
                     RunStateName(done->state));
      }
    } else if (run.ok()) {
      st = ReleaseNow(*run);
      if (st.ok()) spdlog::info("run {}: lock released after a retry", id);
    }
    if (st.ok()) {
      retry_.erase(id);
    } else {
      RetryLater(id, "finish or release", st);
    }
  }
}

Result<std::string> GitRunLocks::WriteReceipt(const Run& run) {
  WTD_ASSIGN_OR_RETURN(locks::LockRefs * refs, RefsFor(run.key.repo));
  locks::Receipt r;
  r.worktree = run.key.worktree;
  r.job = run.key.job;
  r.series = run.key.series;
  r.state = std::string(RunStateName(run.finish_state));
  r.exit_code = run.exit_code;
  r.attempt = run.attempt;
  r.run_id = run.id;
  r.host = deps_.host;
  r.finished_at_ms = run.updated_at_ms;
  r.duration_ms = run.duration_ms;
  WTD_ASSIGN_OR_RETURN(ProcessIdentity self, deps_.processes->Self());
  r.pid = self.pid;
  r.store = deps_.runs->store()->store_id();
  WTD_ASSIGN_OR_RETURN(locks::Receipt first,
                       locks::AppendReceiptIfFirst(*refs, deps_.options.notes_ref, run.key.sha, r));
  WTD_CRASH_POINT("after_receipt");
  // Ours when the same store wrote it for this run (a crash after the
  // receipt makes the next incarnation, another pid, find it).
  bool ours = first.run_id == r.run_id &&
              (first.store.empty() ? first.host == r.host : first.store == r.store);
  return ours ? std::string() : locks::DoneBy(first);
}

Status GitRunLocks::Release(const Run& run) {
  renewed_at_.erase(run.id);
  Status st = ReleaseNow(run);
  if (!st.ok()) RetryLater(run.id, "release its lock", st);
  return st;
}

Status GitRunLocks::ReleaseNow(const Run& run) {
  WTD_ASSIGN_OR_RETURN(std::optional<wtd::Lease> row,
                       deps_.runs->GetLease(run.key.repo, NameOf(run).ToString()));
  // A held row is the run's live lock (taken again since): never released
  // here.
  if (!row || row->run_id != run.id || row->state != LeaseState::kReleasing) {
    return Status::OK();
  }
  return ReleaseLeaseRow(*row);
}

Status GitRunLocks::ReleaseLeaseRow(const wtd::Lease& row) {
  WTD_ASSIGN_OR_RETURN(locks::LockRefs * refs, RefsFor(row.repo));
  WTD_ASSIGN_OR_RETURN(locks::LockName name,
                       locks::ParseLockName(deps_.options.locks_root, row.name));
  Status deleted = refs->Delete(name, row.ref_blob);
  if (locks::IsChanged(deleted) && !row.prev_ref_blob.empty()) {
    deleted = refs->Delete(name, row.prev_ref_blob);
  }
  // NotFound: never made or already deleted. Changed: another owner's ref
  // now; it is left alone.
  if (!deleted.ok() && !deleted.IsNotFound() && !locks::IsChanged(deleted)) return deleted;
  WTD_CRASH_POINT("after_ref_delete");
  return deps_.runs->DropLease(row.repo, row.name, row.fencing_token);
}

}  // namespace wtd
