#include "worktrees/slots.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/process_table.h"
#include "base/sha256.h"
#include "git/worktree_ops.h"

namespace wtd {
namespace {

using json = nlohmann::json;

constexpr std::string_view kBranchPrefix = "wtd/slots/";

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string Real(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return path;
  return buf;
}

// A slot that counts against max_slots.
bool Working(SlotState s) {
  return s == SlotState::kCreating || s == SlotState::kFree || s == SlotState::kBusy;
}

// The state the slot of a creation completed before a crash ends in, from
// the creation's result: a manual or kept slot stays so (a kept one with its
// run); a run's slot is free (after a crash its run no longer runs).
SlotState CompletedState(const std::string& result, uint64_t* run_id) {
  *run_id = 0;
  json r = json::parse(result, nullptr, /*allow_exceptions=*/false);
  auto state = r.is_object() ? r.find("state") : r.end();
  if (!r.is_object() || state == r.end() || !state->is_string()) return SlotState::kFree;
  std::string name = state->get<std::string>();
  if (name == SlotStateName(SlotState::kManual)) return SlotState::kManual;
  auto run = r.find("run_id");
  if (name == SlotStateName(SlotState::kKept) && run != r.end() && run->is_number_unsigned()) {
    *run_id = run->get<uint64_t>();
    return SlotState::kKept;
  }
  return SlotState::kFree;
}

}  // namespace

Status CheckSlotName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') {
    return Status::InvalidArgument("worktree name '" + name +
                                   "': 1 to 64 characters, not starting with '.'");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument("worktree name '" + name +
                                     "': only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::OK();
}

IdemOwner ThisProcessIdemOwner(const StateStore& store, ProcessTable* processes) {
  IdemOwner me;
  me.host = HostName();
  me.boot_id = processes->BootId();
  me.pid = static_cast<int32_t>(getpid());
  Result<uint64_t> start = processes->StartTime(getpid());
  me.pid_start_time = start.ok() ? *start : 0;
  me.incarnation = store.incarnation();
  return me;
}

SlotsOnStore::SlotsOnStore(StateStore* store, Clock* clock, ProcessTable* processes,
                           SlotOptions options)
    : idem(store, clock, processes, ThisProcessIdemOwner(*store, processes)),
      slots(store, &idem, clock, std::move(options)) {}

WorktreeSlots::WorktreeSlots(StateStore* store, IdemStore* idem, Clock* clock, SlotOptions options)
    : store_(store),
      idem_(idem),
      clock_(clock),
      root_(options.root),
      keep_failed_(options.keep_failed),
      max_slots_(options.max_slots) {}

std::string WorktreeSlots::EncodePayload(const Payload& p) {
  return json{{"repo", p.repo},     {"admin", p.admin},       {"path", p.path},
              {"branch", p.branch}, {"branch_created", true}, {"base", p.base}}
      .dump();
}

Result<WorktreeSlots::Payload> WorktreeSlots::DecodePayload(const std::string& s) {
  json j = json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Corruption("rollback payload is not a JSON object: " + s);
  Payload p;
  for (auto [field, out] :
       {std::pair{"repo", &p.repo}, std::pair{"admin", &p.admin}, std::pair{"path", &p.path},
        std::pair{"branch", &p.branch}, std::pair{"base", &p.base}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_string()) {
      return Status::Corruption(std::string("rollback payload: no string field ") + field + ": " +
                                s);
    }
    *out = it->get<std::string>();
  }
  return p;
}

Result<std::string> WorktreeSlots::Root() const {
  WTD_RETURN_IF_ERROR(MakeDirs(root_, 0700).WithContext("worktree root"));
  return Real(root_);
}

bool WorktreeSlots::UnderRoot(const std::string& path) const {
  for (const std::string& root : {root_, Real(root_)}) {
    if (root.empty()) continue;
    std::string prefix = root.back() == '/' ? root : root + "/";
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
        path.find("/../") == std::string::npos && path.substr(path.size() - 3) != "/..") {
      return true;
    }
  }
  return false;
}

