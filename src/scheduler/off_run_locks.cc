// NewOffRunLocks: the lease-less path (run_locks.h), taken with --locks off.
#include "base/crash_point.h"
#include "scheduler/run_locks.h"

namespace wtd {
namespace {

class OffRunLocks : public RunLocks {
 public:
  explicit OffRunLocks(RunStore* runs) : runs_(runs) {}

  Result<AcquireResult> Acquire(uint64_t id) override {
    WTD_ASSIGN_OR_RETURN(Run run, runs_->Lease(id));
    AcquireResult out;
    out.run = std::move(run);
    return out;
  }
  Result<Run> Started(const Run& run, const ProcessIdentity& process, uint64_t incarnation,
                      const std::string& log_path) override {
    return runs_->MarkRunning(run.id, process, incarnation, log_path);
  }
  Result<Run> Adopt(const Run& run, uint64_t incarnation) override {
    return runs_->Adopt(run.id, run.incarnation, incarnation);
  }
  Status Renew(const Run&) override { return Status::OK(); }
  Result<Run> Finish(const Run& run, const AttemptOutcome& outcome) override {
    Result<Run> done = runs_->Finish(run.id, outcome);
    WTD_CRASH_POINT("after_outcome_commit");
    return done;
  }
  Status Release(const Run&) override { return Status::OK(); }
  void RetryUnfinished() override {}
  int64_t NextRenewalMs() const override { return -1; }

 private:
  RunStore* runs_;
};

}  // namespace

std::unique_ptr<RunLocks> NewOffRunLocks(RunStore* runs) {
  return std::make_unique<OffRunLocks>(runs);
}

}  // namespace wtd
