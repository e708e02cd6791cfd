// `jobs`: the job definitions at the HEAD of each watched worktree, as the
// poller would load them (ReadJobFiles), with each job file that does not
// load (file, line, message). Read-only: works with the daemon up and down.
// The handler opens the repositories named by the store's watched
// repositories record with its own libgit2 handles (never the poller's,
// which belong to the loop thread). With the daemon up, the worktrees are
// those it watches (its status snapshot); with it down, every worktree of
// each repository but wtd's own (<state-dir>/worktrees), and job files are
// looked for under the default jobs root `jobs`.
#include <limits.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "base/file_util.h"
#include "commands/defs.h"
#include "git/repository.h"
#include "report/table.h"
#include "scheduler/job_loader.h"

namespace wtd {
namespace {

Result<json> Request(const CliArgs& a) {
  if (!a.positional.empty()) return Status::InvalidArgument("unexpected " + a.positional[0]);
  json args = json::object();
  if (a.Has("repo")) {
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(a.flags.at("repo"), ec);
    args["repo"] = ec ? a.flags.at("repo") : abs.lexically_normal().string();
  }
  if (a.Has("worktree")) args["worktree"] = a.flags.at("worktree");
  return args;
}

std::string Real(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

bool Under(const std::string& path, const std::string& root) {
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
         path[root.size()] == '/';
}

json JobJson(const JobSpec& s) {
  json env = json::object();
  for (const auto& [k, v] : s.env) env[k] = v;
  return {{"name", s.name},
          {"file", s.file},
          {"run", s.run},
          {"branches", s.branches},
          {"paths", s.paths},
          {"message", s.message.empty() ? json(nullptr) : json(s.message)},
          {"timeout_s", s.timeout_s},
          {"max_attempts", s.max_attempts},
          {"retry_backoff_s", s.retry_backoff_s},
          {"env", env},
          {"isolation", s.inplace ? "inplace" : "commit"},
          {"keep_worktree", s.keep_on_failure ? "on_failure" : "never"}};
}

// The worktrees the daemon watches in repository `root`, from its status
// snapshot; nullopt with the daemon down.
std::optional<std::set<std::string>> WatchedIds(const CommandContext& c, const std::string& root) {
  if (c.daemon == nullptr) return std::nullopt;
  std::set<std::string> ids;
  for (const RepoStatus& r : c.daemon->Status().scheduler.repos) {
    if (r.root != root && Real(r.path) != root) continue;
    for (const WorktreeStatus& w : r.worktrees) ids.insert(w.id);
  }
  return ids;
}

json RepoJobs(const CommandContext& c, const std::string& path, const std::string& only_wt) {
  json repo = {{"repo", path}, {"error", nullptr}, {"worktrees", json::array()}};
  Result<std::unique_ptr<git::Repository>> opened = git::Repository::Open(path);
  if (!opened.ok()) {
    repo["error"] = opened.status().ToString();
    return repo;
  }
  git::Repository* git = opened->get();
  Result<std::vector<git::WorktreeInfo>> infos = git->ListWorktrees();
  if (!infos.ok()) {
    repo["error"] = infos.status().ToString();
    return repo;
  }
  std::optional<std::set<std::string>> watched = WatchedIds(c, git->root());
  std::string own = Real(JoinPath(c.state_dir, "worktrees"));
  for (const git::WorktreeInfo& info : *infos) {
    if (!only_wt.empty() && info.id != only_wt) continue;
    if (watched ? watched->count(info.id) == 0 : Under(Real(info.path), own)) continue;
    json wt = {{"id", info.id},   {"path", info.path},     {"branch", nullptr},
               {"sha", nullptr},  {"jobs", json::array()}, {"errors", json::array()},
               {"error", nullptr}};
    Result<git::HeadInfo> head = git->ReadHead(info);
    if (!head.ok()) {
      wt["error"] = head.status().ToString();
    } else if (!head->sha.empty()) {
      wt["sha"] = head->sha;
      wt["branch"] = head->branch.empty() ? json(nullptr) : json(head->branch);
      Result<JobFiles> files = ReadJobFiles(git, head->sha, c.jobs_root);
      if (!files.ok()) {
        wt["error"] = files.status().ToString();
      } else {
        for (const auto& j : files->jobs) wt["jobs"].push_back(JobJson(j->spec()));
        for (const JobFileProblem& p : files->problems) {
          wt["errors"].push_back({{"file", p.file}, {"line", p.line}, {"message", p.message}});
        }
      }
    }
    repo["worktrees"].push_back(std::move(wt));
  }
  return repo;
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(std::string only_repo, StringArg(args, "repo"));
  WTD_ASSIGN_OR_RETURN(std::string only_wt, StringArg(args, "worktree"));
  WTD_ASSIGN_OR_RETURN(WatchedRepos watched, c.runs->WatchedRepos());
  std::string want = only_repo.empty() ? "" : Real(only_repo);
  if (!only_repo.empty()) {
    Result<std::string> root = git::ResolveRepoRoot(only_repo);
    if (root.ok()) want = *root;
  }
  json repos = json::array();
  for (const std::string& path : watched.paths) {
    if (!want.empty() && path != want && Real(path) != want) continue;
    repos.push_back(RepoJobs(c, path, only_wt));
  }
  if (!only_repo.empty() && repos.empty()) {
    std::string names;
    for (const std::string& p : watched.paths) names += (names.empty() ? "" : ", ") + p;
    return Status::NotFound("repository " + only_repo +
                            " is not watched (watched: " + (names.empty() ? "none" : names) + ")");
  }
  return json{{"jobs_root", c.jobs_root}, {"repos", repos}};
}

std::string Join(const json& list) {
  std::string out;
  for (const json& v : list) out += (out.empty() ? "" : " ") + Cell(v);
  return out.empty() ? "-" : out;
}

std::string Print(const json& result) {
  std::vector<std::vector<std::string>> rows = {{"REPO", "WORKTREE", "SHA", "JOB", "FILE",
                                                 "BRANCHES", "PATHS", "ISOLATION", "TIMEOUT_S",
                                                 "ATTEMPTS", "RUN"}};
  std::string errors;
  for (const json& repo : result["repos"]) {
    if (repo["error"].is_string())
      errors += "error: " + Cell(repo["repo"]) + ": " + Cell(repo["error"]) + "\n";
    for (const json& wt : repo["worktrees"]) {
      std::string sha = wt["sha"].is_string() ? wt["sha"].get<std::string>().substr(0, 12) : "-";
      if (wt["error"].is_string()) {
        errors += "error: " + Cell(repo["repo"]) + " worktree " + Cell(wt["id"]) + ": " +
                  Cell(wt["error"]) + "\n";
      }
      for (const json& j : wt["jobs"]) {
        rows.push_back({Cell(repo["repo"]), Cell(wt["id"]), sha, Cell(j["name"]), Cell(j["file"]),
                        Join(j["branches"]), Join(j["paths"]), Cell(j["isolation"]),
                        Cell(j["timeout_s"]), Cell(j["max_attempts"]), Cell(j["run"])});
      }
      for (const json& e : wt["errors"]) {
        errors += "error: " + Cell(wt["id"]) + " at " + sha + ": " + Cell(e["message"]) + "\n";
      }
    }
  }
  std::string table = rows.size() > 1 ? FormatTable(rows) : "no jobs\n";
  return table + errors;
}

}  // namespace

const CommandDef& JobsCommand() {
  static const CommandDef kDef = {
      .name = "jobs",
      .usage = "jobs [--repo R] [--worktree W]",
      .summary = "the jobs defined at each watched worktree's HEAD, and job files that do not load",
      .flags = {{"repo", true}, {"worktree", true}},
      .access = Access::kReadOnly,
      .request = Request,
      .handle = Handle,
      .print = Print,
  };
  return kDef;
}

}  // namespace wtd
