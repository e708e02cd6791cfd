#include "recovery/recovery.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <set>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "exec/exit_record.h"
#include "store/keys.h"

namespace wtd {
namespace {

ProcessIdentity IdentityOf(const Run& r) {
  return ProcessIdentity{r.pid, r.pid_start_time, r.boot_id};
}

void SleepMs(int64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  nanosleep(&ts, nullptr);
}

// Whether recovery must deal with this run's process: a run `running` for an
// earlier incarnation (a run of this incarnation is the scheduler's).
bool Orphaned(const Run& r, uint64_t incarnation) {
  return r.state == RunState::kRunning && r.incarnation != incarnation;
}

// Why nothing of run `r` may be signalled, or "" when its process can be
// identified. With an unknown boot id (now, or when the run was recorded), a
// matching pid and start time may belong to another boot's process: after a
// reboot, killing that group could kill an unrelated one.
std::string Unprovable(const Run& r, ProcessTable* processes) {
  std::string why;
  if (!IsKnownBootId(processes->BootId())) {
    why = "the boot id is unknown (" + std::string(kBootIdPath) + " cannot be read)";
  } else if (!IsKnownBootId(r.boot_id)) {
    why = "the run was recorded with an unknown boot id";
  } else {
    return "";
  }
  return why + ", so process " + std::to_string(r.pid) +
         " cannot be proved to be this run's; nothing signalled";
}

// What KillSurvivors did (or, planning, would do).
struct Kills {
  std::map<uint64_t, std::string> detail;  // run id -> for the run's interrupt_run
  std::vector<RecoveryAction> actions;     // one kill_orphan_group per group
};

RecoveryAction KillAction(const Run& r, std::string detail) {
  return RecoveryAction{"kill_orphan_group", r.id, r.key, r.state, r.state, "", std::move(detail)};
}

// SIGKILLs the groups of every orphaned run whose process is still alive,
// all first, then waits (bounded, once for all) for them to go. Returns, per
// run id, what was done, and why nothing was for a run whose process cannot
// be identified. Planning, signals nothing and says what it would kill.
Kills KillSurvivors(const std::vector<Run>& active, uint64_t incarnation, ProcessTable* processes,
                    const RecoveryOptions& options) {
  Kills k;
  std::vector<const Run*> killed;
  for (const Run& r : active) {
    // A supervised run's supervisor is adopted, not killed (Pass).
    if (!Orphaned(r, incarnation) || r.supervised) continue;
    if (std::string why = Unprovable(r, processes); !why.empty()) {
      k.detail[r.id] = why;
      continue;
    }
    if (!processes->IsAlive(IdentityOf(r))) continue;
    if (options.plan_only) {
      k.detail[r.id] = "would kill surviving process group " + std::to_string(r.pid);
      k.actions.push_back(KillAction(r, k.detail[r.id]));
    } else if (processes->SignalGroup(IdentityOf(r), SIGKILL).ok()) {
      killed.push_back(&r);
    } else {
      k.detail[r.id] = "process " + std::to_string(r.pid) + " gone before kill";
    }
  }
  auto any_alive = [&] {
    return std::any_of(killed.begin(), killed.end(),
                       [&](const Run* r) { return processes->IsAlive(IdentityOf(*r)); });
  };
  for (int64_t waited = 0; any_alive() && waited < options.kill_wait_ms; waited += 10) SleepMs(10);
  for (const Run* r : killed) {
    k.detail[r->id] = processes->IsAlive(IdentityOf(*r))
                          ? "killed process group " + std::to_string(r->pid) +
                                " but it did not exit within " +
                                std::to_string(options.kill_wait_ms) + " ms"
                          : "killed surviving process group " + std::to_string(r->pid);
    k.actions.push_back(KillAction(*r, k.detail[r->id]));
  }
  return k;
}

// What is left of a gone process's group (its background children) is
// killed too; returns the detail for the report. Only for a run whose
// identity is provable (KillSurvivors has the detail of the others).
std::string KillLeftovers(const Run& r, ProcessTable* processes) {
  std::string gone = "process " + std::to_string(r.pid) + " gone";
  if (processes->SignalLeftoverGroup(IdentityOf(r), SIGKILL).ok()) {
    return gone + "; killed what was left of its process group";
  }
  return gone;
}

class Pass {
 public:
  Pass(RunStore* runs, ProcessTable* processes, const RecoveryHooks& hooks,
       std::map<uint64_t, std::string> killed, const RecoveryOptions& options,
       RecoveryReport* report)
      : runs_(runs),
        processes_(processes),
        hooks_(hooks),
        killed_(std::move(killed)),
        options_(options),
        plan_(options.plan_only),
        report_(report) {}

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
      case RunState::kFinishing:
        RecoverFinishing(r);
        break;
      default:
        break;  // pending, retry_wait: nothing held, nothing to undo
    }
  }

