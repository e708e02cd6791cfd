#include "commands/lock_ops.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "leasing/git_run_locks.h"
#include "locks/lock_name.h"
#include "locks/lock_refs.h"
#include "report/run_view.h"

namespace wtd {
namespace {

using locks::LockOwner;

locks::JudgeContext JudgeContextOf(const CommandContext& ctx) {
  ProcessTable* p = ctx.processes != nullptr ? ctx.processes : SystemProcessTable();
  return locks::JudgeContext{p, ctx.runs->clock()->NowMs(),
                             ctx.locks.host.empty() ? HostName() : ctx.locks.host, p->BootId(),
                             ctx.locks.grace_ms};
}

std::string LeaseKey(const std::string& repo, const std::string& name) {
  return repo + '\x1f' + name;
}

// The refs of one repository as rows, each matched with its lease row
// (which is then taken out of `leases`).
Status AddRefs(const CommandContext& ctx, const std::string& repo, const locks::JudgeContext& judge,
               std::map<std::string, Lease>* leases, LockListing* out) {
  WTD_ASSIGN_OR_RETURN(std::unique_ptr<locks::LockRefs> refs,
                       locks::LockRefs::Open(repo, {ctx.locks.locks_root}));
  WTD_ASSIGN_OR_RETURN(std::vector<locks::LockEntry> entries, refs->List());
  for (locks::LockEntry& e : entries) {
    LockRow row;
    row.repo = repo;
    row.ref = e.ref;
    row.name = e.name ? e.name->ToString() : e.ref.substr(ctx.locks.locks_root.size() + 1);
    row.ref_present = true;
    row.blob = e.blob;
    row.owner = e.owner;
    auto lease = leases->find(LeaseKey(repo, row.name));
    if (lease != leases->end()) {
      row.lease = lease->second;
      leases->erase(lease);
    }
    row.foreign =
        !row.lease || (row.lease->ref_blob != row.blob && row.lease->prev_ref_blob != row.blob);
    row.verdict = locks::JudgeLock(row.owner, judge);
    if (!e.error.empty() && row.verdict.detail.empty()) row.verdict.detail = e.error;
    out->locks.push_back(std::move(row));
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<std::string>> LockRepos(const CommandContext& ctx) {
  WTD_ASSIGN_OR_RETURN(WatchedRepos watched, ctx.runs->WatchedRepos());
  std::vector<std::string> repos = std::move(watched.paths);
  WTD_ASSIGN_OR_RETURN(std::vector<Lease> leases, ctx.runs->ListLeases());
  for (const Lease& l : leases) repos.push_back(l.repo);
  std::sort(repos.begin(), repos.end());
  repos.erase(std::unique(repos.begin(), repos.end()), repos.end());
  return repos;
}

Result<LockListing> CollectLocks(const CommandContext& ctx) {
  LockListing out;
  locks::JudgeContext judge = JudgeContextOf(ctx);
  WTD_ASSIGN_OR_RETURN(std::vector<Lease> rows, ctx.runs->ListLeases());
  std::map<std::string, Lease> leases;
  for (Lease& l : rows) leases.emplace(LeaseKey(l.repo, l.name), std::move(l));
  WTD_ASSIGN_OR_RETURN(std::vector<std::string> repos, LockRepos(ctx));
  for (const std::string& repo : repos) {
    Status s = AddRefs(ctx, repo, judge, &leases, &out);
    if (!s.ok()) out.errors.push_back(s.ToString());
  }
  for (auto& [key, l] : leases) {  // rows whose ref is not there
    LockRow row;
    row.repo = l.repo;
    row.name = l.name;
    Result<locks::LockName> n = locks::ParseLockName(ctx.locks.locks_root, l.name);
    row.ref = n.ok() ? *locks::LockRefName(ctx.locks.locks_root, *n)
                     : ctx.locks.locks_root + "/" + l.name;
    row.owner = GitRunLocks::OwnerOf(l);
    row.lease = l;
    row.verdict = locks::JudgeLock(row.owner, judge);
    out.locks.push_back(std::move(row));
  }
  std::sort(out.locks.begin(), out.locks.end(), [](const LockRow& a, const LockRow& b) {
    return std::tie(a.repo, a.name) < std::tie(b.repo, b.name);
  });
  return out;
}

json LockRowToJson(const LockRow& r, int64_t now_ms) {
  json owner = nullptr;
  if (r.owner) {
    const LockOwner& o = *r.owner;
    owner = {{"host", o.host},
             {"boot_id", o.boot_id},
             {"pid", o.pid},
             {"pid_start_time", o.pid_start_time},
             {"incarnation", o.incarnation},
             {"run_id", o.run_id},
             {"job_pid", o.job_pid},
             {"job_start_time", o.job_start_time}};
  }
  json lease = nullptr;
  if (r.lease) {
    lease = {{"state", r.lease->state == LeaseState::kHeld ? "held" : "releasing"},
             {"run_id", r.lease->run_id},
             {"token", r.lease->fencing_token}};
  }
  return {{"name", r.name},
          {"ref", r.ref},
          {"repo", r.repo},
          {"ref_present", r.ref_present},
          {"blob", r.blob.empty() ? json(nullptr) : json(r.blob)},
          {"owner", owner},
          {"token", r.owner ? json(r.owner->token) : json(nullptr)},
          {"acquired_at", r.owner ? TimeOrNull(r.owner->acquired_at_ms) : json(nullptr)},
          {"expires_at", r.owner ? TimeOrNull(r.owner->expires_at_ms) : json(nullptr)},
          {"age_ms", r.owner ? json(now_ms - r.owner->acquired_at_ms) : json(nullptr)},
          {"stale", r.verdict.stale},
          {"reason", std::string(locks::ReasonName(r.verdict.reason))},
          {"detail", r.verdict.detail},
          {"foreign", r.foreign},
          {"lease", lease}};
}

std::string Requester::ToString() const {
  return "uid " + std::to_string(uid) + (user.empty() ? "" : " (" + user + ")") + " pid " +
         std::to_string(pid);
}

json RequesterJson() {
  uid_t uid = getuid();
  passwd* pw = getpwuid(uid);  // wtctl is single-threaded
  return {{"uid", uid}, {"user", pw != nullptr ? pw->pw_name : ""}, {"pid", getpid()}};
}

Requester RequesterOf(const json& args) {
  Requester r;
  if (!args.is_object() || !args.contains("by") || !args["by"].is_object()) return r;
  const json& by = args["by"];
  if (by.contains("uid") && by["uid"].is_number_integer()) r.uid = by["uid"].get<int64_t>();
  if (by.contains("user") && by["user"].is_string()) r.user = by["user"].get<std::string>();
  if (by.contains("pid") && by["pid"].is_number_integer()) r.pid = by["pid"].get<int64_t>();
  return r;
}

Result<std::string> ReapLock(const CommandContext& ctx, const LockRow& row,
                             const std::string& reason, const std::string& by) {
  std::string done;
  if (row.ref_present) {
    WTD_ASSIGN_OR_RETURN(locks::LockName name,
                         locks::ParseLockName(ctx.locks.locks_root, row.name));
    locks::ReapRecord record{
        row.repo, row.name, row.ref, row.blob, reason, by, ctx.runs->clock()->NowMs()};
    WTD_RETURN_IF_ERROR(ctx.runs->RecordLockReap(row.repo, row.name, row.blob, record.ToJson()));
    WTD_ASSIGN_OR_RETURN(std::unique_ptr<locks::LockRefs> refs,
                         locks::LockRefs::Open(row.repo, {ctx.locks.locks_root}));
    Status s = refs->Delete(name, row.blob);
    if (!s.ok() && !s.IsNotFound()) return s;
    done = s.ok() ? "ref deleted" : "ref already gone";
  }
  if (row.lease && !row.foreign) {
    const Lease& l = *row.lease;
    if (l.state == LeaseState::kHeld) {
      Result<Lease> released = ctx.runs->ReleaseOrphanLease(l.repo, l.name, l.fencing_token);
      if (!released.ok()) {
        return done + "; lease token " + std::to_string(l.fencing_token) +
               " kept: " + released.status().message();
      }
    }
    WTD_RETURN_IF_ERROR(ctx.runs->DropLease(l.repo, l.name, l.fencing_token));
    done += std::string(done.empty() ? "" : "; ") + "lease token " +
            std::to_string(l.fencing_token) + " dropped";
  }
  return done;
}

}  // namespace wtd
