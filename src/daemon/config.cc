#include "daemon/config.h"

#include <unistd.h>

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace wtd {
namespace {

std::string Absolute(const std::string& path, const std::string& cwd) {
  if (path.empty() || path[0] == '/') return path;
  std::string p = path;
  while (p.size() > 2 && p.compare(0, 2, "./") == 0) p.erase(0, 2);
  if (p == ".") return cwd;
  return cwd + "/" + p;
}

std::string DefaultShim() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "wtd-exec";
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.find_last_of('/') + 1) + "wtd-exec";
}

po::options_description Describe(int64_t default_concurrency) {
  Config d;
  po::options_description o(
      "wtd options (each may also be set as `name = value` in --config FILE)");
  // clang-format off
  o.add_options()
    ("help,h", "show this help and exit")
    ("version", "show the version and exit")
    ("config", po::value<std::string>(), "INI file with any of these options")
    ("repo", po::value<std::vector<std::string>>(),
     "repository to watch (repeatable) [default: the repository containing the current directory]")
    ("worktrees", po::value<std::vector<std::string>>()->multitoken(),
     "which worktrees: current | all | PATH... [default: current]")
    ("jobs-root", po::value<std::string>()->default_value(d.jobs_root),
     "directory of *.job files inside each commit's tree")
    ("poll-ms", po::value<int64_t>()->default_value(d.poll_ms), "poll interval in milliseconds")
    ("lookback-s", po::value<int64_t>()->default_value(d.lookback_s),
     "for a worktree with nothing processed yet (first start, a new worktree), run commits "
     "at most this old")
    ("max-per-tick", po::value<int64_t>()->default_value(d.max_per_tick),
     "most new runs enqueued per tick (the rest wait for the next tick)")
    ("max-backfill", po::value<int64_t>()->default_value(d.max_backfill),
     "most new commits taken at once for one worktree (a switch to a long-diverged branch); "
     "older ones are skipped and reported")
    ("backoff-ms", po::value<int64_t>()->default_value(d.backoff_ms),
     "base of the exponential backoff after errors")
    ("max-backoff-ms", po::value<int64_t>()->default_value(d.max_backoff_ms), "cap of that backoff")
    ("concurrency", po::value<int64_t>()->default_value(default_concurrency),
     "most jobs running at once [default: number of cores]")
    ("shutdown-grace-s", po::value<int64_t>()->default_value(d.shutdown_grace_s),
     "on SIGTERM, how long running jobs may finish before they are stopped")
    ("log-cap-bytes", po::value<int64_t>()->default_value(d.log_cap_bytes),
     "size cap of a run's log, all its attempts together")
    ("state-dir", po::value<std::string>(),
     "state directory [default: $WTD_STATE_DIR, else $XDG_STATE_HOME/wtd, else ~/.local/state/wtd]")
    ("socket", po::value<std::string>(), "control socket [default: <state-dir>/wtd.sock]")
    ("pid-file", po::value<std::string>(), "PID file, held locked [default: <state-dir>/wtd.pid]")
    ("log-level", po::value<std::string>()->default_value(d.log_level),
     "trace | debug | info | warn | error")
    ("log-format", po::value<std::string>()->default_value("text"), "text | json")
    ("daemonize", po::bool_switch(), "detach from the terminal (setsid, double fork)")
    ("dry-run", po::bool_switch(), "discover and log what would run; run nothing")
    ("no-inotify", po::bool_switch(), "poll only; do not wake early on ref changes")
    ("exec-shim", po::value<std::string>(), "path of wtd-exec [default: beside wtd]");
  // clang-format on
  return o;
}

Status Bad(const std::string& option, const std::string& value, const std::string& why) {
  return Status::InvalidArgument("--" + option + "=" + value + ": " + why);
}

