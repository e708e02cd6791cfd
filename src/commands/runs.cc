// `runs`: runs newest first, filtered by job, state and worktree. Read-only:
// answered from the store when the daemon is down.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "base/clock.h"
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
  if (a.Has("follow")) {
    WTD_ASSIGN_OR_RETURN(
        int64_t every,
        ParseCount("interval-ms", a.flags.count("interval-ms") ? a.flags.at("interval-ms") : "1000",
                   100));
    args["follow"] = true;
    args["interval_ms"] = every;
  } else if (a.Has("interval-ms")) {
    return Status::InvalidArgument("--interval-ms goes with --follow");
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

// One run as a line of `--follow` without a terminal: what changed shows as
// a new line, so the output reads as a log.
std::string Line(const json& r) {
  std::string line = Cell(r["updated_at"]) + "  run " + Cell(r["id"]) + "  " + Cell(r["job"]) +
                     " in " + Cell(r["worktree"]) + " on " + Cell(r["sha"]).substr(0, 12) + "  " +
                     Cell(r["state"]) + " (attempt " + Cell(r["attempt"]) + "/" +
                     Cell(r["max_attempts"]) + ")";
  if (!r["exit_code"].is_null() && r["exit_code"].get<int64_t>() >= 0) {
    line += " exit " + Cell(r["exit_code"]);
  }
  if (!r["duration_ms"].is_null() && !r["finished_at"].is_null()) {
    line += " in " + FormatDurationMs(r["duration_ms"].get<int64_t>());
  }
  return line + "\n";
}

// --follow: the table redrawn in place on a terminal; elsewhere (a pipe, a
// file, --json) one line per run each time it changes, oldest first.
// Runs until interrupted.
int RunCli(Session& session, const json& request) {
  json args = request;
  bool follow = request.value("follow", false);
  int64_t every = request.value("interval_ms", int64_t{1000});
  args.erase("follow");
  args.erase("interval_ms");
  if (!follow) {
    Result<json> runs = session.Call("runs", args);
    if (!runs.ok()) return session.Fail(runs.status().ToString(), kExitError);
    session.Print(*runs, Print(*runs));
    return kExitOk;
  }
  bool redraw = !session.JsonOutput() && isatty(STDOUT_FILENO) == 1;
  std::map<uint64_t, std::string> shown;  // run id -> its record as last printed
  for (;;) {
    Result<json> runs = session.Call("runs", args);
    if (!runs.ok()) return session.Fail(runs.status().ToString(), kExitError);
    if (redraw) {
      // Home, clear the screen: the table is drawn anew, as top(1) does.
      std::cout << "\x1b[H\x1b[2J"
                << "wtctl runs, every " << FormatDurationMs(every) << " ("
                << FormatRfc3339(SystemClock()->NowMs()) << "; ctrl-c to stop)\n\n"
                << Print(*runs);
    } else {
      for (auto r = runs->rbegin(); r != runs->rend(); ++r) {
        std::string now = r->dump();
        std::string& before = shown[(*r)["id"].get<uint64_t>()];
        if (before == now) continue;
        before = std::move(now);
        if (session.JsonOutput()) {
          std::cout << r->dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
        } else {
          std::cout << Line(*r);
        }
      }
    }
    std::cout.flush();
    if (!std::cout) return kExitError;  // the reader went away
    std::this_thread::sleep_for(std::chrono::milliseconds(every));
  }
}

}  // namespace

const CommandDef& RunsCommand() {
  static const CommandDef kDef = {
      .name = "runs",
      .usage =
          "runs [--job J] [--state S] [--worktree W] [--limit N] [--follow [--interval-ms MS]]",
      .summary = "runs, newest first (default limit 50; 0 = all); --follow redraws them live",
      .flags = {{"job", true},
                {"state", true},
                {"worktree", true},
                {"limit", true},
                {"follow", false},
                {"interval-ms", true}},
      .access = Access::kReadOnly,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .run = RunCli,
  };
  return kDef;
}

}  // namespace wtd