Status WorktreeSlots::Put(const Slot& slot) {
  WriteBatch b;
  b.Put(Family::kSlots, slot.name, EncodeSlot(slot));
  return store_->Commit(b).WithContext("record worktree slot " + slot.name);
}

Result<Slot> WorktreeSlots::Get(const std::string& name) const {
  Result<std::string> v = store_->Get(Family::kSlots, name);
  if (!v.ok()) {
    if (v.status().IsNotFound()) return Status::NotFound("no worktree slot named " + name);
    return v.status();
  }
  Result<Slot> s = DecodeSlot(*v);
  if (!s.ok()) return s.status().WithContext("slots/" + name);
  return s;
}

Result<std::vector<Slot>> WorktreeSlots::List() const {
  std::vector<Slot> out;
  Status bad;
  WTD_RETURN_IF_ERROR(store_->Scan(Family::kSlots, "", [&](std::string_view k, std::string_view v) {
    Result<Slot> s = DecodeSlot(v);
    if (!s.ok()) {
      bad = s.status().WithContext("slots/" + std::string(k));
      return false;
    }
    out.push_back(std::move(*s));
    return true;
  }));
  WTD_RETURN_IF_ERROR(bad);
  return out;
}

Result<std::string> WorktreeSlots::NewName(const std::string& repo) {
  WTD_ASSIGN_OR_RETURN(std::vector<Slot> all, List());
  std::set<std::string> used;
  for (const Slot& s : all) used.insert(s.name);
  // The store's id in the hash: two daemons (two stores) on one repository
  // never pick the same admin entry or branch name.
  std::string stem = "wtd-" + Sha256Hex(store_->store_id() + '\n' + repo).substr(0, 8) + "-";
  for (int n = 1;; ++n) {
    std::string name = stem + std::to_string(n);
    if (used.count(name)) continue;
    // A creation's branch that moved on is never deleted (RollBack): a slot
    // of that name could not be created while it exists.
    Result<bool> branch = BranchExists(repo, std::string(kBranchPrefix) + name);
    if (!branch.ok() || !*branch) return name;
  }
}

void WorktreeSlots::SetMaxSlots(int64_t n) {
  MutexLock l(&mu_);
  max_slots_ = n;
}

bool WorktreeSlots::CanTake(const std::string& repo) {
  MutexLock l(&mu_);
  Result<std::vector<Slot>> all = List();
  if (!all.ok()) return true;  // Take reports the error
  int64_t working = 0;
  for (const Slot& s : *all) {
    if (s.repo != repo) continue;
    if (s.state == SlotState::kFree) return true;
    if (Working(s.state)) ++working;
  }
  return working < max_slots_;
}

