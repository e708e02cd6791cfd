// GitRunLocks: the RunLocks of --locks on (docs/design/locks.md,
// "Lifecycle"). A run holds its lock as a lease row in the store (RunStore's
// lease calls, fenced by the row's token) and as the ref
// `<locks-root>/<worktree-id>/<job>/<sha>` in its repository (LockRefs,
// compare-and-swap only); its outcome is a receipt line in the note of the
// commit (receipts.h), and the first receipt wins across daemons.
//
// Also the release of one lease row, for recovery's `releasing` rows
// (ReleaseLeaseRow).
//
// Thread-safety: not thread-safe; the scheduler's loop thread (or recovery,
// before the loop starts) only.
#ifndef WTD_LEASING_GIT_RUN_LOCKS_H_
#define WTD_LEASING_GIT_RUN_LOCKS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/process_table.h"
#include "locks/lock_owner.h"
#include "locks/lock_refs.h"
#include "runs/run_store.h"
#include "scheduler/run_locks.h"
#include "wtd/status.h"

namespace wtd {

struct GitRunLocksDeps {
  RunStore* runs = nullptr;
  ProcessTable* processes = nullptr;  // this host's: identity, stale judgement
  Clock* clock = nullptr;
  uint64_t incarnation = 0;
  std::string host;  // this host's name (gethostname)
  RunLockOptions options;
};

class GitRunLocks : public RunLocks {
 public:
  // Every pointer in `deps` must outlive the object.
  explicit GitRunLocks(GitRunLocksDeps deps);

  Result<AcquireResult> Acquire(uint64_t id) override;
  Result<Run> Started(const Run& run, const ProcessIdentity& process, uint64_t incarnation,
                      const std::string& log_path) override;
  Result<Run> Adopt(const Run& run, uint64_t incarnation) override;
  Status Renew(const Run& run) override;
  Result<Run> Finish(const Run& run, const AttemptOutcome& outcome) override;
  Status Release(const Run& run) override;
  void RetryUnfinished() override;
  int64_t NextRenewalMs() const override;

  // Deletes the ref of `row` if it still points at row.ref_blob or
  // row.prev_ref_blob (a ref pointing elsewhere is another owner's: left
  // alone), then drops the row. Idempotent.
  Status ReleaseLeaseRow(const wtd::Lease& row);

  // Writes the receipt of a `finishing` run (recovery's write_receipt hook),
  // naming this process's pid and this store's id: "" when this run's
  // receipt is in place (also one an earlier incarnation of this store
  // wrote), locks::DoneBy ("HOST pid N run R") when another's was there
  // first.
  Result<std::string> WriteReceipt(const Run& run);

  // Hands run `id` (finishing, or terminal with its row releasing) to
  // RetryUnfinished: what recovery could not finish is retried by the loop.
  void FinishLater(uint64_t id, const std::string& what, const Status& why) {
    RetryLater(id, what, why);
  }

  // The owner blob's content for a lease row.
  static locks::LockOwner OwnerOf(const wtd::Lease& row);

 private:
  Result<locks::LockRefs*> RefsFor(const std::string& repo);
  static locks::LockName NameOf(const Run& run);
  // Another owner's lock is in the way: reap it when stale, else contended.
  Result<AcquireResult> OnHeld(const Run& run, const wtd::Lease& row, locks::LockRefs* refs);
  Result<AcquireResult> Contended(const Run& run, uint64_t token, const std::string& holder);
  Result<AcquireResult> Skip(const Run& run, const wtd::Lease& row, const std::string& by);
  // Creates the ref for a leased run; checks the receipts once it holds it.
  Result<AcquireResult> TakeRef(const Run& run, const wtd::Lease& row, locks::LockRefs* refs,
                                bool may_reap);

  // After BeginFinish: the receipt, then CompleteFinish or SkipDone, then the
  // release (a failed release is retried; the run is terminal).
  Result<Run> CompleteFinishing(const Run& finishing);
  // Release's work: the run's row, if it is releasing, then its ref.
  Status ReleaseNow(const Run& run);
  // Release, a failure only scheduled for a retry (the run's state is
  // already committed).
  void ReleaseOrRetry(const Run& run);
  // Schedules RetryUnfinished for run `id`: 1 s, doubling per failure, at
  // most 60 s.
  void RetryLater(uint64_t id, const std::string& what, const Status& why);

  struct Retry {
    int64_t at_ms = 0;
    int64_t backoff_ms = 0;
  };

  GitRunLocksDeps deps_;
  int64_t ttl_ms_;
  std::map<uint64_t, Retry> retry_;  // run id -> when to finish it or its release
  std::map<std::string, std::unique_ptr<locks::LockRefs>> refs_;  // by repository path
  std::map<uint64_t, int64_t> renewed_at_;                        // running run id -> ms
};

}  // namespace wtd

#endif  // WTD_LEASING_GIT_RUN_LOCKS_H_
