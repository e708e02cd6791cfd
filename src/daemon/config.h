// The daemon's configuration: command-line options, optionally backed by an
// INI file (--config FILE) holding the same option names. The command line
// wins over the file. Every value is validated; a bad one is refused with a
// message naming the option and the value. SIGHUP re-reads the file with the
// original command line; a bad file leaves the running config in force.
//
// Thread-safety: plain values and pure functions.
#ifndef WTD_DAEMON_CONFIG_H_
#define WTD_DAEMON_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/paths.h"
#include "wtd/status.h"

namespace wtd {

enum class WorktreeMode { kCurrent, kAll, kPaths };
enum class LogFormat { kText, kJson };

struct Config {
  std::vector<std::string> repos;  // absolute paths
  WorktreeMode worktree_mode = WorktreeMode::kCurrent;
  std::vector<std::string> worktree_paths;  // kPaths: absolute worktree roots
  std::string jobs_root = "jobs";
  int64_t poll_ms = 1500;
  int64_t lookback_s = 600;
  int64_t max_per_tick = 50;
  int64_t max_backfill = 200;
  int64_t backoff_ms = 1000;
  int64_t max_backoff_ms = 60000;
  int64_t concurrency = 0;  // 0 before validation; then >= 1
  int64_t shutdown_grace_s = 10;
  int64_t log_cap_bytes = 16 << 20;
  std::string state_dir;
  std::string socket_path;
  std::string pid_file;
  std::string log_level = "info";
  LogFormat log_format = LogFormat::kText;
  bool daemonize = false;
  bool dry_run = false;
  bool inotify = true;
  std::string exec_shim;  // path of wtd-exec
  std::string config_file;
};

struct ParsedArgs {
  Config config;
  bool show_help = false;
  bool show_version = false;
  std::string help_text;
};

// Parses argv (and the --config file, if any). `env_lookup` returns an
// environment variable or nullptr (getenv in production). `cwd` resolves
// relative paths and the default repository.
Result<ParsedArgs> ParseArgs(const std::vector<std::string>& argv,
                             const char* (*env_lookup)(const char*), const std::string& cwd);

// Names of the options that SIGHUP cannot change (they need a restart).
std::vector<std::string> RestartOnlyDifferences(const Config& running, const Config& reloaded);

}  // namespace wtd

#endif  // WTD_DAEMON_CONFIG_H_