  // Marks `releasing` every held lease whose run no longer holds it, then
  // lists the releasing ones in the report. Planning, lists the rows that
  // would then be releasing: those already, those of runs the pass moves,
  // and the orphans.
  void ReleaseOrphanLeases() {
    Result<std::vector<Lease>> leases = runs_->ListLeases();
    if (!leases.ok()) {
      return report_->errors.push_back(leases.status().ToString() + " (lock leases not recovered)");
    }
    std::vector<Lease> planned_releasing;
    for (const Lease& l : *leases) {
      if (l.state == LeaseState::kHeld) {
        Result<Run> run = runs_->Get(l.run_id);
        if (run.ok() && run->lease_token == l.fencing_token) {  // still its run's
          if (plan_ && moved_.count(run->id) > 0) planned_releasing.push_back(Releasing(l));
          continue;
        }
        if (!run.ok() && !run.status().IsNotFound()) {
          report_->errors.push_back("lease " + l.name + ": " + run.status().ToString());
          continue;
        }
        if (ReleaseOrphan(l, run) && plan_) planned_releasing.push_back(Releasing(l));
      } else if (plan_) {
        planned_releasing.push_back(l);
      }
    }
    if (plan_) {
      report_->releasing = std::move(planned_releasing);
      return;
    }
    leases = runs_->ListLeases();
    if (!leases.ok()) return report_->errors.push_back(leases.status().ToString());
    for (Lease& l : *leases) {
      if (l.state == LeaseState::kReleasing) report_->releasing.push_back(std::move(l));
    }
  }

 private:
  void RecoverRunning(const Run& r) {
    if (!Orphaned(r, report_->incarnation)) return;  // ours: the scheduler owns it
    if (r.supervised) return RecoverSupervised(r);
    auto killed = killed_.find(r.id);
    std::string detail = killed != killed_.end() ? killed->second
                         : plan_                 ? "process " + std::to_string(r.pid) + " gone"
                                                 : KillLeftovers(r, processes_);
    Act("interrupt_run", r, InterruptTarget(r), detail, [&]() -> Result<Run> {
      if (hooks_.release_finished) WTD_RETURN_IF_ERROR(hooks_.release_finished(r));
      return runs_->Interrupt(r.id, "interrupted: daemon stopped while running (" + detail + ")");
    });
  }

  // The outcome its supervisor wrote for the run's current attempt: nullopt
  // when there is none; a file that cannot be read is noted in *why.
  std::optional<AttemptOutcome> ReadOutcome(const Run& r, std::string* why) const {
    if (options_.state_dir.empty()) return std::nullopt;
    Result<std::optional<ExitRecord>> rec =
        ReadExitRecord(RunExitPath(options_.state_dir, r.id), r.id, r.attempt);
    if (!rec.ok()) {
      *why = rec.status().ToString();
      return std::nullopt;
    }
    if (!*rec) return std::nullopt;
    return (*rec)->outcome;
  }

  // A run whose pid is its supervisor's (docs/design/supervisor.md).
  void RecoverSupervised(const Run& r) {
    std::string unreadable;
    if (std::optional<AttemptOutcome> o = ReadOutcome(r, &unreadable)) return RecordOutcome(r, *o);
    std::string detail;
    std::string unprovable = Unprovable(r, processes_);
    if (unprovable.empty() && processes_->IsAlive(IdentityOf(r))) {
      std::string alive = "supervisor " + std::to_string(r.pid) + " still runs";
      if (plan_) {
        return Act(hooks_.adopt ? "adopt_run" : "leave_running", r, RunState::kRunning,
                   alive + (hooks_.adopt ? ": would adopt it" : ": left for the daemon"), nullptr);
      }
      if (!hooks_.adopt) {
        report_->actions.push_back(RecoveryAction{"leave_running", r.id, r.key, r.state, r.state,
                                                  "",
                                                  alive + ": left for the next daemon to adopt"});
        return;
      }
      Result<Run> adopted = hooks_.adopt(r);
      if (adopted.ok()) {
        report_->actions.push_back(
            RecoveryAction{"adopt_run", r.id, r.key, r.state, adopted->state,
                           r.lease_token != 0 ? LockName(r.key) : "",
                           alive + ": adopted (attempt " + std::to_string(r.attempt) + ")"});
        WTD_CRASH_POINT("during_recovery");
        return;
      }
      if (adopted.status().IsNotFound()) {
        // It ended between the look and the adoption: its outcome is there
        // now, unless it died without one.
        if (std::optional<AttemptOutcome> o = ReadOutcome(r, &unreadable)) {
          return RecordOutcome(r, *o);
        }
        detail =
            "supervisor " + std::to_string(r.pid) + " ended without an outcome" + KillJobGroup(r);
      } else if (adopted.status().IsAborted()) {
        detail = "adopted, but " + adopted.status().message() + "; job stopped";
      } else {
        return Error(r, adopted.status());  // left running for the next pass
      }
    } else if (!unprovable.empty()) {
      detail = unprovable;
    } else {
      detail = "supervisor " + std::to_string(r.pid) + " gone without an outcome";
      if (!plan_) detail += KillJobGroup(r);
    }
    if (!unreadable.empty()) detail += "; exit file not used: " + unreadable;
    Act("interrupt_run", r, InterruptTarget(r), detail, [&]() -> Result<Run> {
      if (hooks_.release_finished) WTD_RETURN_IF_ERROR(hooks_.release_finished(r));
      return runs_->Interrupt(r.id, "interrupted: daemon stopped while running (" + detail + ")");
    });
    RemoveSupervisorFiles(r);
  }

