// `recover`: the recovery pass (src/recovery) on demand, or with --dry-run
// its plan, then the lock refs it leaves to release and the stale locks.
//
// With the daemon down, wtctl runs the whole pass on the store (opened
// read-write under the PID-file lock; --dry-run opens it read-only and plans
// as the next incarnation would). With the daemon up, the daemon has
// recovered its runs at start and owns every run since, so a pass there
// could only disturb them: `recover` then only reaps stale lock refs, as
// `locks reap` does (docs/design/wtctl.md).
#include <map>
#include <memory>
#include <set>

#include "base/file_util.h"
#include "commands/defs.h"
#include "commands/lock_ops.h"
#include "commands/slots_of.h"
#include "leasing/git_run_locks.h"
#include "locks/lock_name.h"
#include "locks/lock_refs.h"
#include "recovery/recovery.h"
#include "report/table.h"

namespace wtd {
namespace {

Result<json> Request(const CliArgs& a) {
  if (!a.positional.empty()) return Status::InvalidArgument("recover takes no arguments");
  if (a.Has("unblock")) {
    if (a.Has("dry-run")) return Status::InvalidArgument("--unblock KEY goes alone");
    return json{{"unblock", a.flags.at("unblock")}};
  }
  return json{{"dry_run", a.Has("dry-run")}};
}

bool Writes(const json& args) { return !args.value("dry_run", false); }

json Action(const std::string& kind, uint64_t run_id, const std::string& lock,
            const std::string& detail) {
  return {{"kind", kind},
          {"run_id", run_id == 0 ? json(nullptr) : json(run_id)},
          {"lock", lock.empty() ? json(nullptr) : json(lock)},
          {"detail", detail}};
}

// The stale refs, reaped unless planning, except those of `skip` (repo
// \x1f name: leases the pass releases itself).
void ReapStale(const CommandContext& c, bool dry_run, const std::set<std::string>& skip,
               json* actions, json* errors) {
  Result<LockListing> all = CollectLocks(c);
  if (!all.ok()) return errors->push_back(all.status().ToString());
  for (const std::string& e : all->errors) errors->push_back(e);
  for (const LockRow& r : all->locks) {
    if (!r.verdict.stale || !r.ref_present || skip.count(r.repo + '\x1f' + r.name) > 0) continue;
    std::string reason = std::string(locks::ReasonName(r.verdict.reason)) + ": " + r.verdict.detail;
    std::string detail = "ref " + r.ref + " in " + r.repo + " is stale (" + reason + ")";
    if (!dry_run) {
      Result<std::string> done = ReapLock(c, r, reason, "recover");
      if (!done.ok()) {
        errors->push_back(r.name + " in " + r.repo + ": " + done.status().ToString());
        continue;
      }
      detail += "; " + *done;
    }
    actions->push_back(Action("reap_lock", r.owner ? r.owner->run_id : 0, r.name, detail));
  }
}

// The slots' recovery: `running` are the runs whose jobs run now.
void RecoverSlots(const CommandContext& c, const std::set<uint64_t>& running, bool dry_run,
                  json* actions, json* errors) {
  std::unique_ptr<SlotsOnStore> own;
  WorktreeSlots* slots = SlotsOf(c, &own);
  std::vector<std::string> repos;
  Result<WatchedRepos> watched = c.runs->WatchedRepos();
  if (watched.ok()) repos = watched->paths;
  std::vector<std::string> errs;
  Result<std::vector<SlotAction>> done = slots->Recover(repos, running, dry_run, &errs);
  if (!done.ok()) return errors->push_back("worktrees: " + done.status().ToString());
  for (const SlotAction& a : *done) {
    json j = Action(a.kind, 0, "", a.detail);
    j["worktree"] = a.name.empty() ? json(nullptr) : json(a.name);
    actions->push_back(j);
  }
  for (const std::string& e : errs) errors->push_back("worktrees: " + e);
}

// --unblock KEY: a blocked idempotency record may be tried again.
Result<json> Unblock(const CommandContext& c, const std::string& key) {
  std::unique_ptr<SlotsOnStore> own;
  WorktreeSlots* slots = SlotsOf(c, &own);
  WTD_ASSIGN_OR_RETURN(IdemRecord r, slots->idem()->Unblock(key));
  return json{{"unblocked", key},
              {"op", r.op},
              {"status", std::string(IdemStatusName(r.status))},
              {"error", r.error}};
}

json RecoveryActionJson(const RecoveryAction& a) {
  json j = Action(a.kind, a.run_id, a.lock, a.detail);
  j["from"] = std::string(RunStateName(a.from));
  j["to"] = std::string(RunStateName(a.to));
  return j;
}

// The whole pass, on a store no daemon holds.
Result<json> RecoverStore(const CommandContext& c, bool dry_run) {
  RecoveryOptions options;
  options.plan_only = dry_run;
  // Outcomes supervisors recorded while no daemon ran are committed; a live
  // supervisor is left for the next daemon to adopt.
  options.state_dir = c.state_dir;
  ProcessTable* processes = c.processes != nullptr ? c.processes : SystemProcessTable();
  // Read-only (planning), the store's incarnation was not bumped: plan as
  // the incarnation that opening it read-write would make.
  uint64_t incarnation = c.runs->store()->incarnation() + (dry_run ? 1 : 0);
  // The daemon's own lock steps: receipts of finishing runs, and releases.
  GitRunLocksDeps deps;
  deps.runs = c.runs;
  deps.processes = processes;
  deps.clock = c.runs->clock();
  deps.incarnation = incarnation;
  deps.host = c.locks.host.empty() ? HostName() : c.locks.host;
  deps.options.locks_root = c.locks.locks_root;
  deps.options.notes_ref = c.locks.notes_ref;
  deps.options.lock_grace_s = c.locks.grace_ms / 1000;
  GitRunLocks leases(deps);
  RecoveryHooks hooks;
  hooks.write_receipt = [&leases](const Run& run) { return leases.WriteReceipt(run); };
  hooks.record_outcome = [&leases, &c](const Run& run, const AttemptOutcome& outcome) {
    if (run.lease_token != 0) return leases.Finish(run, outcome);
    return c.runs->Finish(run.id, outcome);
  };
  WTD_ASSIGN_OR_RETURN(RecoveryReport report, RunRecovery(c.runs, processes, c.runs->clock(), hooks,
                                                          incarnation, options));
  json actions = json::array(), errors = json::array();
  for (const RecoveryAction& a : report.actions) actions.push_back(RecoveryActionJson(a));
  for (const std::string& e : report.errors) errors.push_back(e);
  std::set<std::string> released;
  for (const Lease& l : report.releasing) {
    released.insert(l.repo + '\x1f' + l.name);
    std::string detail = "lease token " + std::to_string(l.fencing_token) + " of run " +
                         std::to_string(l.run_id) + " releasing: delete ref, drop row";
    if (!dry_run) {
      Status done = leases.ReleaseLeaseRow(l);
      if (!done.ok()) {
        errors.push_back("lease " + l.name + " in " + l.repo + ": " + done.ToString());
        continue;
      }
      detail = "lease token " + std::to_string(l.fencing_token) + " of run " +
               std::to_string(l.run_id) + ": ref deleted (unless another owner's), row dropped";
    }
    actions.push_back(Action("drop_lease", l.run_id, l.name, detail));
  }
  ReapStale(c, dry_run, released, &actions, &errors);
  std::set<uint64_t> running;
  Result<std::vector<Run>> active = c.runs->ListActive();
  if (active.ok()) {
    for (const Run& r : *active) {
      if (r.state == RunState::kRunning) running.insert(r.id);
    }
  }
  // Planned, the runs' pass has moved nothing yet: a run it would take out
  // of running no longer holds its slot in the plan either.
  for (const RecoveryAction& a : report.actions) {
    if (a.from == RunState::kRunning && a.to != RunState::kRunning) running.erase(a.run_id);
  }
  RecoverSlots(c, running, dry_run, &actions, &errors);
  return json{{"dry_run", dry_run}, {"scope", "store"}, {"actions", actions}, {"errors", errors}};
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(std::string unblock, StringArg(args, "unblock"));
  if (!unblock.empty()) return Unblock(c, unblock);
  bool dry_run = args.value("dry_run", false);
  if (c.daemon == nullptr) return RecoverStore(c, dry_run);
  json actions = json::array(), errors = json::array();
  ReapStale(c, dry_run, {}, &actions, &errors);
  // The daemon's slots: a slot stays busy while its run is active at all,
  // since the daemon takes a slot before the run is recorded running.
  std::set<uint64_t> active_runs;
  Result<std::vector<Run>> active = c.runs->ListActive();
  if (!active.ok()) return active.status().WithContext("recover: list the active runs");
  for (const Run& r : *active) active_runs.insert(r.id);
  RecoverSlots(c, active_runs, dry_run, &actions, &errors);
  return json{{"dry_run", dry_run}, {"scope", "locks"}, {"actions", actions}, {"errors", errors}};
}

std::string Print(const json& result) {
  if (result.contains("unblocked")) {
    return "unblocked " + Cell(result["op"]) + " " + Cell(result["unblocked"]) +
           ": retried at its next attempt\n";
  }
  bool dry = result.value("dry_run", false);
  std::string out;
  if (result.value("scope", "") == "locks") {
    out =
        "the daemon is running and recovered its runs at start; only stale locks and "
        "worktrees are " +
        std::string(dry ? "listed" : "reaped") + "\n";
  }
  if (result["actions"].empty()) {
    out += dry ? "nothing to do\n" : "nothing done\n";
  } else {
    std::vector<std::vector<std::string>> rows = {
        {dry ? "WOULD" : "DID", "RUN", "LOCK/WORKTREE", "DETAIL"}};
    for (const json& a : result["actions"]) {
      json lock = a.contains("worktree") && !a["lock"].is_string() ? a["worktree"] : a["lock"];
      rows.push_back({Cell(a["kind"]), Cell(a["run_id"]), Cell(lock), Cell(a["detail"])});
    }
    out += FormatTable(rows);
  }
  for (const json& e : result["errors"]) out += "error: " + Cell(e) + "\n";
  return out;
}

}  // namespace

const CommandDef& RecoverCommand() {
  static const CommandDef kDef = {
      .name = "recover",
      .usage = "recover [--dry-run | --unblock KEY]",
      .summary = "run (or only plan) the recovery pass and release what it leaves",
      .flags = {{"dry-run", false}, {"unblock", true}},
      .access = Access::kStoreWrite,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .writes = Writes,
  };
  return kDef;
}

}  // namespace wtd
