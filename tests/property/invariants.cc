#include "property/invariants.h"

#include <map>
#include <set>
#include <utility>

#include "base/paths.h"
#include "exec/exit_record.h"
#include "store/keys.h"
#include "store/records.h"

namespace wtd::property {
namespace {

using S = RunState;

// The moves the run store and recovery may make, from the state machine:
// each op of run_model.h, recovery's interrupt and requeue, and cancel.
bool IsStateMachineEdge(RunState from, RunState to) {
  static const std::set<std::pair<S, S>> kEdges = {
      {S::kPending, S::kLeased},
      {S::kLeased, S::kPreparing},
      {S::kLeased, S::kReady},
      {S::kPreparing, S::kReady},
      {S::kReady, S::kRunning},
      {S::kReady, S::kRetryWait},
      {S::kReady, S::kFailed},
      {S::kRunning, S::kSucceeded},
      {S::kRunning, S::kRetryWait},
      {S::kRunning, S::kFailed},
      {S::kRunning, S::kTimedOut},
      {S::kRetryWait, S::kPending},
      {S::kLeased, S::kPending},
      {S::kPreparing, S::kPending},
      {S::kReady, S::kPending},
      {S::kPending, S::kCancelled},
      {S::kLeased, S::kCancelled},
      {S::kPreparing, S::kCancelled},
      {S::kReady, S::kCancelled},
      {S::kRunning, S::kCancelled},
      {S::kRetryWait, S::kCancelled},
      // Lock leases: finishing, skipped, and a contended lock.
      {S::kRunning, S::kFinishing},
      {S::kFinishing, S::kSucceeded},
      {S::kFinishing, S::kFailed},
      {S::kFinishing, S::kTimedOut},
      {S::kFinishing, S::kRetryWait},
      {S::kFinishing, S::kSkipped},
      {S::kLeased, S::kSkipped},
      {S::kLeased, S::kRetryWait},
  };
  return kEdges.count({from, to}) > 0;
}

bool IsFinal(RunState s) {
  return s == S::kSucceeded || s == S::kFailed || s == S::kTimedOut || s == S::kCancelled ||
         s == S::kSkipped;
}

bool HoldsLease(RunState s) {
  return s == S::kLeased || s == S::kPreparing || s == S::kReady || s == S::kRunning ||
         s == S::kFinishing;
}

std::string Name(uint64_t id) { return "run " + std::to_string(id); }

std::string Move(const Event& e) {
  return std::string(RunStateName(e.from)) + " -> " + std::string(RunStateName(e.to));
}

// Reads every record of `family` through `decode` into `out` by numeric key.
template <typename T, typename DecodeFn>
void ReadFamily(const StateStore& store, Family family, DecodeFn decode, std::map<uint64_t, T>* out,
                std::vector<std::string>* errors) {
  Status s = store.Scan(family, "", [&](std::string_view k, std::string_view v) {
    Result<uint64_t> id = DecodeU64Key(k);
    Result<T> value = decode(v);
    if (!id.ok() || !value.ok()) {
      errors->push_back(std::string(FamilyName(family)) + ": undecodable record");
      return true;
    }
    (*out)[*id] = std::move(*value);
    return true;
  });
  if (!s.ok()) errors->push_back(s.ToString());
}

void CheckRunKeys(const StateStore& store, const std::map<uint64_t, Run>& runs,
                  std::vector<std::string>* errors) {
  size_t entries = 0;
  Status s = store.Scan(Family::kRunKeys, "", [&](std::string_view k, std::string_view v) {
    ++entries;
    Result<uint64_t> id = DecodeU64Key(v);
    auto run = id.ok() ? runs.find(*id) : runs.end();
    if (run == runs.end()) {
      errors->push_back("run_keys entry names no run");
    } else if (EncodeRunKey(run->second.key) != k) {
      errors->push_back("run_keys entry for " + Name(*id) + " holds another key");
    }
    return true;
  });
  if (!s.ok()) errors->push_back(s.ToString());
  for (const auto& [id, run] : runs) {
    Result<std::string> v = store.Get(Family::kRunKeys, EncodeRunKey(run.key));
    if (!v.ok() || *v != EncodeU64Key(id)) errors->push_back(Name(id) + ": run_keys lost it");
  }
  if (entries != runs.size()) {
    errors->push_back(std::to_string(entries) + " run_keys entries for " +
                      std::to_string(runs.size()) + " runs");
  }
}

void CheckActive(const StateStore& store, const std::map<uint64_t, Run>& runs,
                 std::vector<std::string>* errors) {
  std::set<uint64_t> active;
  Status s = store.Scan(Family::kActive, "", [&](std::string_view k, std::string_view) {
    Result<uint64_t> id = DecodeU64Key(k);
    if (id.ok()) active.insert(*id);
    return true;
  });
  if (!s.ok()) errors->push_back(s.ToString());
  for (const auto& [id, run] : runs) {
    bool in_active = active.count(id) > 0;
    if (IsFinal(run.state) == in_active) {
      errors->push_back(Name(id) + " is " + std::string(RunStateName(run.state)) +
                        (in_active ? " but in active" : " but not in active"));
    }
  }
  for (uint64_t id : active) {
    if (!runs.count(id)) errors->push_back("active names missing " + Name(id));
  }
}

void CheckProcesses(const std::map<uint64_t, Run>& runs, ProcessTable* processes,
                    uint64_t incarnation, std::vector<std::string>* errors) {
  for (const auto& [id, run] : runs) {
    bool alive = processes->IsAlive(ProcessIdentity{run.pid, run.pid_start_time, run.boot_id});
    if (run.state == S::kRunning && (run.incarnation != incarnation || !alive)) {
      errors->push_back(Name(id) + " is left running (incarnation " +
                        std::to_string(run.incarnation) + ", process " +
                        (alive ? "alive" : "dead") + ") after recovery by incarnation " +
                        std::to_string(incarnation));
    }
    if (run.state != S::kRunning && run.attempt > 0 && alive) {
      errors->push_back(Name(id) + " is " + std::string(RunStateName(run.state)) +
                        " but its process " + std::to_string(run.pid) + " is alive");
    }
  }
}

void CheckExitFiles(const std::map<uint64_t, Run>& runs, const std::string& state_dir,
                    std::vector<std::string>* errors) {
  for (const auto& [id, run] : runs) {
    if (run.state != S::kRunning || !run.supervised) continue;
    Result<std::optional<ExitRecord>> rec =
        ReadExitRecord(RunExitPath(state_dir, id), id, run.attempt);
    if (rec.ok() && rec->has_value()) {
      errors->push_back(Name(id) + " is left running although its supervisor recorded attempt " +
                        std::to_string(run.attempt) + "'s outcome (exit code " +
                        std::to_string((*rec)->outcome.exit_code) + ")");
    }
  }
}

// Lock leases: a held row belongs to a run that holds it (same token, a
// holding state), every run in a holding state (in this model every leased
// run took a lease) has its held row with the token it was given, and no
// token is above the store's counter or on two rows.
void CheckLeases(const StateStore& store, const std::map<uint64_t, Run>& runs,
                 std::vector<std::string>* errors) {
  uint64_t counter = 0;
  if (Result<std::string> v = store.Get(Family::kMeta, "fencing_token"); v.ok()) {
    counter = DecodeU64Key(*v).value_or(0);
  }
  std::map<std::string, Lease> rows;  // by lease key
  std::set<uint64_t> tokens;
  Status s = store.Scan(Family::kLocks, "", [&](std::string_view k, std::string_view v) {
    Result<Lease> l = DecodeLease(v);
    if (!l.ok()) {
      errors->push_back("locks: undecodable row");
      return true;
    }
    std::string what = "lease " + l->name + " (token " + std::to_string(l->fencing_token) + ")";
    if (EncodeLeaseKey(l->repo, l->name) != k) errors->push_back(what + " under another key");
    if (l->fencing_token == 0 || l->fencing_token > counter) {
      errors->push_back(what + " above the counter " + std::to_string(counter));
    }
    if (!tokens.insert(l->fencing_token).second) errors->push_back(what + ": token reused");
    auto run = runs.find(l->run_id);
    if (l->state == LeaseState::kHeld &&
        (run == runs.end() || run->second.lease_token != l->fencing_token ||
         !HoldsLease(run->second.state))) {
      errors->push_back(what + " is held for " + Name(l->run_id) + ", which " +
                        (run == runs.end()
                             ? std::string("does not exist")
                             : "is " + std::string(RunStateName(run->second.state)) +
                                   " with token " + std::to_string(run->second.lease_token)));
    }
    rows[std::string(k)] = std::move(*l);
    return true;
  });
  if (!s.ok()) errors->push_back(s.ToString());
  for (const auto& [id, run] : runs) {
    if (HoldsLease(run.state) != (run.lease_token != 0)) {
      errors->push_back(Name(id) + " is " + std::string(RunStateName(run.state)) +
                        " with lease token " + std::to_string(run.lease_token));
    }
    if (run.lease_token == 0) continue;
    auto row = rows.find(EncodeLeaseKey(run.key.repo, LockName(run.key)));
    if (row == rows.end() || row->second.state != LeaseState::kHeld ||
        row->second.fencing_token != run.lease_token || row->second.run_id != id) {
      errors->push_back(Name(id) + " (" + std::string(RunStateName(run.state)) +
                        ") lacks its held lease with token " + std::to_string(run.lease_token));
    }
  }
}

// Checks one run's events, oldest first.
void CheckHistory(const Run& run, const std::vector<Event>& events,
                  std::vector<std::string>* errors) {
  std::string name = Name(run.id);
  if (events.empty() || events[0].from != S::kPending || events[0].to != S::kPending) {
    errors->push_back(name + ": history does not start with its enqueue");
    return;
  }
  int terminal = 0;
  for (size_t i = 1; i < events.size(); ++i) {
    const Event& prev = events[i - 1];
    const Event& e = events[i];
    if (e.from != prev.to || !IsStateMachineEdge(e.from, e.to) || e.attempt < prev.attempt) {
      errors->push_back(name + ": event " + Move(e) + " (attempt " + std::to_string(e.attempt) +
                        ") cannot follow " + Move(prev) + " (attempt " +
                        std::to_string(prev.attempt) + ")");
    }
    if (IsFinal(e.to)) ++terminal;
  }
  if (terminal != (IsFinal(run.state) ? 1 : 0)) {
    errors->push_back(name + " is " + std::string(RunStateName(run.state)) + " with " +
                      std::to_string(terminal) + " terminal outcomes recorded");
  }
  const Event& last = events.back();
  if (last.to != run.state || last.attempt != run.attempt) {
    errors->push_back(name + ": last event " + Move(last) + " (attempt " +
                      std::to_string(last.attempt) + ") disagrees with the run");
  }
}

}  // namespace

std::vector<std::string> CheckInvariants(const StateStore& store, ProcessTable* processes,
                                         uint64_t incarnation, const std::string& state_dir) {
  std::vector<std::string> errors;
  std::map<uint64_t, Run> runs;
  std::map<uint64_t, Event> events;
  ReadFamily(store, Family::kRuns, DecodeRun, &runs, &errors);
  ReadFamily(store, Family::kEvents, DecodeEvent, &events, &errors);
  CheckRunKeys(store, runs, &errors);
  CheckActive(store, runs, &errors);
  CheckProcesses(runs, processes, incarnation, &errors);
  CheckExitFiles(runs, state_dir, &errors);
  CheckLeases(store, runs, &errors);
  std::map<uint64_t, std::vector<Event>> history;
  for (const auto& [seq, e] : events) history[e.run_id].push_back(e);
  for (const auto& [id, run] : runs) CheckHistory(run, history[id], &errors);
  for (const auto& [id, list] : history) {
    if (!runs.count(id)) errors.push_back("events name missing " + Name(id));
  }
  return errors;
}

std::vector<std::string> CheckIdemRecords(const std::map<int, IdemRecord>& records,
                                          uint32_t max_attempts, uint64_t incarnation) {
  std::vector<std::string> errors;
  for (const auto& [key, r] : records) {
    std::string name = "idem record " + std::to_string(key) + " (" +
                       std::string(IdemStatusName(r.status)) + ", " + std::to_string(r.attempts) +
                       " attempts)";
    if (r.attempts > max_attempts) {
      errors.push_back(name + " is past max_attempts " + std::to_string(max_attempts));
    }
    if (r.status == IdemStatus::kInProgress &&
        (r.attempts == 0 || r.owner.incarnation == 0 || r.owner.incarnation > incarnation)) {
      errors.push_back(name + " is owned by incarnation " + std::to_string(r.owner.incarnation) +
                       ", seen by " + std::to_string(incarnation));
    }
    if (r.status == IdemStatus::kCompleted && r.result.empty()) {
      errors.push_back(name + " has no result");
    }
    if (r.status == IdemStatus::kFailed && r.next_retry_at_ms == 0 && r.attempts > 0) {
      errors.push_back(name + " has no retry time");
    }
  }
  return errors;
}

std::vector<std::string> IdemHistory::Observe(const std::map<int, IdemRecord>& now,
                                              uint64_t incarnation) {
  std::vector<std::string> errors;
  for (const auto& [key, r] : now) {
    std::string name = "idem record " + std::to_string(key);
    auto done = completed_.find(key);
    if (done != completed_.end() &&
        (r.status != IdemStatus::kCompleted || r.result != done->second.result ||
         r.first_at_ms != done->second.first_at_ms)) {
      errors.push_back(name + " was completed with '" + done->second.result + "', now " +
                       std::string(IdemStatusName(r.status)) + " with '" + r.result + "'");
    }
    if (r.status == IdemStatus::kCompleted && dead_[key].count(r.owner.incarnation)) {
      errors.push_back(name + " was completed by the dead owner of incarnation " +
                       std::to_string(r.owner.incarnation));
    }
    if (r.status == IdemStatus::kCompleted) completed_.emplace(key, r);
    if (r.status == IdemStatus::kInProgress && r.owner.incarnation < incarnation) {
      dead_[key].insert(r.owner.incarnation);
    }
  }
  for (auto it = completed_.begin(); it != completed_.end();) {
    it = now.count(it->first) ? std::next(it) : completed_.erase(it);
  }
  return errors;
}

}  // namespace wtd::property