Result<Slot> WorktreeSlots::Take(const std::string& repo, uint64_t run_id, const std::string& sha) {
  MutexLock l(&mu_);
  WTD_ASSIGN_OR_RETURN(std::vector<Slot> all, List());
  const Slot* pick = nullptr;
  int64_t working = 0;
  for (const Slot& s : all) {
    if (s.repo != repo) continue;
    if (Working(s.state)) ++working;
    if (s.state == SlotState::kBusy && s.run_id == run_id) pick = &s;  // taken before a crash
    if (s.state != SlotState::kFree || (pick && pick->run_id == run_id)) continue;
    // The one already at the sha, else the least recently used.
    if (!pick || s.sha == sha || (pick->sha != sha && s.updated_at_ms < pick->updated_at_ms)) {
      pick = &s;
    }
  }
  if (pick == nullptr) {
    if (working >= max_slots_) {
      return Status::Busy("all " + std::to_string(max_slots_) + " worktree slots of " + repo +
                          " are in use");
    }
    WTD_ASSIGN_OR_RETURN(std::string name, NewName(repo));
    return Create(name, repo, sha, SlotState::kBusy, run_id);
  }
  Slot slot = *pick;
  slot.state = SlotState::kBusy;
  slot.run_id = run_id;
  slot.sha = sha;  // the target; a crash before the checkout ends frees it as unknown
  slot.updated_at_ms = clock_->NowMs();
  WTD_RETURN_IF_ERROR(Put(slot));
  WTD_CRASH_POINT("before_slot_checkout");
  // A free slot is used by nobody: a lock file in its admin entry was left
  // by a checkout cut short (kill -9, power loss).
  Result<int> stale = RemoveWorktreeLockFiles(slot.repo, slot.name);
  Status moved = stale.ok() ? CheckoutDetached(slot.path, sha) : stale.status();
  if (!moved.ok()) {
    // A slot that cannot be moved is damaged: it is removed and a new one
    // made for the run.
    std::vector<SlotAction> done;
    WTD_RETURN_IF_ERROR(RemoveLocked(slot, &done));
    WTD_ASSIGN_OR_RETURN(std::string name, NewName(repo));
    Result<Slot> fresh = Create(name, repo, sha, SlotState::kBusy, run_id);
    if (!fresh.ok()) {
      return fresh.status().WithContext("worktree slot " + slot.name + " could not be moved (" +
                                        moved.ToString() + ") nor replaced");
    }
    return fresh;
  }
  WTD_CRASH_POINT("after_slot_checkout");
  return slot;
}

Status WorktreeSlots::Give(uint64_t run_id, bool keep) {
  MutexLock l(&mu_);
  WTD_ASSIGN_OR_RETURN(std::vector<Slot> all, List());
  auto it = std::find_if(all.begin(), all.end(), [&](const Slot& s) {
    return s.state == SlotState::kBusy && s.run_id == run_id;
  });
  if (it == all.end()) return Status::OK();
  Slot slot = *it;
  slot.state = keep ? SlotState::kKept : SlotState::kFree;
  if (!keep) slot.run_id = 0;
  slot.updated_at_ms = clock_->NowMs();
  WTD_RETURN_IF_ERROR(Put(slot));
  if (!keep) return Status::OK();
  // Only the newest keep_failed kept slots of the repository stay.
  std::vector<Slot> kept;
  for (const Slot& s : all) {
    if (s.repo == slot.repo && s.state == SlotState::kKept && s.name != slot.name)
      kept.push_back(s);
  }
  kept.push_back(slot);
  std::sort(kept.begin(), kept.end(), [](const Slot& a, const Slot& b) {
    return a.updated_at_ms != b.updated_at_ms ? a.updated_at_ms > b.updated_at_ms : a.name > b.name;
  });
  for (size_t i = static_cast<size_t>(std::max<int64_t>(0, keep_failed_)); i < kept.size(); ++i) {
    std::vector<SlotAction> done;
    WTD_RETURN_IF_ERROR(RemoveLocked(kept[i], &done));
  }
  return Status::OK();
}

Result<Slot> WorktreeSlots::CreateManual(const std::string& name, const std::string& repo,
                                         const std::string& sha) {
  WTD_RETURN_IF_ERROR(CheckSlotName(name));
  MutexLock l(&mu_);
  Result<Slot> existing = Get(name);
  if (existing.ok() && existing->state != SlotState::kCreating) {
    if (existing->state == SlotState::kManual && existing->repo == repo && existing->sha == sha) {
      return *existing;
    }
    return Status::FailedPrecondition("worktree " + name + " exists (" +
                                      std::string(SlotStateName(existing->state)) + ", " +
                                      existing->repo + " at " + existing->sha.substr(0, 12) + ")");
  }
  if (!existing.ok() && !existing.status().IsNotFound()) return existing.status();
  return Create(name, repo, sha, SlotState::kManual, 0);
}