Status CheckRange(const po::variables_map& vm, const std::string& name, int64_t lo, int64_t hi,
                  int64_t* out) {
  int64_t v = vm[name].as<int64_t>();
  if (v < lo || v > hi) {
    return Bad(name, std::to_string(v),
               "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = v;
  return Status::OK();
}

Status Fill(const po::variables_map& vm, const char* (*env)(const char*), const std::string& cwd,
            Config* c) {
  if (vm.count("repo")) {
    for (const std::string& r : vm["repo"].as<std::vector<std::string>>()) {
      if (r.empty()) return Bad("repo", r, "empty path");
      c->repos.push_back(Absolute(r, cwd));
    }
  } else {
    c->repos.push_back(cwd);
  }
  if (vm.count("worktrees")) {
    auto w = vm["worktrees"].as<std::vector<std::string>>();
    if (w.size() == 1 && w[0] == "current") {
      c->worktree_mode = WorktreeMode::kCurrent;
    } else if (w.size() == 1 && w[0] == "all") {
      c->worktree_mode = WorktreeMode::kAll;
    } else {
      c->worktree_mode = WorktreeMode::kPaths;
      for (const std::string& p : w) {
        if (p.empty() || p == "current" || p == "all") {
          return Bad("worktrees", p, "expected current, all, or one or more worktree paths");
        }
        c->worktree_paths.push_back(Absolute(p, cwd));
      }
    }
  }
  c->jobs_root = vm["jobs-root"].as<std::string>();
  while (!c->jobs_root.empty() && c->jobs_root.back() == '/') c->jobs_root.pop_back();
  if (c->jobs_root.empty() || c->jobs_root[0] == '/' ||
      c->jobs_root.find("..") != std::string::npos) {
    return Bad("jobs-root", vm["jobs-root"].as<std::string>(),
               "must be a relative directory inside the repository");
  }
  WTD_RETURN_IF_ERROR(CheckRange(vm, "poll-ms", 10, 3'600'000, &c->poll_ms));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "lookback-s", 0, 10 * 365 * 86400LL, &c->lookback_s));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "max-per-tick", 1, 100'000, &c->max_per_tick));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "max-backfill", 1, 1'000'000, &c->max_backfill));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "backoff-ms", 1, 3'600'000, &c->backoff_ms));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "max-backoff-ms", 1, 86'400'000, &c->max_backoff_ms));
  if (c->max_backoff_ms < c->backoff_ms) {
    return Bad("max-backoff-ms", std::to_string(c->max_backoff_ms), "is below --backoff-ms");
  }
  WTD_RETURN_IF_ERROR(CheckRange(vm, "concurrency", 1, 1024, &c->concurrency));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "shutdown-grace-s", 0, 86'400, &c->shutdown_grace_s));
  WTD_RETURN_IF_ERROR(CheckRange(vm, "log-cap-bytes", 4096, int64_t{1} << 40, &c->log_cap_bytes));

  c->state_dir = vm.count("state-dir") ? Absolute(vm["state-dir"].as<std::string>(), cwd)
                                       : DefaultStateDir(env);
  if (c->state_dir.empty()) return Bad("state-dir", "", "empty, and no default could be found");
  c->socket_path = vm.count("socket") ? Absolute(vm["socket"].as<std::string>(), cwd)
                                      : c->state_dir + "/wtd.sock";
  if (c->socket_path.size() >= 108) {
    return Bad("socket", c->socket_path, "longer than a unix socket path may be (107 bytes)");
  }
  c->pid_file = vm.count("pid-file") ? Absolute(vm["pid-file"].as<std::string>(), cwd)
                                     : c->state_dir + "/wtd.pid";
  c->log_level = vm["log-level"].as<std::string>();
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::find(std::begin(kLevels), std::end(kLevels), c->log_level) == std::end(kLevels)) {
    return Bad("log-level", c->log_level, "expected trace, debug, info, warn or error");
  }
  std::string fmt = vm["log-format"].as<std::string>();
  if (fmt == "text") {
    c->log_format = LogFormat::kText;
  } else if (fmt == "json") {
    c->log_format = LogFormat::kJson;
  } else {
    return Bad("log-format", fmt, "expected text or json");
  }
  c->daemonize = vm["daemonize"].as<bool>();
  c->dry_run = vm["dry-run"].as<bool>();
  c->inotify = !vm["no-inotify"].as<bool>();
  c->exec_shim =
      vm.count("exec-shim") ? Absolute(vm["exec-shim"].as<std::string>(), cwd) : DefaultShim();
  return Status::OK();
}

}  // namespace

Result<ParsedArgs> ParseArgs(const std::vector<std::string>& argv, const char* (*env)(const char*),
                             const std::string& cwd) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  po::options_description desc = Describe(cores > 0 ? cores : 1);
  ParsedArgs out;
  std::ostringstream help;
  help << "Usage: wtd [options]\n\nRuns the jobs committed in a repository's "
       << "jobs directory"
       << " for every new commit of its worktrees.\n\n"
       << desc;
  out.help_text = help.str();
  po::variables_map vm;
  try {
    std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("config")) {
      out.config.config_file = Absolute(vm["config"].as<std::string>(), cwd);
      std::ifstream in(out.config.config_file);
      if (!in) {
        return Status::InvalidArgument("--config=" + out.config.config_file +
                                       ": cannot open the file");
      }
      po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::string where =
        out.config.config_file.empty() ? "" : " (in " + out.config.config_file + ")";
    return Status::InvalidArgument(std::string(e.what()) + where);
  }
  out.show_help = vm.count("help") > 0;
  out.show_version = vm.count("version") > 0;
  if (out.show_help || out.show_version) return out;
  WTD_RETURN_IF_ERROR(Fill(vm, env, cwd, &out.config));
  return out;
}

std::vector<std::string> RestartOnlyDifferences(const Config& a, const Config& b) {
  std::vector<std::string> diff;
  if (a.state_dir != b.state_dir) diff.push_back("state-dir");
  if (a.socket_path != b.socket_path) diff.push_back("socket");
  if (a.pid_file != b.pid_file) diff.push_back("pid-file");
  if (a.daemonize != b.daemonize) diff.push_back("daemonize");
  if (a.exec_shim != b.exec_shim) diff.push_back("exec-shim");
  return diff;
}

}  // namespace wtd
