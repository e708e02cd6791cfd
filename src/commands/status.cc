// `status`: the daemon, its repositories and worktrees, active runs, job-file
// errors and skipped commits. wtctl exits 3 (and prints {"running": false}
// with --json) when no daemon answers.
#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <sstream>

#include "base/time_format.h"
#include "commands/defs.h"
#include "report/run_view.h"
#include "report/table.h"

namespace wtd {
namespace {

json RepoJson(const RepoStatus& r, int64_t now) {
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
          {"last_ok", TimeOrNull(r.last_ok_ms)},
          {"error_since", TimeOrNull(r.error_since_ms)},
          {"backoff_until", TimeOrNull(r.backoff_until_ms)},
          {"backoff_ms", r.backoff_until_ms > now ? r.backoff_until_ms - now : 0},
          {"worktrees", wts}};
}

// The jobs running now with their age and whether they look stuck; the
// run records come from `active` (a run that ended meanwhile is left out).
json RunningJson(const SchedulerSnapshot& s, const std::vector<Run>& active, int64_t now) {
  json out = json::array();
  for (const RunningStatus& rs : s.running_detail) {
    auto r =
        std::find_if(active.begin(), active.end(), [&](const Run& a) { return a.id == rs.id; });
    if (r == active.end()) continue;
    out.push_back(
        {{"id", r->id},
         {"job", r->key.job},
         {"repo", r->key.repo},
         {"worktree", r->key.worktree},
         {"sha", r->key.sha},
         {"pid", r->pid},
         {"attempt", r->attempt},
         {"started_at", TimeOrNull(rs.started_at_ms)},
         {"age_s", rs.started_at_ms > 0 ? (now - rs.started_at_ms) / 1000 : 0},
         {"active_at", TimeOrNull(rs.active_at_ms)},
         {"idle_s", rs.active_at_ms > 0 ? json((now - rs.active_at_ms) / 1000) : json(nullptr)},
         {"stuck", rs.stuck},
         {"adopted", rs.adopted}});
  }
  return out;
}

json RecoveryJson(const RecoverySummary& r) {
  json actions = json::object();
  for (const auto& [kind, n] : r.actions) actions[kind] = n;
  return {{"at", TimeOrNull(r.at_ms)},
          {"first_start", r.first_start},
          {"previous_shutdown_clean", r.previous_shutdown_clean},
          {"active_scanned", r.active_scanned},
          {"actions", actions},
          {"errors", r.errors},
          {"duration_ms", r.duration_us / 1000}};
}

Result<json> Handle(const CommandContext& c, const json&) {
  if (c.daemon == nullptr) return Status::FailedPrecondition("status needs the running daemon");
  DaemonControl::Info info = c.daemon->Status();
  const SchedulerSnapshot& s = info.scheduler;
  std::vector<Status> damaged;
  WTD_ASSIGN_OR_RETURN(std::vector<Run> active, c.runs->ListActive(&damaged));
  json damaged_runs = json::array();
  for (const Status& d : damaged) damaged_runs.push_back(d.ToString());
  std::map<std::string, int> counts;
  for (const Run& r : active) ++counts[std::string(RunStateName(r.state))];
  int64_t now = c.runs->clock()->NowMs();
  json repos = json::array();
  for (const RepoStatus& r : s.repos) repos.push_back(RepoJson(r, now));
  json running = RunningJson(s, active, now);
  size_t stuck = 0;
  for (const json& r : running) stuck += r["stuck"].get<bool>() ? 1 : 0;
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
  // How often runs found their lock held by another owner, per job.
  WTD_ASSIGN_OR_RETURN(std::vector<JobLockWaits> waits, c.runs->ListJobLockWaits());
  json lock_waits = json::array();
  for (const JobLockWaits& w : waits) {
    lock_waits.push_back({{"repo", w.repo}, {"job", w.job}, {"count", w.waits}});
  }
  // The metrics endpoint's bound address; null without --metrics-listen.
  json metrics = info.metrics_listen.empty() ? json(nullptr) : json(info.metrics_listen);
  return json{{"pid", info.pid},
              {"version", info.version},
              {"started_at", FormatRfc3339(info.started_at_ms)},
              {"uptime_s", (now - info.started_at_ms) / 1000},
              {"incarnation", info.incarnation},
              {"state_dir", c.state_dir},
              {"socket", info.socket_path},
              {"metrics_listen", metrics},
              {"paused", s.paused},
              {"stopping", s.stopping},
              {"repos", repos},
              {"active", active.size()},
              {"active_by_state", counts},
              {"damaged_runs", damaged_runs},
              {"running_runs", s.running},
              {"running_jobs", running},
              {"stuck", stuck},
              {"stuck_after_s", s.stuck_after_ms / 1000},
              {"last_tick", TimeOrNull(s.last_tick_ms)},
              {"ticks", s.ticks},
              {"runs_enqueued", s.runs_enqueued},
              {"runs_started", s.runs_started},
              {"store_commits", info.store_commits},
              {"store_bytes", info.store_bytes},
              {"recovery", RecoveryJson(info.recovery)},
              {"job_errors", errors},
              {"skipped_commits", skipped},
              {"lock_waits", lock_waits},
              {"store_error", s.store_error.empty() ? json(nullptr) : json(s.store_error)}};
}

std::string FormatBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string RecoveryLine(const json& r) {
  std::string line = Cell(r["at"]) + ": " + Cell(r["active_scanned"]) + " active run(s) checked";
  std::string actions;
  for (const auto& [kind, n] : r["actions"].items()) {
    actions += (actions.empty() ? "" : ", ") + kind + " " + Cell(n);
  }
  line += actions.empty() ? ", nothing to do" : ", " + actions;
  if (!r["errors"].empty()) line += ", " + std::to_string(r["errors"].size()) + " error(s)";
  if (r["first_start"].get<bool>()) {
    line += " (the store's first start)";
  } else {
    line += r["previous_shutdown_clean"].get<bool>() ? " (after a clean stop)"
                                                     : " (after a crash or kill)";
  }
  return line;
}

std::string HealthLine(const json& r) {
  if (r["error"].is_null()) {
    return r["last_ok"].is_null() ? "not polled yet" : "ok, last polled " + Cell(r["last_ok"]);
  }
  std::string line = "failing since " + Cell(r["error_since"]) + " (" +
                     Cell(r["consecutive_failures"]) + " failure(s)";
  if (r["backoff_ms"].get<int64_t>() > 0) {
    line += ", next try in " + FormatDurationMs(r["backoff_ms"].get<int64_t>());
  }
  return line + "): " + Cell(r["error"]);
}

std::string Print(const json& s) {
  std::ostringstream o;
  o << "wtd " << Cell(s["version"]) << ", pid " << Cell(s["pid"]) << ", up "
    << FormatDurationMs(s["uptime_s"].get<int64_t>() * 1000) << ", incarnation "
    << Cell(s["incarnation"]) << "\n";
  std::vector<std::vector<std::string>> info = {
      {"state dir", Cell(s["state_dir"])},
      {"socket", Cell(s["socket"])},
      {"metrics", s.value("metrics_listen", json(nullptr)).is_string()
                      ? "http://" + Cell(s["metrics_listen"]) + "/metrics"
                      : std::string("off")},
      {"paused", Cell(s["paused"])},
      {"last tick", Cell(s["last_tick"])},
      {"runs queued", Cell(s["runs_enqueued"]) + " since start"},
      {"runs started", Cell(s["runs_started"]) + " since start"},
  };
  std::string active = Cell(s["active"]);
  std::string by_state;
  for (const auto& [state, n] : s["active_by_state"].items()) {
    by_state += (by_state.empty() ? "" : ", ") + state + " " + Cell(n);
  }
  info.push_back({"active runs", active + (by_state.empty() ? "" : " (" + by_state + ")")});
  info.push_back({"store", FormatBytes(s["store_bytes"].get<uint64_t>()) + ", " +
                               Cell(s["store_commits"]) + " commit(s) since start"});
  info.push_back({"last recovery", RecoveryLine(s["recovery"])});
  if (!s["store_error"].is_null()) info.push_back({"STORE", Cell(s["store_error"])});
  o << FormatTable(info);
  std::vector<std::vector<std::string>> health = {{"REPOSITORY", "HEALTH"}};
  for (const json& r : s["repos"]) health.push_back({Cell(r["path"]), HealthLine(r)});
  o << "\n" << FormatTable(health);
  std::vector<std::vector<std::string>> wts = {
      {"REPOSITORY", "WORKTREE", "BRANCH", "HEAD", "PATH"}};
  for (const json& r : s["repos"]) {
    for (const json& w : r["worktrees"]) {
      wts.push_back({Cell(r["root"]), Cell(w["id"]), Cell(w["branch"]),
                     Cell(w["head"]).substr(0, 12), Cell(w["path"])});
    }
  }
  o << "\n" << FormatTable(wts);
  if (!s["running_jobs"].empty()) {
    std::vector<std::vector<std::string>> rows = {
        {"RUN", "JOB", "WORKTREE", "SHA", "PID", "AGE", "IDLE", ""}};
    for (const json& r : s["running_jobs"]) {
      rows.push_back(
          {Cell(r["id"]), Cell(r["job"]), Cell(r["worktree"]), Cell(r["sha"]).substr(0, 12),
           Cell(r["pid"]), FormatDurationMs(r["age_s"].get<int64_t>() * 1000),
           r["idle_s"].is_null() ? "-" : FormatDurationMs(r["idle_s"].get<int64_t>() * 1000),
           std::string(r["stuck"].get<bool>() ? "STUCK" : "") +
               (r.value("adopted", false) ? (r["stuck"].get<bool>() ? " adopted" : "adopted")
                                          : "")});
    }
    o << "\nrunning jobs (stuck: no output and no CPU for "
      << FormatDurationMs(s["stuck_after_s"].get<int64_t>() * 1000) << "):\n"
      << FormatTable(rows);
  }
  if (!s["job_errors"].empty()) {
    o << "\njob file errors:\n";
    for (const json& e : s["job_errors"]) {
      o << "  " << Cell(e["message"]) << " (commit " << Cell(e["sha"]).substr(0, 12) << ")\n";
    }
  }
  if (s.contains("skipped_commits") && !s["skipped_commits"].empty()) {
    o << "\ncommits skipped without runs:\n";
    for (const json& k : s["skipped_commits"]) {
      o << "  " << Cell(k["worktree"]) << " of " << Cell(k["repo"]) << ": " << Cell(k["count"])
        << " up to " << Cell(k["sha"]).substr(0, 12) << ": " << Cell(k["reason"]) << "\n";
    }
  }
  if (s.contains("lock_waits") && !s["lock_waits"].empty()) {
    o << "\nruns that found their lock held by another daemon:\n";
    for (const json& w : s["lock_waits"]) {
      o << "  " << Cell(w["job"]) << " in " << Cell(w["repo"]) << ": " << Cell(w["count"])
        << " time(s)\n";
    }
  }
  return o.str();
}

int RunCli(Session& session, const json& request) {
  Result<json> r = session.Call("status", request);
  if (!r.ok() && !session.DaemonAnswers()) {
    session.Print(json{{"running", false}, {"socket", session.socket_path()}}, "");
    return session.Fail(r.status().message(), kExitNoDaemon);
  }
  if (!r.ok()) return session.Fail(r.status().ToString(), kExitError);
  (*r)["running"] = true;
  session.Print(*r, Print(*r));
  return kExitOk;
}

}  // namespace

const CommandDef& StatusCommand() {
  static const CommandDef kDef = {
      .name = "status",
      .usage = "status",
      .summary = "daemon pid, version, uptime, repositories, active runs",
      .access = Access::kDaemon,
      .handle = Handle,
      .print = Print,
      .run = RunCli,
  };
  return kDef;
}

}  // namespace wtd
