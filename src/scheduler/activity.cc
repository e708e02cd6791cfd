#include "scheduler/activity.h"

#include <dirent.h>
#include <sys/stat.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>

#include "base/paths.h"
#include "exec/exit_record.h"

namespace wtd {

Result<ProcStatTimes> ParseProcStatTimes(std::string_view stat) {
  // comm is enclosed in the first '(' and the *last* ')'; it may hold
  // spaces and parentheses itself.
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat.size()) {
    return Status::Corruption("proc stat: no ')' after comm");
  }
  std::string_view rest = stat.substr(close + 2);  // field 3 (state) onwards
  // Fields 3..17, split on single spaces as the kernel writes them.
  uint64_t fields[18] = {};
  size_t pos = 0;
  for (int field = 3; field <= 17; ++field) {
    size_t end = rest.find(' ', pos);
    if (end == std::string_view::npos) {
      if (field < 17) return Status::Corruption("proc stat: too few fields");
      end = rest.size();
    }
    if (field >= 5) {
      std::string_view text = rest.substr(pos, end - pos);
      int64_t v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size()) {
        return Status::Corruption("proc stat: field " + std::to_string(field) + " is not a number");
      }
      fields[field] = static_cast<uint64_t>(v < 0 ? 0 : v);
    }
    pos = end + 1;
  }
  ProcStatTimes t;
  t.pgrp = static_cast<pid_t>(fields[5]);
  t.utime = fields[14];
  t.stime = fields[15];
  t.cutime = fields[16];
  t.cstime = fields[17];
  return t;
}

Result<uint64_t> GroupCpuTicks(pid_t pgid) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return Status::IOError("cannot list /proc");
  uint64_t ticks = 0;
  bool found = false;
  while (struct dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::stringstream buf;
    buf << in.rdbuf();
    Result<ProcStatTimes> t = ParseProcStatTimes(buf.str());
    if (!t.ok() || t->pgrp != pgid) continue;  // gone meanwhile, or another group
    found = true;
    // A reaped process's time is folded into its parent's cutime/cstime
    // (its own reaped children's included), so each process is counted
    // once: live ones by their own time, reaped ones by their parent's.
    ticks += t->utime + t->stime + t->cutime + t->cstime;
  }
  closedir(proc);
  if (!found) return Status::NotFound("no process in group " + std::to_string(pgid));
  return ticks;
}

namespace {

class SystemActivityProbe final : public ActivityProbe {
 public:
  explicit SystemActivityProbe(std::string state_dir) : state_dir_(std::move(state_dir)) {}

  Result<Activity> Sample(const Run& run) override {
    if (run.pid <= 0)
      return Status::FailedPrecondition("run " + std::to_string(run.id) + " has no process");
    pid_t group = run.pid;
    if (run.supervised) {
      // Until the job is forked there is no group file: the supervisor's.
      Result<std::optional<JobGroup>> job = ReadJobGroup(RunGroupPath(state_dir_, run.id));
      if (job.ok() && *job) group = (*job)->pgid;
    }
    Activity a;
    WTD_ASSIGN_OR_RETURN(a.cpu_ticks, GroupCpuTicks(group));
    struct stat st;
    if (!run.log_path.empty() && stat(run.log_path.c_str(), &st) == 0) {
      a.output_bytes = static_cast<uint64_t>(st.st_size);
    }
    return a;
  }

 private:
  const std::string state_dir_;
};

}  // namespace

std::unique_ptr<ActivityProbe> NewSystemActivityProbe(std::string state_dir) {
  return std::make_unique<SystemActivityProbe>(std::move(state_dir));
}

}  // namespace wtd