Result<Slot> WorktreeSlots::Create(const std::string& name, const std::string& repo,
                                   const std::string& sha, SlotState final_state, uint64_t run_id) {
  WTD_ASSIGN_OR_RETURN(std::string root, Root());
  Payload p{repo, name, JoinPath(root, name), std::string(kBranchPrefix) + name, sha};
  std::string params = json{{"base", sha}, {"name", name}, {"path", p.path}, {"repo", repo}}.dump();
  std::string key = IdemKey(kWorktreeAddOp, params);
  int64_t now = clock_->NowMs();
  Slot slot;
  Result<Slot> earlier = Get(name);
  if (earlier.ok() && earlier->state == SlotState::kCreating && earlier->idem_key == key) {
    slot = *earlier;  // a creation cut short: its record decides below
  } else {
    slot = Slot{name, repo, p.path, sha, SlotState::kCreating, 0, key, p.branch, now, now};
    WTD_RETURN_IF_ERROR(Put(slot));
  }
  WTD_CRASH_POINT("after_slot_record");
  for (int round = 0;; ++round) {
    WTD_ASSIGN_OR_RETURN(IdemBegin begin, idem_->Begin(kWorktreeAddOp, params, EncodePayload(p)));
    if (begin.decision == IdemDecision::kRollBack && round == 0) {
      WTD_ASSIGN_OR_RETURN(Payload old, DecodePayload(begin.record.rollback_payload));
      std::vector<SlotAction> done;
      WTD_RETURN_IF_ERROR(RollBack(old, &done));
      WTD_RETURN_IF_ERROR(idem_->RolledBack(begin.key).status());
      continue;
    }
    if (begin.decision == IdemDecision::kDone) break;  // completed before a crash
    if (begin.decision != IdemDecision::kProceed) {
      return Status::Busy("create worktree " + name + ": " +
                          std::string(IdemDecisionName(begin.decision)) + ": " + begin.detail +
                          " (idempotency key " + key + ")");
    }
    WTD_CRASH_POINT("after_intent_commit");
    // Leftovers of an earlier attempt at this path are ours (under the root).
    std::vector<SlotAction> done;
    Status add = RollBack(p, &done);
    if (add.ok()) add = AddDetachedWorktree(repo, name, p.path, p.branch, sha);
    if (!add.ok()) {
      Status undo = RollBack(p, &done);
      Result<IdemRecord> failed = idem_->Fail(key, add.ToString());
      if (undo.ok() && failed.ok()) {
        WriteBatch b;
        b.Delete(Family::kSlots, name);
        Status dropped = store_->Commit(b);
        if (!dropped.ok()) return dropped;
      }
      return add.WithContext("create worktree " + name);
    }
    WTD_CRASH_POINT("after_worktree_add");
    json result = {{"path", p.path},
                   {"sha", sha},
                   {"state", std::string(SlotStateName(final_state))},
                   {"run_id", run_id}};
    WTD_RETURN_IF_ERROR(idem_->Complete(key, result.dump()).status());
    WTD_CRASH_POINT("after_idem_complete");
    break;
  }
  slot.state = final_state;
  slot.run_id = run_id;
  slot.sha = sha;
  slot.updated_at_ms = clock_->NowMs();
  WTD_RETURN_IF_ERROR(Put(slot));
  return slot;
}

