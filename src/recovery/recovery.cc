#include "recovery/recovery.h"

#include <signal.h>
#include <time.h>

#include "base/crash_point.h"

namespace wtd {
namespace {

ProcessIdentity IdentityOf(const Run& r) {
  return ProcessIdentity{r.pid, r.pid_start_time, r.boot_id};
}

void SleepMs(int64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  nanosleep(&ts, nullptr);
}

// Kills the process group of a run's surviving process and waits (bounded)
// for its leader to go. Returns a description of what was done.
std::string KillSurvivor(const Run& r, ProcessTable* processes, const RecoveryOptions& options) {
  ProcessIdentity id = IdentityOf(r);
  Status s = processes->SignalGroup(id, SIGKILL);
  if (!s.ok()) return "process " + std::to_string(r.pid) + " gone before kill";
  for (int64_t waited = 0; processes->IsAlive(id) && waited < options.kill_wait_ms; waited += 10) {
    SleepMs(10);
  }
  if (processes->IsAlive(id)) {
    return "killed process group " + std::to_string(r.pid) + " but it did not exit within " +
           std::to_string(options.kill_wait_ms) + " ms";
  }
  return "killed surviving process group " + std::to_string(r.pid);
}

class Pass {
 public:
  Pass(RunStore* runs, ProcessTable* processes, const RecoveryHooks& hooks,
       const RecoveryOptions& options, RecoveryReport* report)
      : runs_(runs), processes_(processes), hooks_(hooks), options_(options), report_(report) {}

  void Recover(const Run& r) {
    switch (r.state) {
      case RunState::kRunning:
        RecoverRunning(r);
        break;
      case RunState::kLeased:
      case RunState::kPreparing:
      case RunState::kReady:
        RecoverUnstarted(r);
        break;
      default:
        break;  // pending, retry_wait: nothing held, nothing to undo
    }
  }

 private:
  void RecoverRunning(const Run& r) {
    if (r.incarnation == report_->incarnation) return;  // ours: the scheduler owns it
    std::string detail = processes_->IsAlive(IdentityOf(r))
                             ? KillSurvivor(r, processes_, options_)
                             : "process " + std::to_string(r.pid) + " gone";
    if (hooks_.release_finished) {
      Status s = hooks_.release_finished(r);
      if (!s.ok()) return Error(r, s);
    }
    Record(r, runs_->Interrupt(r.id, "interrupted: daemon stopped while running (" + detail + ")"),
           detail);
  }

  void RecoverUnstarted(const Run& r) {
    if (hooks_.release_unstarted) {
      Status s = hooks_.release_unstarted(r);
      if (!s.ok()) return Error(r, s);
    }
    std::string detail = "no process started; back to pending";
    Record(r, runs_->Requeue(r.id, r.state, "requeued by recovery"), detail);
  }

  void Record(const Run& before, const Result<Run>& after, const std::string& detail) {
    if (!after.ok()) return Error(before, after.status());
    report_->actions.push_back(
        RecoveryAction{before.id, before.key, before.state, after->state, detail});
    WTD_CRASH_POINT("during_recovery");
  }

  void Error(const Run& r, const Status& s) {
    report_->errors.push_back("run " + std::to_string(r.id) + ": " + s.ToString());
  }

  RunStore* runs_;
  ProcessTable* processes_;
  const RecoveryHooks& hooks_;
  const RecoveryOptions& options_;
  RecoveryReport* report_;
};

}  // namespace

Result<RecoveryReport> RunRecovery(RunStore* runs, ProcessTable* processes, Clock* clock,
                                   const RecoveryHooks& hooks, uint64_t incarnation,
                                   const RecoveryOptions& options) {
  int64_t start = clock->MonotonicUs();
  RecoveryReport report;
  report.incarnation = incarnation;
  WTD_ASSIGN_OR_RETURN(std::vector<Run> active, runs->ListActive());
  report.active_scanned = active.size();
  Pass pass(runs, processes, hooks, options, &report);
  for (const Run& r : active) pass.Recover(r);
  report.duration_us = clock->MonotonicUs() - start;
  return report;
}

}  // namespace wtd
