// `runs`: runs newest first, filtered by job, state and worktree. Read-only:
// answered from the store when the daemon is down.
#include "base/time_format.h"
#include "commands/defs.h"
#include "report/run_view.h"
#include "report/table.h"

namespace wtd {
namespace {

constexpr int64_t kDefaultLimit = 50;

// The filter of a request: {job, state, worktree, limit}, each optional.
Result<RunFilter> FilterOf(const json& args) {
  RunFilter f;
  WTD_ASSIGN_OR_RETURN(f.job, StringArg(args, "job"));
  WTD_ASSIGN_OR_RETURN(f.worktree, StringArg(args, "worktree"));
  WTD_ASSIGN_OR_RETURN(std::string state, StringArg(args, "state"));
  if (!state.empty()) {
    Result<RunState> s = ParseRunState(state);
    if (!s.ok()) return Status::InvalidArgument("args.state: " + s.status().message());
    f.state = *s;
  }
  WTD_ASSIGN_OR_RETURN(int64_t limit, IntArg(args, "limit", kDefaultLimit, 0));
  f.limit = static_cast<size_t>(limit);
  return f;
}

Result<json> Request(const CliArgs& a) {
  json args = json::object();
  for (const char* k : {"job", "state", "worktree"}) {
    if (a.Has(k)) args[k] = a.flags.at(k);
  }
  if (a.Has("limit")) {
    WTD_ASSIGN_OR_RETURN(args["limit"], ParseCount("limit", a.flags.at("limit"), 0));
  }
  Result<RunFilter> checked = FilterOf(args);
  if (!checked.ok()) {
    std::string m = checked.status().message();
    if (m.rfind("args.", 0) == 0) m = "--" + m.substr(5);
    return Status::InvalidArgument(m);
  }
  return args;
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(RunFilter f, FilterOf(args));
  WTD_ASSIGN_OR_RETURN(std::vector<Run> runs, c.runs->List(f));
  json out = json::array();
  for (const Run& r : runs) out.push_back(RunToJson(r));
  return out;
}

std::string Print(const json& runs) {
  if (runs.empty()) return "no runs\n";
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "JOB", "WORKTREE", "SHA", "ATTEMPT", "EXIT", "STARTED", "DURATION"}};
  for (const json& r : runs) {
    std::string duration =
        r["duration_ms"].is_null() ? "-" : FormatDurationMs(r["duration_ms"].get<int64_t>());
    rows.push_back({Cell(r["id"]), Cell(r["state"]), Cell(r["job"]), Cell(r["worktree"]),
                    Cell(r["sha"]).substr(0, 12),
                    Cell(r["attempt"]) + "/" + Cell(r["max_attempts"]), Cell(r["exit_code"]),
                    Cell(r["started_at"]), duration});
  }
  return FormatTable(rows);
}

}  // namespace

const CommandDef& RunsCommand() {
  static const CommandDef kDef = {
      .name = "runs",
      .usage = "runs [--job J] [--state S] [--worktree W] [--limit N]",
      .summary = "runs, newest first (default limit 50; 0 = all)",
      .flags = {{"job", true}, {"state", true}, {"worktree", true}, {"limit", true}},
      .access = Access::kReadOnly,
      .request = Request,
      .handle = Handle,
      .print = Print,
  };
  return kDef;
}

}  // namespace wtd