  // SIGKILLs what is left of the job's group of a supervised run whose
  // supervisor died; "" or what was done, for the detail.
  std::string KillJobGroup(const Run& r) {
    Result<std::optional<JobGroup>> g = ReadJobGroup(RunGroupPath(options_.state_dir, r.id));
    if (!g.ok()) return "; its job's process group is unknown: " + g.status().ToString();
    if (!*g) return "; its job never started";
    ProcessIdentity leader{(*g)->pgid, (*g)->start_time, r.boot_id};
    std::string group = std::to_string(leader.pid);
    if (processes_->SignalGroup(leader, SIGKILL).ok()) {
      for (int64_t waited = 0; processes_->IsAlive(leader) && waited < options_.kill_wait_ms;
           waited += 10) {
        SleepMs(10);
      }
      return "; killed its job's process group " + group;
    }
    if (processes_->SignalLeftoverGroup(leader, SIGKILL).ok()) {
      return "; killed what was left of its job's process group " + group;
    }
    return "";
  }

  // The supervisor's outcome for `r`, recorded: its own state, or
  // interrupted when the job was stopped (a stopping daemon signalled it
  // and died before recording it).
  void RecordOutcome(const Run& r, const AttemptOutcome& o) {
    std::string how = o.timed_out          ? "timed out"
                      : o.term_signal != 0 ? "killed by signal " + std::to_string(o.term_signal)
                                           : "exit " + std::to_string(o.exit_code);
    if (o.stopped || o.lost) {
      std::string detail = "its supervisor recorded it stopped (" + how + ")";
      Act("interrupt_run", r, InterruptTarget(r), detail, [&]() -> Result<Run> {
        if (hooks_.release_finished) WTD_RETURN_IF_ERROR(hooks_.release_finished(r));
        return runs_->Interrupt(r.id, "interrupted: the daemon stopped while it ran");
      });
    } else {
      Act("record_outcome", r, OutcomeTarget(r, o),
          "the job ended while no daemon watched it (" + how + "); outcome recorded",
          [&]() -> Result<Run> {
            if (hooks_.record_outcome) return hooks_.record_outcome(r, o);
            return runs_->Finish(r.id, o);
          });
    }
    RemoveSupervisorFiles(r);
  }

  // Where an outcome takes a run (as RunStore::Finish decides).
  static RunState OutcomeTarget(const Run& r, const AttemptOutcome& o) {
    if (!o.timed_out && o.term_signal == 0 && o.exit_code == 0) return RunState::kSucceeded;
    if (r.attempt < r.max_attempts) return RunState::kRetryWait;
    return o.timed_out ? RunState::kTimedOut : RunState::kFailed;
  }

  // Once the run left running (the outcome is in the store), its
  // supervisor's files and context file go.
  void RemoveSupervisorFiles(const Run& r) {
    if (plan_ || options_.state_dir.empty()) return;
    Result<Run> now = runs_->Get(r.id);
    if (!now.ok() || now->state == RunState::kRunning) return;
    for (const std::string& path :
         {RunExitPath(options_.state_dir, r.id), RunGroupPath(options_.state_dir, r.id),
          RunContextPath(options_.state_dir, r.id)}) {
      RemoveIfExists(path).IgnoreError();  // retention sweeps what stays
    }
  }

