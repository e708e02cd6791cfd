// `trigger JOB`: enqueues a run of one job for one commit now, on the
// daemon's loop thread (DaemonControl::Trigger, Poller::Trigger). The job
// is read from the commit's own tree; its branch, path and message filters
// are not asked (pausing still holds the run). Idempotent on the run key:
// a second trigger answers the existing run ("created": false) unless
// --again asks for the next attempt series (docs/design/state-machine.md).
#include <filesystem>

#include "commands/defs.h"
#include "report/run_view.h"
#include "report/table.h"

namespace wtd {
namespace {

constexpr char kUsage[] = "trigger JOB [--repo R] [--worktree W] [--sha SHA] [--again]";

Result<json> Request(const CliArgs& a) {
  if (a.positional.size() != 1) return Status::InvalidArgument("expected one JOB");
  const std::string& job = a.positional[0];
  if (job.empty() || job.find('/') != std::string::npos || job.find('\0') != std::string::npos) {
    return Status::InvalidArgument("JOB " + job + ": expected a job name (a job file's stem)");
  }
  json args = {{"job", job}, {"again", a.Has("again")}};
  if (a.Has("repo")) {
    const std::string& repo = a.flags.at("repo");
    if (repo.empty()) return Status::InvalidArgument("--repo needs a path");
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(repo, ec);
    args["repo"] = ec ? repo : abs.lexically_normal().string();
  }
  if (a.Has("worktree")) {
    if (a.flags.at("worktree").empty()) return Status::InvalidArgument("--worktree needs an id");
    args["worktree"] = a.flags.at("worktree");
  }
  if (a.Has("sha")) {
    if (a.flags.at("sha").empty()) return Status::InvalidArgument("--sha needs a revision");
    args["sha"] = a.flags.at("sha");
  }
  return args;
}

Result<json> Handle(const CommandContext& c, const json& args) {
  if (c.daemon == nullptr) return Status::FailedPrecondition("trigger needs the running daemon");
  DaemonControl::TriggerArgs t;
  WTD_ASSIGN_OR_RETURN(t.job, StringArg(args, "job"));
  if (t.job.empty()) return Status::InvalidArgument("args.job: a job name is required");
  WTD_ASSIGN_OR_RETURN(t.repo, StringArg(args, "repo"));
  WTD_ASSIGN_OR_RETURN(std::string worktree, StringArg(args, "worktree"));
  if (!worktree.empty()) t.worktree = worktree;
  WTD_ASSIGN_OR_RETURN(t.rev, StringArg(args, "sha"));
  if (args.contains("again") && !args["again"].is_boolean()) {
    return Status::InvalidArgument("args.again: expected true or false, got " +
                                   args["again"].dump());
  }
  t.again = args.value("again", false);
  WTD_ASSIGN_OR_RETURN(TriggeredRun r, c.daemon->Trigger(t));
  return json{{"created", r.created}, {"run", RunToJson(r.run)}};
}

std::string Print(const json& result) {
  const json& r = result["run"];
  std::string sha = r["sha"].is_string() ? r["sha"].get<std::string>().substr(0, 12) : "-";
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "JOB", "SHA", "WORKTREE", "SERIES", "STATE", "CREATED"},
      {Cell(r["id"]), Cell(r["job"]), sha, Cell(r["worktree"]), Cell(r["series"]), Cell(r["state"]),
       result["created"].get<bool>() ? "yes" : "no (it exists; --again)"}};
  return FormatTable(rows);
}

}  // namespace

const CommandDef& TriggerCommand() {
  static const CommandDef kDef = {
      .name = "trigger",
      .usage = kUsage,
      .summary =
          "run JOB for a commit now (default HEAD), ignoring its branch/path/message "
          "filters; again only with --again",
      .flags = {{"repo", true}, {"worktree", true}, {"sha", true}, {"again", false}},
      .access = Access::kDaemon,
      .request = Request,
      .handle = Handle,
      .print = Print,
  };
  return kDef;
}

}  // namespace wtd
