// Scheduler::Dispatch and its helpers: one run from pending to released
// (the handshake of scheduler.h).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "base/time_format.h"
#include "scheduler/scheduler.h"

extern char** environ;

namespace wtd {
namespace {

// Variables addressed to the daemon itself, not passed on to jobs: a job
// must not inherit a crash point or speak to systemd in wtd's name.
bool IsDaemonOnlyVariable(const std::string& name) {
  return name == "WTD_CRASH_AT" || name == "NOTIFY_SOCKET" || name == "WATCHDOG_PID" ||
         name == "WATCHDOG_USEC";
}

}  // namespace

Status Scheduler::Dispatch(uint64_t id) {
  WTD_ASSIGN_OR_RETURN(AcquireResult acquired, locks_->Acquire(id));
  if (acquired.kind == AcquireResult::Kind::kContended) {
    spdlog::info("run {}: job {} on {} waits: lock held by {}", id, acquired.run.key.job,
                 acquired.run.key.sha.substr(0, 12), acquired.detail);
    return Status::OK();
  }
  if (acquired.kind == AcquireResult::Kind::kRefused) {
    spdlog::error("run {} cancelled: job {} on {}: {}", id, acquired.run.key.job,
                  acquired.run.key.sha.substr(0, 12), acquired.detail);
    return Status::OK();
  }
  if (acquired.kind == AcquireResult::Kind::kDone) {
    spdlog::info("run {} skipped: job {} on {} was done by {}", id, acquired.run.key.job,
                 acquired.run.key.sha.substr(0, 12), acquired.detail);
    return Status::OK();
  }
  Run run = std::move(acquired.run);
  WTD_CRASH_POINT("after_lease_commit");
  bool isolated = run.isolation == Isolation::kCommit && slots_ != nullptr;
  // The worktree may have moved since the run was queued: an inplace run
  // runs where it is now. If it is gone, no attempt could ever start: the
  // run ends failed with the reason, its attempts untouched. A commit run
  // needs only its commit.
  Result<std::optional<std::string>> where =
      source_->CurrentWorktreePath(run.key.repo, run.key.worktree);
  if (!isolated && where.ok() && !*where) {
    std::string why = "worktree " + run.key.worktree + " of " + run.key.repo + " no longer exists";
    spdlog::warn("run {}: {}; job {} on {} failed", id, why, run.key.job,
                 run.key.sha.substr(0, 12));
    Result<Run> r = runs_->Transition(id, RunState::kLeased, RunState::kFailed,
                                      [&](Run& failed) { failed.error = why; });
    if (!r.ok()) NoteStoreError(r.status());
    if (r.ok()) ReleaseLock(*r);
    return Status::OK();
  }
  // A repository not watched now (dropped by a reload): the run carries
  // its job, so it runs where it was recorded.
  if (!where.ok() && where.status().IsNotFound()) where = std::optional<std::string>();
  std::string path = where.ok() && *where ? **where : run.worktree_path;
  if (path != run.worktree_path) {
    spdlog::info("run {}: worktree {} moved from {} to {}", id, run.key.worktree, run.worktree_path,
                 path);
  }
  Status placed = isolated ? Status::OK() : where.status();
  RunSlot slot;
  if (isolated) {
    Result<RunSlot> taken = slots_->Take(run);
    if (taken.ok()) slot = *taken;
    placed = taken.status();
  }
  // MarkReady, recording where the job runs.
  Result<Run> ready = runs_->Transition(id, RunState::kLeased, RunState::kReady, [&](Run& r) {
    r.worktree_path = path;
    r.slot = slot.name;
  });
  if (!ready.ok()) {
    if (isolated && placed.ok()) GiveSlot(run);
    return ready.status();
  }
  run = std::move(*ready);
  WTD_CRASH_POINT("after_ready_commit");

  std::unique_ptr<Launched> exec;
  // Not knowing where the worktree is (its repository not open, its
  // directory missing), or no slot to be had, is a failed start, retried
  // with the job's backoff.
  std::string dir = isolated ? slot.path : run.worktree_path;
  Status spawned = placed.ok() ? Spawn(run, dir, &exec) : placed;
  if (!spawned.ok()) {
    spdlog::warn("run {}: cannot start job {}: {}", id, run.key.job, spawned.ToString());
    Result<Run> r = runs_->SpawnFailed(id, spawned.ToString());
    if (!r.ok()) NoteStoreError(r.status());
    if (r.ok()) ReleaseLock(*r);
    if (isolated && placed.ok()) GiveSlot(run);
    return Status::OK();
  }
  WTD_CRASH_POINT("after_spawn");
  WTD_CRASH_POINT("before_running_commit");
  std::string log_path = RunLogPath(options_.state_dir, id);
  Result<Run> running = locks_->Started(run, exec->identity(), incarnation_, log_path);
  if (!running.ok()) {
    exec->Abort();  // the job never runs without its record and its lock
    NoteStoreError(running.status());
    // Recorded running but its lock ref not updated: the attempt is
    // interrupted (nothing ran) and the lock given back.
    Result<Run> now = runs_->Get(id);
    if (now.ok() && now->state == RunState::kRunning) {
      Result<Run> r =
          runs_->Interrupt(id, "cannot record the job on its lock: " + running.status().ToString());
      if (r.ok()) ReleaseLock(*r);
    }
    GiveSlot(run);
    return running.status();
  }
  WTD_CRASH_POINT("after_running_commit");
  WatchCompletion(id, exec.get());
  Status released = exec->Release(running->timeout_ms, options_.kill_grace_ms);
  if (!released.ok()) {
    // The supervisor never got its release line: nothing ran. Record the attempt as
    // interrupted so it is retried.
    exec->Abort();
    Result<Run> r = runs_->Interrupt(id, "cannot release the job: " + released.ToString());
    if (!r.ok()) NoteStoreError(r.status());
    if (r.ok()) ReleaseLock(*r);
    GiveSlot(run);
    return released;
  }
  WTD_CRASH_POINT("after_release");
  ++started_;
  spdlog::info("run {} started: job {} on {} in {} (attempt {}, pid {})", id, run.key.job,
               run.key.sha.substr(0, 12), dir, running->attempt, exec->identity().pid);
  InFlight& f = in_flight_[id];
  f.run = *running;
  f.exec = std::move(exec);
  return Status::OK();
}

void Scheduler::ReleaseLock(const Run& run) {
  Status st = locks_->Release(run);
  if (!st.ok()) {
    spdlog::error("run {}: cannot release its lock (recovery will): {}", run.id, st.ToString());
  }
}

void Scheduler::GiveSlot(const Run& run) {
  if (slots_ == nullptr || run.isolation != Isolation::kCommit) return;
  Status st = slots_->Give(run, false);
  if (!st.ok()) {
    spdlog::error("run {}: cannot free its worktree (recovery will): {}", run.id, st.ToString());
  }
}

bool Scheduler::DirectoryAvailable(const Run& r, std::set<std::string>* no_slot) {
  if (r.isolation == Isolation::kInplace) {
    // One inplace run per watched worktree at a time.
    for (const auto& [id, f] : in_flight_) {
      if (f.run.isolation == Isolation::kInplace && f.run.key.repo == r.key.repo &&
          f.run.key.worktree == r.key.worktree) {
        return false;
      }
    }
    return true;
  }
  if (slots_ == nullptr) return true;
  // Asked once per repository per step: every later run of a repository
  // without a slot waits too, without reading the slots again.
  if (no_slot->count(r.key.repo)) return false;
  if (slots_->CanTake(r)) return true;
  no_slot->insert(r.key.repo);
  return false;
}

Status Scheduler::Spawn(const Run& stored, const std::string& dir, std::unique_ptr<Launched>* out) {
  Run run = stored;
  // A record written before runs carried their job: resolve it now.
  if (run.command.empty()) WTD_RETURN_IF_ERROR(source_->ResolveJob(&run));
  std::string context_path = RunContextPath(options_.state_dir, run.id);
  WTD_RETURN_IF_ERROR(WriteContext(run, dir, context_path));
  SpawnRequest req;
  req.run_id = run.id;
  req.exit_path = RunExitPath(options_.state_dir, run.id);
  req.group_path = RunGroupPath(options_.state_dir, run.id);
  req.shim_path = options_.exec_shim;
  req.log_cap_bytes = options_.log_cap_bytes;
  req.command = run.command;
  req.cwd = dir;
  req.env = JobEnvironment(run, dir, context_path);
  req.log_path = RunLogPath(options_.state_dir, run.id);
  req.attempt = run.attempt + 1;
  WTD_ASSIGN_OR_RETURN(*out, launcher_->Start(req));
  return Status::OK();
}

std::vector<std::string> Scheduler::JobEnvironment(const Run& run, const std::string& dir,
                                                   const std::string& context_path) const {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string::npos || IsDaemonOnlyVariable(kv.substr(0, eq))) continue;
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : run.env) env[k] = v;
  env["WTD_RUN_ID"] = std::to_string(run.id);
  env["WTD_ATTEMPT"] = std::to_string(run.attempt + 1);
  env["WTD_JOB"] = run.key.job;
  env["WTD_SHA"] = run.key.sha;
  env["WTD_BRANCH"] = run.branch;
  env["WTD_WORKTREE_ID"] = run.key.worktree;
  env["WTD_WORKTREE_ROOT"] = dir;
  env["WTD_SOURCE_WORKTREE"] = run.worktree_path;
  env["WTD_REPO_ROOT"] = run.key.repo;
  env["WTD_CONTEXT"] = context_path;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Status Scheduler::WriteContext(const Run& run, const std::string& dir,
                               const std::string& path) const {
  nlohmann::json ctx = {
      {"root", run.key.repo},
      {"worktreeRoot", dir},
      {"sourceWorktree", run.worktree_path},
      {"isolation", std::string(IsolationName(run.isolation))},
      {"head", run.key.sha},
      {"branch", run.branch},
      {"worktree", {{"id", run.key.worktree}, {"branch", run.branch}}},
      {"commit",
       {{"sha", run.key.sha},
        {"author", run.commit_author},
        {"time", FormatRfc3339(run.commit_time_s * 1000)},
        {"subject", run.commit_subject}}},
      {"run", {{"id", run.id}, {"job", run.key.job}, {"attempt", run.attempt + 1}}},
  };
  WTD_RETURN_IF_ERROR(MakeDirs(DirName(path)));
  return WriteFileAtomic(path,
                         ctx.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace wtd
