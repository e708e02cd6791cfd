// ActivityProbe: what a running job has done so far, so that `wtctl status`
// can flag a job as stuck: no new output and no CPU used for
// --stuck-after-s. A job waiting on a network peer that never answers, or
// deadlocked, looks exactly like that; a quiet compile does not (it burns
// CPU), nor does a slow download that prints progress.
//
// The scheduler asks no more than "did either change since the last
// sample": the CPU figure can also drop (a member whose parent left the
// group is reaped by init, its time then counted nowhere), and a change
// either way is activity.
//
// Thread-safety: Sample may be called from any thread.
#ifndef WTD_SCHEDULER_ACTIVITY_H_
#define WTD_SCHEDULER_ACTIVITY_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "store/records.h"
#include "wtd/status.h"

namespace wtd {

struct Activity {
  // CPU time of the job's process group in clock ticks: every live member's
  // user and system time and that of the children they reaped.
  uint64_t cpu_ticks = 0;
  uint64_t output_bytes = 0;  // size of the run's log file

  friend bool operator==(const Activity&, const Activity&) = default;
};

class ActivityProbe {
 public:
  virtual ~ActivityProbe() = default;
  // The activity of running run `run`.
  virtual Result<Activity> Sample(const Run& run) = 0;
};

// Reads /proc and stats the log file. The job's group is the one its
// supervisor recorded in <state_dir>/runs/<id>.pgid for a supervised run
// (the supervisor's own group holds only the supervisor), else the group
// the run's pid leads.
std::unique_ptr<ActivityProbe> NewSystemActivityProbe(std::string state_dir);

// The fields of a /proc/PID/stat line the probe needs.
struct ProcStatTimes {
  pid_t pgrp = 0;
  uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;  // clock ticks
};
// Corruption when `stat` is not a /proc/PID/stat line.
Result<ProcStatTimes> ParseProcStatTimes(std::string_view stat);

// CPU ticks used by process group `pgid` (see Activity::cpu_ticks), from
// /proc. NotFound when no process of the group is left.
Result<uint64_t> GroupCpuTicks(pid_t pgid);

}  // namespace wtd

#endif  // WTD_SCHEDULER_ACTIVITY_H_
