// ProcessTable: the question recovery and lock reaping ask of the OS — is the
// process that a record names still the same live process? — behind an
// interface so tests can fake dead processes and PID reuse
// (tests/fakes/fake_process_table.h).
//
// A PID alone is not an identity: PIDs are reused. A process is identified by
// (boot id, pid, start time), where start time is field 22 of /proc/PID/stat
// (clock ticks since boot) and the boot id is
// /proc/sys/kernel/random/boot_id.
//
// Thread-safety: implementations must be safe to call from any thread.
#ifndef WTD_BASE_PROCESS_TABLE_H_
#define WTD_BASE_PROCESS_TABLE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd {

// Where the boot id is read from.
inline constexpr char kBootIdPath[] = "/proc/sys/kernel/random/boot_id";
// The boot id when kBootIdPath cannot be read.
inline constexpr char kUnknownBootId[] = "unknown-boot";

// False for an empty boot id and for kUnknownBootId. Without a known boot id
// a pid and a start time (ticks since boot) cannot tell a process of this
// boot from one of an earlier boot: every boot would look the same.
bool IsKnownBootId(std::string_view boot_id);

struct ProcessIdentity {
  int32_t pid = 0;
  uint64_t start_time = 0;  // clock ticks since boot
  std::string boot_id;
  // The process is a run supervisor (wtd-exec, docs/design/supervisor.md)
  // whose job runs in a process group of its own. Not part of the identity:
  // carried from the launcher into the run record (Run::supervised).
  bool supervisor = false;
};

class ProcessTable {
 public:
  virtual ~ProcessTable() = default;

  // The current boot id (stable for the life of the machine's boot), or
  // kUnknownBootId when it cannot be read.
  virtual const std::string& BootId() = 0;

  // Start time of a live (non-zombie) process. NotFound when no such process
  // exists or it is a zombie.
  virtual Result<uint64_t> StartTime(pid_t pid) = 0;

  // True only when `id` names a process that is alive now: same boot (a known
  // one: never when either boot id is unknown), the pid exists and is not a
  // zombie, and its start time equals id.start_time.
  bool IsAlive(const ProcessIdentity& id);

  // Sends `sig` to the process group led by id.pid, but only if IsAlive(id).
  // Returns NotFound (and sends nothing) when the identity does not match.
  virtual Status SignalGroup(const ProcessIdentity& id, int sig) = 0;

  // Sends `sig` to the process group that the gone leader `leader` left
  // behind (background children of a job whose shell exited while no daemon
  // watched it). Only on the same, known boot, and only when pid leader.pid is
  // free or still the leader's zombie: the kernel hands a pid out again only
  // once no process uses it as a pid or a process group id, so every member
  // of group leader.pid is then one of the leader's. NotFound when nothing was
  // signalled (no such group, the leader alive, its pid reused, another or an
  // unknown boot).
  virtual Status SignalLeftoverGroup(const ProcessIdentity& leader, int sig) = 0;

  // Identity of the calling process.
  Result<ProcessIdentity> Self();
};

// The /proc-backed table. Never null; lives for the whole process.
ProcessTable* SystemProcessTable();

// This host's name as lock owners and receipts name it: gethostname(2), or
// "localhost" when that fails or is empty.
std::string HostName();

// A /proc-backed table that reads its boot id from `boot_id_path` instead of
// kBootIdPath (tests: an unreadable one makes the boot id unknown).
std::unique_ptr<ProcessTable> NewProcProcessTable(const std::string& boot_id_path);

// Parses the start time (field 22) out of the text of /proc/PID/stat, which
// has the form "pid (comm) state ppid ...", where comm may hold spaces and
// parentheses. Sets *zombie when the state is 'Z' or 'X'.
Result<uint64_t> ParseProcStatStartTime(std::string_view stat, bool* zombie);

}  // namespace wtd

#endif  // WTD_BASE_PROCESS_TABLE_H_
