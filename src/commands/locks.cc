// `locks`: every lock this store and its repositories know of, with its
// stale verdict; `locks reap` deletes the stale ones, `locks release NAME
// --force` one by hand. Works with the daemon down (kStoreWrite).
#include "base/time_format.h"
#include "commands/defs.h"
#include "commands/lock_ops.h"
#include "locks/lock_name.h"
#include "report/table.h"

namespace wtd {
namespace {

Result<json> Request(const CliArgs& a) {
  std::string action = a.positional.empty() ? "list" : a.positional[0];
  json args = {{"action", action}};
  if (action == "list") {
    if (a.positional.size() > 1) return Status::InvalidArgument("unexpected " + a.positional[1]);
    if (a.Has("dry-run") || a.Has("force") || a.Has("repo")) {
      return Status::InvalidArgument("--dry-run, --force and --repo go with reap and release");
    }
    args["stale"] = a.Has("stale");
  } else if (action == "reap") {
    if (a.positional.size() > 1) return Status::InvalidArgument("reap takes no NAME");
    if (a.Has("force") || a.Has("stale") || a.Has("repo")) {
      return Status::InvalidArgument("reap takes only --dry-run");
    }
    args["dry_run"] = a.Has("dry-run");
  } else if (action == "release") {
    if (a.positional.size() != 2) return Status::InvalidArgument("release takes one NAME");
    if (!a.Has("force")) {
      return Status::InvalidArgument("release " + a.positional[1] +
                                     " frees the lock whatever its owner: say --force");
    }
    Result<locks::LockName> n = locks::ParseLockName(locks::kDefaultLocksRoot, a.positional[1]);
    if (!n.ok())
      return Status::InvalidArgument("NAME " + a.positional[1] + ": " + n.status().message());
    args["name"] = a.positional[1];
    if (a.Has("repo")) args["repo"] = a.flags.at("repo");
    args["force"] = true;
    args["by"] = RequesterJson();
  } else {
    return Status::InvalidArgument("unknown locks action " + action + " (reap, release)");
  }
  return args;
}

bool Writes(const json& args) { return args.value("action", "list") != "list"; }

Result<json> List(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(LockListing all, CollectLocks(c));
  bool stale_only = args.value("stale", false);
  json out = json::array();
  for (const LockRow& r : all.locks) {
    if (!stale_only || r.verdict.stale) out.push_back(LockRowToJson(r, c.runs->clock()->NowMs()));
  }
  WTD_ASSIGN_OR_RETURN(std::vector<JobLockWaits> waits, c.runs->ListJobLockWaits());
  json lock_waits = json::array();
  for (const JobLockWaits& w : waits) {
    lock_waits.push_back({{"repo", w.repo}, {"job", w.job}, {"count", w.waits}});
  }
  return json{{"locks", out}, {"lock_waits", lock_waits}, {"errors", all.errors}};
}

Result<json> Reap(const CommandContext& c, const json& args) {
  bool dry_run = args.value("dry_run", false);
  WTD_ASSIGN_OR_RETURN(LockListing all, CollectLocks(c));
  json reaped = json::array();
  for (const LockRow& r : all.locks) {
    if (!r.verdict.stale || !r.ref_present) continue;  // lease rows alone are recover's
    std::string reason(locks::ReasonName(r.verdict.reason));
    json item = {{"name", r.name}, {"repo", r.repo},   {"ref", r.ref},
                 {"blob", r.blob}, {"reason", reason}, {"detail", r.verdict.detail}};
    if (!dry_run) {
      Result<std::string> done = ReapLock(c, r, reason + ": " + r.verdict.detail, "locks reap");
      if (!done.ok()) {
        all.errors.push_back(r.name + " in " + r.repo + ": " + done.status().ToString());
        continue;
      }
      item["done"] = *done;
    }
    reaped.push_back(std::move(item));
  }
  return json{{"dry_run", dry_run}, {"reaped", reaped}, {"errors", all.errors}};
}

Result<json> Release(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(std::string name, StringArg(args, "name"));
  if (!args.value("force", false)) {
    return Status::InvalidArgument("args.force: release " + name + " needs force");
  }
  std::string repo = args.value("repo", "");
  std::string by = "released by hand by " + RequesterOf(args).ToString();
  WTD_ASSIGN_OR_RETURN(LockListing all, CollectLocks(c));
  std::vector<const LockRow*> matches;
  for (const LockRow& r : all.locks) {
    if (r.name == name && (repo.empty() || r.repo == repo)) matches.push_back(&r);
  }
  if (matches.size() > 1) {
    std::string repos;
    for (const LockRow* r : matches) repos += (repos.empty() ? "" : ", ") + r->repo;
    return Status::InvalidArgument("lock " + name + " is in " + std::to_string(matches.size()) +
                                   " repositories (" + repos + "): say which with --repo");
  }
  json released = json::array();
  for (const LockRow* m : matches) {
    const LockRow& r = *m;
    WTD_ASSIGN_OR_RETURN(std::string done, ReapLock(c, r, "forced", by));
    released.push_back(
        {{"name", r.name}, {"repo", r.repo}, {"ref", r.ref}, {"done", done}, {"by", by}});
  }
  if (released.empty()) {
    return Status::NotFound("no lock " + name + (repo.empty() ? "" : " in " + repo) + " among " +
                            std::to_string(all.locks.size()) +
                            " lock(s) of the watched repositories");
  }
  return json{{"released", released}, {"errors", all.errors}};
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(std::string action, StringArg(args, "action"));
  if (action.empty() || action == "list") return List(c, args);
  if (action == "reap") return Reap(c, args);
  if (action == "release") return Release(c, args);
  return Status::InvalidArgument("args.action: unknown " + action);
}

std::string PrintErrors(const json& result) {
  std::string out;
  for (const json& e : result.value("errors", json::array())) out += "error: " + Cell(e) + "\n";
  return out;
}

std::string Print(const json& result) {
  if (result.contains("released")) {
    std::string out;
    for (const json& r : result["released"]) {
      out +=
          "released " + Cell(r["name"]) + " in " + Cell(r["repo"]) + ": " + Cell(r["done"]) + "\n";
    }
    return out + PrintErrors(result);
  }
  if (result.contains("reaped")) {
    bool dry = result["dry_run"].get<bool>();
    std::string out;
    for (const json& r : result["reaped"]) {
      out += std::string(dry ? "would reap " : "reaped ") + Cell(r["name"]) + " in " +
             Cell(r["repo"]) + " (" + Cell(r["reason"]) + ")" +
             (dry ? "" : ": " + Cell(r["done"])) + "\n";
    }
    if (result["reaped"].empty()) out = "no stale locks\n";
    return out + PrintErrors(result);
  }
  std::string waits;
  for (const json& w : result.value("lock_waits", json::array())) {
    waits +=
        "  " + Cell(w["job"]) + " in " + Cell(w["repo"]) + ": " + Cell(w["count"]) + " time(s)\n";
  }
  if (!waits.empty()) waits = "runs that found their lock held by another daemon:\n" + waits;
  if (result["locks"].empty()) return "no locks\n" + waits + PrintErrors(result);
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "REPO", "OWNER", "AGE", "EXPIRES", "TOKEN", "STATE", "REASON", "FOREIGN"}};
  for (const json& r : result["locks"]) {
    std::string owner = r["owner"].is_object()
                            ? Cell(r["owner"]["host"]) + " pid " + Cell(r["owner"]["pid"])
                            : "unknown";
    rows.push_back({Cell(r["name"]), Cell(r["repo"]), owner,
                    r["age_ms"].is_null() ? "-" : FormatDurationMs(r["age_ms"].get<int64_t>()),
                    Cell(r["expires_at"]), Cell(r["token"]),
                    r["stale"].get<bool>() ? "stale" : "held", Cell(r["reason"]),
                    r["foreign"].get<bool>() ? "foreign" : "-"});
  }
  return FormatTable(rows) + waits + PrintErrors(result);
}

}  // namespace

const CommandDef& LocksCommand() {
  static const CommandDef kDef = {
      .name = "locks",
      .usage = "locks [--stale] | locks reap [--dry-run] | locks release NAME --force [--repo R]",
      .summary = "lock refs and leases, held or stale; reap the stale, release one by hand",
      .flags = {{"stale", false}, {"dry-run", false}, {"force", false}, {"repo", true}},
      .access = Access::kStoreWrite,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .writes = Writes,
  };
  return kDef;
}

}  // namespace wtd