  void RecoverFinishing(const Run& r) {
    if (r.incarnation == report_->incarnation) return;  // ours: the scheduler finishes it
    std::string finished_as = "outcome recorded before the stop; finished as " +
                              std::string(RunStateName(r.finish_state));
    if (plan_) {
      return Act("finish_release", r, r.finish_state,
                 finished_as + " (skipped if another daemon's receipt is there)", nullptr);
    }
    std::string by;
    if (hooks_.write_receipt) {
      Result<std::string> receipt = hooks_.write_receipt(r);
      if (!receipt.ok()) return Error(r, receipt.status());
      by = *receipt;
    }
    if (!by.empty()) {
      return Act("finish_release", r, RunState::kSkipped,
                 "another daemon's receipt is there: done by " + by,
                 [&] { return runs_->SkipDone(r.id, r.lease_token, by); });
    }
    Act("finish_release", r, r.finish_state, finished_as,
        [&] { return runs_->CompleteFinish(r.id, r.lease_token); });
  }

  static Lease Releasing(Lease l) {
    l.state = LeaseState::kReleasing;
    return l;
  }

  // Whether the lease was (planning: would be) released.
  bool ReleaseOrphan(const Lease& l, const Result<Run>& run) {
    std::string why = run.ok()
                          ? "run " + std::to_string(l.run_id) + " is " +
                                std::string(RunStateName(run->state)) + " and no longer holds it"
                          : "run " + std::to_string(l.run_id) + " is missing";
    if (!plan_) {
      Result<Lease> released = runs_->ReleaseOrphanLease(l.repo, l.name, l.fencing_token);
      if (!released.ok()) {
        report_->errors.push_back("lease " + l.name + ": " + released.status().ToString());
        return false;
      }
    }
    RecoveryAction a;
    a.kind = "release_lease";
    a.run_id = l.run_id;
    if (run.ok()) {
      a.key = run->key;
      a.from = a.to = run->state;
    }
    a.lock = l.name;
    a.detail = "lease token " + std::to_string(l.fencing_token) + " released: " + why;
    report_->actions.push_back(std::move(a));
    if (!plan_) WTD_CRASH_POINT("during_recovery");
    return true;
  }

  void RecoverUnstarted(const Run& r) {
    Act("requeue_run", r, RunState::kPending, "no process started; back to pending",
        [&]() -> Result<Run> {
          if (hooks_.release_unstarted) WTD_RETURN_IF_ERROR(hooks_.release_unstarted(r));
          return runs_->Requeue(r.id, r.state, "requeued by recovery");
        });
  }

  // One decided action on run `before`, ending in `to`: planning, only
  // reported; otherwise `apply` (hooks, then the transition) is called and
  // the action reported with the state it reached, or the error.
  void Act(const char* kind, const Run& before, RunState to, const std::string& detail,
           const std::function<Result<Run>()>& apply) {
    std::string lock = before.lease_token != 0 ? LockName(before.key) : "";
    if (plan_) {
      moved_.insert(before.id);
      report_->actions.push_back(
          RecoveryAction{kind, before.id, before.key, before.state, to, std::move(lock), detail});
      return;
    }
    Result<Run> after = apply();
    if (!after.ok()) return Error(before, after.status());
    report_->actions.push_back(RecoveryAction{kind, before.id, before.key, before.state,
                                              after->state, std::move(lock), detail});
    WTD_CRASH_POINT("during_recovery");
  }

  void Error(const Run& r, const Status& s) {
    report_->errors.push_back("run " + std::to_string(r.id) + ": " + s.ToString());
  }

  RunStore* runs_;
  ProcessTable* processes_;
  const RecoveryHooks& hooks_;
  const std::map<uint64_t, std::string> killed_;  // run id -> what KillSurvivors did
  const RecoveryOptions& options_;
  const bool plan_;
  std::set<uint64_t> moved_;  // planning: the runs an action would move
  RecoveryReport* report_;
};

}  // namespace

Result<RecoveryReport> RunRecovery(RunStore* runs, ProcessTable* processes, Clock* clock,
                                   const RecoveryHooks& hooks, uint64_t incarnation,
                                   const RecoveryOptions& options) {
  int64_t start = clock->MonotonicUs();
  RecoveryReport report;
  report.incarnation = incarnation;
  report.planned = options.plan_only;
  std::vector<Status> damaged;
  WTD_ASSIGN_OR_RETURN(std::vector<Run> active, runs->ListActive(&damaged));
  for (const Status& d : damaged) {
    report.errors.push_back(d.ToString() + " (left in active; the other runs are recovered)");
  }
  report.active_scanned = active.size() + damaged.size();
  Kills kills = KillSurvivors(active, incarnation, processes, options);
  report.actions = std::move(kills.actions);
  Pass pass(runs, processes, hooks, std::move(kills.detail), options, &report);
  for (const Run& r : active) pass.Recover(r);
  pass.ReleaseOrphanLeases();
  report.duration_us = clock->MonotonicUs() - start;
  return report;
}

}  // namespace wtd
