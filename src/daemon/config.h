// The daemon's configuration: command-line options, optionally backed by an
// INI file (--config FILE) holding the same option names. The command line
// wins over the file. Every option is defined once, in the table of
// daemon/options.h, which parses, validates and documents it and says
// whether a reload applies it; its default is the one of the module struct
// it sets (PollerOptions, SchedulerOptions, LoggingOptions, DaemonOptions,
// RunLockOptions).
// A bad value is refused with a message naming the option and the value.
//
// A reload (SIGHUP, `wtctl reload`) re-reads the file with the original
// command line (a bad file leaves the running config in force); PlanReload
// says what it applies and what needs a restart.
//
// Thread-safety: plain values and pure functions.
#ifndef WTD_DAEMON_CONFIG_H_
#define WTD_DAEMON_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/logging.h"
#include "scheduler/poller.h"
#include "scheduler/run_locks.h"
#include "scheduler/scheduler.h"
#include "wtd/status.h"

namespace wtd {

enum class WorktreeMode { kCurrent, kAll, kPaths };

// wtd's own settings; the rest belong to the modules that use them.
struct DaemonOptions {
  std::string state_dir;    // --state-dir; default from the environment
  std::string socket_path;  // --socket; "" until set: <state-dir>/wtd.sock
  std::string pid_file;     // --pid-file; "" until set: <state-dir>/wtd.pid
  bool daemonize = false;   // --daemonize
  bool inotify = true;      // off with --no-inotify
  std::string config_file;  // --config
  // --metrics-listen: ADDR:PORT of the Prometheus endpoint; "" = off.
  std::string metrics_listen;
};

// Daemon-owned worktrees and their idempotency records
// (docs/design/worktrees.md).
struct WorktreeOptions {
  int64_t worktree_slots = 0;      // --worktree-slots: per repository; 0 = --concurrency
  int64_t keep_failed = 3;         // --keep-failed: kept failed runs' worktrees per repository
  int64_t idem_retention_h = 168;  // --idem-retention-h: finished records kept this long
};

struct Config {
  std::vector<std::string> repos;                       // --repo: absolute paths
  WorktreeMode worktree_mode = WorktreeMode::kCurrent;  // --worktrees
  std::vector<std::string> worktree_paths;              // kPaths: absolute worktree roots
  PollerOptions poller;
  SchedulerOptions scheduler;  // its state_dir is daemon.state_dir
  LoggingOptions logging;
  DaemonOptions daemon;
  RunLockOptions locks;
  WorktreeOptions worktrees;
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

// One option whose value a reload found changed.
struct OptionChange {
  std::string option;  // its name, without the dashes
  std::string running, configured;
};

// What a reload does with a freshly parsed configuration.
struct ReloadPlan {
  // The configuration to run with: the reloaded one, with every option
  // that needs a restart at its running value.
  Config next;
  std::vector<OptionChange> applied;        // changed, in effect now
  std::vector<OptionChange> needs_restart;  // changed, kept until a restart
};
ReloadPlan PlanReload(const Config& running, const Config& reloaded);

}  // namespace wtd

#endif  // WTD_DAEMON_CONFIG_H_
