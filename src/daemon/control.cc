#include "daemon/control.h"

#include <unistd.h>

#include <map>

#include "base/time_format.h"
#include "report/run_view.h"

namespace wtd {
namespace {

using json = nlohmann::json;

Result<int64_t> IntArg(const json& args, const char* name, int64_t fallback, int64_t lo) {
  if (!args.is_object() || !args.contains(name) || args[name].is_null()) return fallback;
  const json& v = args[name];
  if (!v.is_number_integer() || v.get<int64_t>() < lo) {
    return Status::InvalidArgument(std::string("args.") + name + ": expected an integer >= " +
                                   std::to_string(lo) + ", got " + v.dump());
  }
  return v.get<int64_t>();
}

Result<std::string> StringArg(const json& args, const char* name) {
  if (!args.is_object() || !args.contains(name) || args[name].is_null()) return std::string();
  if (!args[name].is_string()) {
    return Status::InvalidArgument(std::string("args.") + name + ": expected a string, got " +
                                   args[name].dump());
  }
  return args[name].get<std::string>();
}

json RepoJson(const RepoStatus& r) {
  json wts = json::array();
  for (const WorktreeStatus& w : r.worktrees) {
    wts.push_back({{"id", w.id},
                   {"path", w.path},
                   {"branch", w.branch},
                   {"head", w.head.empty() ? json(nullptr) : json(w.head)}});
  }
  return {{"path", r.path},
          {"root", r.root.empty() ? json(nullptr) : json(r.root)},
          {"error", r.error.empty() ? json(nullptr) : json(r.error)},
          {"consecutive_failures", r.consecutive_failures},
          {"worktrees", wts}};
}

Result<json> Status_(ControlContext* c, const json&) {
  SchedulerSnapshot s = c->scheduler->Snapshot();
  std::vector<Status> damaged;
  WTD_ASSIGN_OR_RETURN(std::vector<Run> active, c->runs->ListActive(&damaged));
  json damaged_runs = json::array();
  for (const Status& d : damaged) damaged_runs.push_back(d.ToString());
  std::map<std::string, int> counts;
  for (const Run& r : active) ++counts[std::string(RunStateName(r.state))];
  json repos = json::array();
  for (const RepoStatus& r : s.repos) repos.push_back(RepoJson(r));
  json errors = json::array();
  for (const JobFileError& e : s.job_errors) {
    errors.push_back({{"repo", e.repo}, {"sha", e.sha}, {"message", e.message}});
  }
  json skipped = json::array();
  for (const SkippedCommits& k : s.skipped_commits) {
    skipped.push_back({{"repo", k.repo},
                       {"worktree", k.worktree},
                       {"sha", k.sha},
                       {"count", k.count},
                       {"reason", k.reason},
                       {"at", FormatRfc3339(k.at_ms)}});
  }
  int64_t now = c->runs->clock()->NowMs();
  return json{{"pid", getpid()},
              {"version", WTD_VERSION},
              {"started_at", FormatRfc3339(c->started_at_ms)},
              {"uptime_s", (now - c->started_at_ms) / 1000},
              {"incarnation", c->incarnation},
              {"state_dir", c->state_dir},
              {"socket", c->socket_path},
              {"paused", s.paused},
              {"stopping", s.stopping},
              {"repos", repos},
              {"active", active.size()},
              {"active_by_state", counts},
              {"damaged_runs", damaged_runs},
              {"running_runs", s.running},
              {"last_tick", TimeOrNull(s.last_tick_ms)},
              {"ticks", s.ticks},
              {"runs_enqueued", s.runs_enqueued},
              {"runs_started", s.runs_started},
              {"store_commits", c->runs->store()->commits()},
              {"job_errors", errors},
              {"skipped_commits", skipped},
              {"store_error", s.store_error.empty() ? json(nullptr) : json(s.store_error)}};
}

Result<json> Runs(ControlContext* c, const json& args) {
  RunFilter f;
  WTD_ASSIGN_OR_RETURN(f.job, StringArg(args, "job"));
  WTD_ASSIGN_OR_RETURN(f.worktree, StringArg(args, "worktree"));
  WTD_ASSIGN_OR_RETURN(std::string state, StringArg(args, "state"));
  if (!state.empty()) {
    Result<RunState> s = ParseRunState(state);
    if (!s.ok()) return Status::InvalidArgument("args.state: " + s.status().message());
    f.state = *s;
  }
  WTD_ASSIGN_OR_RETURN(int64_t limit, IntArg(args, "limit", 50, 0));
  f.limit = static_cast<size_t>(limit);
  WTD_ASSIGN_OR_RETURN(std::vector<Run> runs, c->runs->List(f));
  json out = json::array();
  for (const Run& r : runs) out.push_back(RunToJson(r));
  return out;
}

Result<json> Show(ControlContext* c, const json& args) {
  WTD_ASSIGN_OR_RETURN(int64_t id, IntArg(args, "id", -1, 1));
  if (id < 0) return Status::InvalidArgument("args.id: a run id is required");
  WTD_ASSIGN_OR_RETURN(Run r, c->runs->Get(static_cast<uint64_t>(id)));
  return RunToJson(r);
}

Result<json> Stop(ControlContext* c, const json&) {
  c->scheduler->RequestStop();
  return json{{"stopping", true}};
}

Result<json> Pause(ControlContext* c, bool paused) {
  c->scheduler->SetPaused(paused);
  return json{{"paused", paused}};
}

Result<json> Reload(ControlContext* c, const json&) {
  WTD_RETURN_IF_ERROR(c->reload());
  return json{{"reloaded", true}};
}

}  // namespace

std::vector<CommandSpec> ControlCommands(ControlContext* c) {
  using A = const json&;
  return {
      {"status", "daemon, repositories, worktrees, active runs",
       [c](A a) { return Status_(c, a); }},
      {"runs", "runs newest first {job, state, worktree, limit}", [c](A a) { return Runs(c, a); }},
      {"show", "one run {id}", [c](A a) { return Show(c, a); }},
      {"stop", "graceful stop", [c](A a) { return Stop(c, a); }},
      {"pause", "start no new runs", [c](A) { return Pause(c, true); }},
      {"resume", "start runs again", [c](A) { return Pause(c, false); }},
      {"reload", "re-read the configuration file", [c](A a) { return Reload(c, a); }},
  };
}

}  // namespace wtd