Status WorktreeSlots::RollBack(const Payload& p, std::vector<SlotAction>* done) {
  if (!UnderRoot(p.path)) {
    return Status::FailedPrecondition("rollback of worktree " + p.admin + ": path " + p.path +
                                      " is not under the worktree root " + root_ +
                                      "; nothing removed");
  }
  if (Exists(p.path)) {
    WTD_RETURN_IF_ERROR(RemoveTree(p.path));
    done->push_back({"rollback_worktree", p.admin, "removed work dir " + p.path});
  }
  Result<std::vector<AdminEntry>> admins = ListAdminEntries(p.repo);
  if (!admins.ok() && !admins.status().IsNotFound()) return admins.status();
  if (admins.ok()) {
    for (const AdminEntry& a : *admins) {
      if (a.name != p.admin) continue;
      // Only an entry pointing into the root (or nowhere yet) is ours.
      if (!a.gitdir.empty() && !UnderRoot(a.gitdir)) {
        done->push_back({"prune_worktree", a.name,
                         "admin entry " + a.dir + " points at " + a.gitdir + ": not wtd's, kept"});
        continue;
      }
      WTD_RETURN_IF_ERROR(RemoveAdminEntry(p.repo, a.name));
      done->push_back(
          {"prune_worktree", a.name,
           "removed admin entry " + a.dir + (a.locked ? " (locked: " + a.lock_reason + ")" : "")});
    }
  }
  // Only wtd writes its slot branches, one creation at a time (the mutex,
  // one process per store): a ref lock file there is a dead writer's.
  Result<bool> unlocked = RemoveBranchLockFile(p.repo, p.branch);
  if (unlocked.ok() && *unlocked) {
    done->push_back({"delete_branch", p.admin, "removed a dead writer's lock of " + p.branch});
  }
  Result<bool> exists = BranchExists(p.repo, p.branch);
  if (exists.ok() && *exists) {
    WTD_ASSIGN_OR_RETURN(bool deleted, DeleteBranchIfAt(p.repo, p.branch, p.base));
    done->push_back({"delete_branch", p.admin,
                     deleted ? "deleted branch " + p.branch + " at " + p.base.substr(0, 12)
                             : "branch " + p.branch + " moved on from " + p.base.substr(0, 12) +
                                   ": not deleted"});
  }
  return Status::OK();
}

Status WorktreeSlots::RemoveLocked(const Slot& slot, std::vector<SlotAction>* done) {
  Slot removing = slot;
  if (slot.state != SlotState::kRemoving) {
    removing.state = SlotState::kRemoving;
    removing.updated_at_ms = clock_->NowMs();
    WTD_RETURN_IF_ERROR(Put(removing));
  }
  WTD_CRASH_POINT("after_slot_removing");
  if (!UnderRoot(slot.path)) {
    return Status::FailedPrecondition("worktree " + slot.name + ": path " + slot.path +
                                      " is not under the worktree root; nothing removed");
  }
  if (Exists(slot.path)) {
    WTD_RETURN_IF_ERROR(RemoveTree(slot.path));
    done->push_back({"prune_worktree", slot.name, "removed work dir " + slot.path});
  }
  WTD_CRASH_POINT("after_slot_dir_remove");
  Payload p{slot.repo, slot.name, slot.path, slot.branch, slot.sha};
  Result<std::vector<AdminEntry>> admins = ListAdminEntries(slot.repo);
  if (admins.ok()) {
    for (const AdminEntry& a : *admins) {
      if (a.name != slot.name || (!a.gitdir.empty() && !UnderRoot(a.gitdir))) continue;
      WTD_RETURN_IF_ERROR(RemoveAdminEntry(slot.repo, a.name));
      done->push_back({"prune_worktree", a.name, "removed admin entry " + a.dir});
    }
  } else if (!admins.status().IsNotFound()) {
    // The repository is gone: nothing of it to remove.
    done->push_back({"prune_worktree", slot.name,
                     "repository " + slot.repo + " unreadable: " + admins.status().ToString()});
  }
  WriteBatch b;
  b.Delete(Family::kSlots, slot.name);
  if (!slot.idem_key.empty()) b.Delete(Family::kIdem, slot.idem_key);
  return store_->Commit(b).WithContext("drop worktree slot " + slot.name);
}

