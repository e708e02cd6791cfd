// The daemon's side of the control commands (src/commands): the socket's
// command table built from AllCommands(), each handler given the store and
// this daemon's DaemonControl.
//
// Thread-safety: handlers run on the server's worker threads, several at
// once; everything here is safe for that (the scheduler's snapshot, stop and
// pause are; reload serializes itself; trigger and cancel post their work to
// the loop thread and wait for its answer).
#ifndef WTD_DAEMON_CONTROL_H_
#define WTD_DAEMON_CONTROL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "commands/command.h"
#include "runs/run_store.h"
#include "scheduler/poller.h"
#include "scheduler/scheduler.h"
#include "server/server.h"

namespace wtd {

struct ControlContext {
  RunStore* runs = nullptr;
  Scheduler* scheduler = nullptr;
  std::string state_dir;
  std::string socket_path;
  std::string metrics_listen;  // the bound metrics address; "" without --metrics-listen
  int64_t started_at_ms = 0;
  uint64_t incarnation = 0;
  RecoverySummary recovery;  // set at start, before the server
  LockCommandsConfig locks;  // the daemon's lock settings, for locks/recover
  WorktreeSlots* slots = nullptr;
  // Re-reads the configuration; returns what changed, or what was refused.
  std::function<Result<ReloadResult>()> reload;
  // The poller, for `trigger` (used on the loop thread only, through
  // Scheduler::Post), and its --jobs-root (for `jobs`).
  Poller* poller = nullptr;
  std::string jobs_root = "jobs";
  // One collection of history on the loop thread (`wtctl gc`).
  std::function<Result<GcResult>(bool dry_run)> collect;
};

// The command table. `ctx` must outlive the server using it.
std::vector<CommandSpec> ControlCommands(ControlContext* ctx);

}  // namespace wtd

#endif  // WTD_DAEMON_CONTROL_H_
