// One definition per control command: its name, wtctl's usage line, flags
// and help, the request built from wtctl's arguments, the handler the daemon
// serves on its socket, and the printer of its result. wtd's control table
// (src/daemon/control.cc) and wtctl's dispatch (src/cli/wtctl.cc) are both
// built from AllCommands(), so a command cannot exist on one side only.
// docs/design/wtctl.md documents each request and result.
//
// A read-only command's handler needs only the store: when no daemon
// answers, wtctl opens the store read-only and calls the same handler.
//
// Adding a command: one file in src/commands/ defining a CommandDef, its
// entry in AllCommands() (registry.cc), its test and its row in wtctl.md.
//
// Thread-safety: definitions are immutable. Handlers may run on several
// threads at once (the server's workers); what they reach through
// CommandContext must be thread-safe (RunStore is; DaemonControl must be).
#ifndef WTD_COMMANDS_COMMAND_H_
#define WTD_COMMANDS_COMMAND_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/process_table.h"
#include "report/daemon_status.h"
#include "retention/collector.h"
#include "runs/run_store.h"
#include "wtd/status.h"

namespace wtd {

class WorktreeSlots;
using json = nlohmann::json;

// wtctl's exit codes.
inline constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2, kExitNoDaemon = 3;

// What a reload did (docs/design/options.md): the options whose value
// changed, by name without the dashes, in --help order.
struct ReloadResult {
  std::string config_file;                 // "" with no --config
  std::vector<std::string> applied;        // in effect now
  std::vector<std::string> needs_restart;  // running value kept until a restart
};

// What `gc` did or, dry-run, would do (docs/design/wtctl.md, "gc").
struct GcResult {
  double retention_days = 0;   // 0: forever, nothing collected
  std::string retention_from;  // "daemon", "--retention-days" or "default"
  int64_t cutoff_ms = 0;       // what finished before this went (0 with retention 0)
  CollectReport report;
};

// What only a running daemon can answer or do. Implemented by src/daemon.
class DaemonControl {
 public:
  virtual ~DaemonControl() = default;
  // The daemon's own figures for `status`.
  struct Info {
    int pid = 0;
    std::string version;
    int64_t started_at_ms = 0;
    uint64_t incarnation = 0;
    std::string socket_path;
    std::string metrics_listen;  // the metrics endpoint's bound ADDR:PORT; "" when off
    uint64_t store_commits = 0;
    uint64_t store_bytes = 0;  // the store's files on disk
    RecoverySummary recovery;
    SchedulerSnapshot scheduler;
  };
  virtual Info Status() = 0;
  virtual void RequestStop() = 0;
  // `restart`: the daemon re-executes itself with the same command line,
  // leaving running jobs to their supervisors for the next incarnation to
  // adopt. Returns the number of jobs left running.
  virtual Result<uint64_t> RequestRestart() {
    return Status::NotSupported("this daemon cannot restart itself");
  }
  virtual void SetPaused(bool paused) = 0;
  // Re-reads the configuration and applies it; the error says what was
  // refused (then nothing changed).
  virtual Result<ReloadResult> Reload() = 0;