Result<std::vector<SlotAction>> WorktreeSlots::Remove(const std::string& name) {
  MutexLock l(&mu_);
  WTD_ASSIGN_OR_RETURN(Slot slot, Get(name));
  if (slot.state == SlotState::kBusy) {
    return Status::FailedPrecondition("worktree " + name + " is in use by run " +
                                      std::to_string(slot.run_id));
  }
  if (slot.state == SlotState::kCreating) {
    return Status::FailedPrecondition(
        "worktree " + name + " is being created; `wtctl recover` finishes or rolls it back");
  }
  std::vector<SlotAction> done;
  WTD_RETURN_IF_ERROR(RemoveLocked(slot, &done));
  return done;
}

Result<std::vector<SlotAction>> WorktreeSlots::Recover(const std::vector<std::string>& repos,
                                                       const std::set<uint64_t>& running,
                                                       bool dry_run,
                                                       std::vector<std::string>* errors) {
  MutexLock l(&mu_);
  std::vector<SlotAction> actions;
  auto note = [&](const std::string& what, const Status& st) {
    if (!st.ok()) errors->push_back(what + ": " + st.ToString());
  };
  WTD_ASSIGN_OR_RETURN(std::vector<Slot> all, List());
  std::set<std::string> all_repos(repos.begin(), repos.end());
  for (const Slot& s : all) all_repos.insert(s.repo);

  for (const Slot& s : all) {
    if (s.state == SlotState::kCreating) {
      Result<IdemRecord> rec = idem_->Get(s.idem_key);
      if (rec.ok() && rec->status == IdemStatus::kCompleted) {
        Slot done = s;
        done.state = CompletedState(rec->result, &done.run_id);
        actions.push_back(
            {"complete_slot", s.name,
             "creation completed; slot made " + std::string(SlotStateName(done.state))});
        if (dry_run) continue;
        done.updated_at_ms = clock_->NowMs();
        note("slot " + s.name, Put(done));
        continue;
      }
      if (rec.ok() && rec->status == IdemStatus::kInProgress) {
        IdemOwnerVerdict v = idem_->Judge(rec->owner);
        if (v.alive) {
          errors->push_back("slot " + s.name + ": creation in progress by " + rec->owner.host +
                            " pid " + std::to_string(rec->owner.pid) + " (" + v.detail +
                            "): left alone");
          continue;
        }
      }
      Result<Payload> p = rec.ok()
                              ? DecodePayload(rec->rollback_payload)
                              : Result<Payload>(Payload{s.repo, s.name, s.path, s.branch, s.sha});
      if (!p.ok()) {
        note("slot " + s.name, p.status());
        continue;
      }
      if (rec.ok() && rec->status == IdemStatus::kInProgress) {
        actions.push_back(
            {"rollback_idempotency", s.name,
             "worktree_add " + s.idem_key.substr(0, 12) + " in progress by a dead owner"});
      }
      actions.push_back({"rollback_worktree", s.name,
                         "creation of " + s.path + " cut short: remove its pieces, drop the slot"});
      if (dry_run) continue;
      std::vector<SlotAction> done;
      Status st = RollBack(*p, &done);
      if (st.ok() && rec.ok() && rec->status == IdemStatus::kInProgress) {
        st = idem_->RolledBack(s.idem_key).status();
      }
      if (st.ok()) {
        WriteBatch b;
        b.Delete(Family::kSlots, s.name);
        st = store_->Commit(b);
      }
      actions.insert(actions.end(), done.begin(), done.end());
      note("slot " + s.name, st);
      WTD_CRASH_POINT("during_recovery");
      continue;
    }
    if (s.state == SlotState::kRemoving) {
      actions.push_back({"prune_worktree", s.name, "removal cut short: finish it"});
      if (dry_run) continue;
      std::vector<SlotAction> done;
      note("slot " + s.name, RemoveLocked(s, &done));
      actions.insert(actions.end(), done.begin(), done.end());
      continue;
    }
    Slot cur = s;
    if (s.state == SlotState::kBusy && !running.count(s.run_id)) {
      actions.push_back({"release_slot", s.name,
                         "run " + std::to_string(s.run_id) + " no longer runs: slot made free"});
      cur.state = SlotState::kFree;
      cur.run_id = 0;
      cur.sha = "";  // its checkout may have been cut short
      cur.updated_at_ms = clock_->NowMs();
      if (!dry_run) note("slot " + s.name, Put(cur));
    }
    // Git writes a worktree's files without fsync: check it on disk.
    Result<std::string> head = VerifyWorktree(s.repo, s.name, s.path);
    if (head.ok()) continue;
    if (cur.state == SlotState::kBusy) continue;  // its job is running there
    actions.push_back({"rebuild_slot", s.name, head.status().message()});
    if (dry_run) continue;
    std::vector<SlotAction> done;
    Status st = RemoveLocked(cur, &done);
    if (st.ok() && !s.sha.empty()) {
      Result<Slot> made = Create(s.name, s.repo, s.sha, cur.state, cur.run_id);
      st = made.status();
    }
    note("rebuild slot " + s.name, st);
  }

  // What no slot owns: directories under the root, admin entries pointing
  // into it.
  WTD_ASSIGN_OR_RETURN(std::vector<Slot> now, List());
  std::map<std::string, const Slot*> by_name;
  for (const Slot& s : now) by_name[s.name] = &s;
  if (dry_run) {
    // Planned removals above still own their names in the plan.
    for (const Slot& s : all) by_name.emplace(s.name, &s);
  }
  std::string root = Real(root_);
  if (DIR* d = opendir(root.c_str())) {
    std::vector<std::string> orphans;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || by_name.count(name)) continue;
      orphans.push_back(name);
    }
    closedir(d);
    for (const std::string& name : orphans) {
      std::string path = JoinPath(root, name);
      actions.push_back({"prune_worktree", "", "removed " + path + ": no slot owns it"});
      if (!dry_run) note("remove " + path, RemoveTree(path));
    }
  }
  for (const std::string& repo : all_repos) {
    Result<std::vector<AdminEntry>> admins = ListAdminEntries(repo);
    if (!admins.ok()) {
      note("admin entries of " + repo, admins.status());
      continue;
    }
    for (const AdminEntry& a : *admins) {
      if (a.gitdir.empty() || !UnderRoot(a.gitdir)) continue;
      auto owner = by_name.find(a.name);
      if (owner != by_name.end() && owner->second->repo == repo && UnderRoot(owner->second->path)) {
        continue;
      }
      actions.push_back({"prune_worktree", a.name,
                         "removed admin entry " + a.dir + " (" + a.gitdir + "): no slot owns it" +
                             (a.locked ? "; locked: " + a.lock_reason : "")});
      if (!dry_run) note("remove " + a.dir, RemoveAdminEntry(repo, a.name));
    }
  }
  // Creation records left in progress with no slot (their slot was dropped).
  Result<std::vector<IdemEntry>> records = idem_->List();
  if (records.ok()) {
    for (const IdemEntry& e : *records) {
      if (e.record.op != kWorktreeAddOp || e.record.status != IdemStatus::kInProgress) continue;
      bool owned =
          std::any_of(now.begin(), now.end(), [&](const Slot& s) { return s.idem_key == e.key; });
      if (owned || idem_->Judge(e.record.owner).alive) continue;
      actions.push_back({"rollback_idempotency", "",
                         "worktree_add " + e.key.substr(0, 12) + " in progress with no slot"});
      if (dry_run) continue;
      Result<Payload> p = DecodePayload(e.record.rollback_payload);
      std::vector<SlotAction> done;
      Status st = p.ok() ? RollBack(*p, &done) : p.status();
      if (st.ok()) st = idem_->RolledBack(e.key).status();
      actions.insert(actions.end(), done.begin(), done.end());
      note("idem " + e.key, st);
    }
  }
  return actions;
}

}  // namespace wtd
