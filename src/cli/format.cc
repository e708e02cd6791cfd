#include "cli/format.h"

#include <algorithm>
#include <sstream>

#include "base/time_format.h"

namespace wtd {

using json = nlohmann::json;

std::string Cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string FormatRuns(const json& runs) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "JOB", "WORKTREE", "SHA", "ATTEMPT", "EXIT", "STARTED", "DURATION"}};
  for (const json& r : runs) {
    std::string duration =
        r["duration_ms"].is_null() ? "-" : FormatDurationMs(r["duration_ms"].get<int64_t>());
    std::string sha = Cell(r["sha"]).substr(0, 12);
    rows.push_back({Cell(r["id"]), Cell(r["state"]), Cell(r["job"]), Cell(r["worktree"]), sha,
                    Cell(r["attempt"]) + "/" + Cell(r["max_attempts"]), Cell(r["exit_code"]),
                    Cell(r["started_at"]), duration});
  }
  if (runs.empty()) return "no runs\n";
  return FormatTable(rows);
}

std::string FormatStatus(const json& s) {
  std::ostringstream o;
  o << "wtd " << Cell(s["version"]) << ", pid " << Cell(s["pid"]) << ", up "
    << FormatDurationMs(s["uptime_s"].get<int64_t>() * 1000) << ", incarnation "
    << Cell(s["incarnation"]) << "\n";
  std::vector<std::vector<std::string>> info = {
      {"state dir", Cell(s["state_dir"])},
      {"socket", Cell(s["socket"])},
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
  if (!s["store_error"].is_null()) info.push_back({"STORE", Cell(s["store_error"])});
  o << FormatTable(info);
  std::vector<std::vector<std::string>> wts = {
      {"REPOSITORY", "WORKTREE", "BRANCH", "HEAD", "PATH"}};
  for (const json& r : s["repos"]) {
    if (!r["error"].is_null()) {
      wts.push_back({Cell(r["path"]), "-", "-", "-", "error: " + Cell(r["error"])});
    }
    for (const json& w : r["worktrees"]) {
      wts.push_back({Cell(r["root"]), Cell(w["id"]), Cell(w["branch"]),
                     Cell(w["head"]).substr(0, 12), Cell(w["path"])});
    }
  }
  o << "\n" << FormatTable(wts);
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
  return o.str();
}

}  // namespace wtd