  // `trigger`: a run of `job` at `rev` ("" = HEAD) of worktree `worktree` of
  // repository `repo` ("" = the one watched), enqueued on the loop thread
  // (Poller::Trigger) and committed before this returns; the loop is woken
  // to dispatch it.
  struct TriggerArgs {
    std::string repo;
    std::string worktree = "main";
    std::string job;
    std::string rev;
    bool again = false;
  };
  virtual Result<TriggeredRun> Trigger(const TriggerArgs& /*args*/) {
    return Status::NotSupported("this daemon cannot trigger runs");
  }
  // `cancel`: run `id` ends cancelled with error `reason` (Scheduler::Cancel:
  // a running job's process group is killed first); the committed run.
  virtual Result<Run> Cancel(uint64_t /*id*/, const std::string& /*reason*/) {
    return Status::NotSupported("this daemon cannot cancel runs");
  }
  // One collection of history with the daemon's --retention-days, batch
  // by batch on the loop thread, as its own retention does (so the two
  // never race); at most about 20 s of batches per call (report.caught_up
  // says whether it finished).
  virtual Result<GcResult> CollectHistory(bool dry_run) {
    (void)dry_run;
    return Status::NotSupported("this daemon does not collect history");
  }
};

// Where the lock commands (locks, recover) look for locks: the daemon's
// --locks-root, --notes-ref and --lock-grace-s (from its options when it
// answers, from the store's watched-repositories record when it is down),
// and this host's name ("" = gethostname(2)).
struct LockCommandsConfig {
  std::string locks_root = "refs/wtd/locks";
  std::string notes_ref = "refs/notes/wtd";
  int64_t grace_ms = 60'000;
  std::string host;
};

struct CommandContext {
  RunStore* runs = nullptr;  // never null
  std::string state_dir;
  DaemonControl* daemon = nullptr;  // null in wtctl's direct (store) mode
  // This host's processes (null: SystemProcessTable()).
  ProcessTable* processes = nullptr;
  LockCommandsConfig locks;
  // The daemon's worktree slots; null in wtctl's direct mode (a command
  // then makes its own over the store).
  WorktreeSlots* slots = nullptr;
  // Where job files live in each commit: the daemon's --jobs-root when it
  // answers, the default when it is down (`jobs`).
  std::string jobs_root = "jobs";
};

// A command's own arguments on wtctl's command line.
struct CliArgs {
  std::map<std::string, std::string> flags;  // --name VALUE, or "1" for a bare flag
  std::vector<std::string> positional;
  bool Has(const std::string& flag) const { return flags.count(flag) > 0; }
};

// What a command that does more than one call (logs --follow, stop --wait)
// gets from wtctl.
class Session {
 public:
  virtual ~Session() = default;
  // `command`'s result from the daemon; for a read-only command, from the
  // store when no daemon answers. FailedPrecondition "no daemon answers on
  // SOCKET" when it needs the daemon and none answers.
  virtual Result<json> Call(std::string_view command, const json& args) = 0;
  // Whether a daemon answers on the socket now.
  virtual bool DaemonAnswers() = 0;
  virtual const std::string& state_dir() const = 0;
  virtual const std::string& socket_path() const = 0;
  // Prints `result` as JSON (--json) or as `human`.
  virtual void Print(const json& result, const std::string& human) = 0;
  // Whether --json was given (for commands that print a stream of lines).
  virtual bool JsonOutput() const = 0;
  // Prints "wtctl: MESSAGE" to stderr and returns `code`.
  virtual int Fail(const std::string& message, int code) = 0;
};

struct FlagDef {
  std::string_view name;
  bool takes_value = false;
};

enum class Access {
  kReadOnly,  // the store alone answers it: works with the daemon down
  kDaemon,    // needs the running daemon
  // Works with the daemon down too: wtctl then takes the PID-file lock (so
  // no wtd can start meanwhile) and opens the store read-write.
  kStoreWrite,
};

struct CommandDef {
  std::string_view name;
  std::string_view usage;    // wtctl's usage line, e.g. "runs [--job J] [--limit N]"
  std::string_view summary;  // one line for --help
  std::vector<FlagDef> flags;
  Access access = Access::kDaemon;
  // The request's args from wtctl's arguments; InvalidArgument is a usage
  // error (exit 2). Null: no arguments, `{}`.
  Result<json> (*request)(const CliArgs& args) = nullptr;
  // The handler the daemon serves (and wtctl's direct mode calls for a
  // read-only command). Null for a wtctl-only command.
  Result<json> (*handle)(const CommandContext& ctx, const json& args) = nullptr;
  // Human output of a result.
  std::string (*print)(const json& result) = nullptr;
  // wtctl's behaviour when it is more than one call, printed; returns the
  // exit code. Null: Call, then Print.
  int (*run)(Session& session, const json& request) = nullptr;
  // For kStoreWrite: whether this request changes anything. When it does
  // not, wtctl's direct mode opens the store read-only without the PID-file
  // lock. Null: every request writes.
  bool (*writes)(const json& request) = nullptr;
};

// Every command, in --help order.
const std::vector<CommandDef>& AllCommands();
// The command named `name`, or null.
const CommandDef* FindCommand(std::string_view name);

// Argument helpers for handlers and request builders. Each error names the
// argument ("args.limit: expected an integer >= 0, got -1").
Result<int64_t> IntArg(const json& args, const char* name, int64_t fallback, int64_t lo);
Result<std::string> StringArg(const json& args, const char* name);
// The one positional RUN_ID of `show` and `logs`.
Result<int64_t> RunIdArg(const CliArgs& args);
// A wtctl flag's value as an integer >= lo ("--limit=x: expected ...").
Result<int64_t> ParseCount(const std::string& flag, const std::string& value, int64_t lo);

}  // namespace wtd

#endif  // WTD_COMMANDS_COMMAND_H_
