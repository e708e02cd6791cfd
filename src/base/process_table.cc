#include "base/process_table.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace wtd {

bool IsKnownBootId(std::string_view boot_id) {
  return !boot_id.empty() && boot_id != kUnknownBootId;
}

bool ProcessTable::IsAlive(const ProcessIdentity& id) {
  if (id.pid <= 0 || !IsKnownBootId(id.boot_id) || id.boot_id != BootId()) return false;
  Result<uint64_t> start = StartTime(id.pid);
  return start.ok() && *start == id.start_time;
}

Result<ProcessIdentity> ProcessTable::Self() {
  ProcessIdentity id;
  id.pid = getpid();
  WTD_ASSIGN_OR_RETURN(id.start_time, StartTime(id.pid));
  id.boot_id = BootId();
  return id;
}

Result<uint64_t> ParseProcStatStartTime(std::string_view stat, bool* zombie) {
  // comm is enclosed in the first '(' and the *last* ')'.
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat.size()) {
    return Status::Corruption("proc stat: no ')' after comm");
  }
  std::string_view rest = stat.substr(close + 2);  // starts at field 3 (state)
  *zombie = !rest.empty() && (rest[0] == 'Z' || rest[0] == 'X');
  // Field 3 is at index 0 of rest; field 22 is 19 separators further.
  size_t pos = 0;
  for (int field = 3; field < 22; ++field) {
    pos = rest.find(' ', pos);
    if (pos == std::string_view::npos) return Status::Corruption("proc stat: too few fields");
    ++pos;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(rest.data() + pos, rest.data() + rest.size(), value);
  if (ec != std::errc() || end == rest.data() + pos) {
    return Status::Corruption("proc stat: field 22 (starttime) is not a number");
  }
  return value;
}

namespace {

class ProcProcessTable final : public ProcessTable {
 public:
  explicit ProcProcessTable(const std::string& boot_id_path) {
    std::ifstream in(boot_id_path);
    std::getline(in, boot_id_);
    if (!IsKnownBootId(boot_id_)) boot_id_ = kUnknownBootId;
  }

  const std::string& BootId() override { return boot_id_; }

  Result<uint64_t> StartTime(pid_t pid) override {
    std::string path = "/proc/" + std::to_string(pid) + "/stat";
    std::ifstream in(path);
    if (!in) return Status::NotFound("no process " + std::to_string(pid));
    std::stringstream buf;
    buf << in.rdbuf();
    bool zombie = false;
    Result<uint64_t> start = ParseProcStatStartTime(buf.str(), &zombie);
    if (!start.ok()) return start.status().WithContext(path);
    if (zombie) return Status::NotFound("process " + std::to_string(pid) + " is a zombie");
    return start;
  }

  Status SignalGroup(const ProcessIdentity& id, int sig) override {
    if (!IsKnownBootId(id.boot_id) || !IsKnownBootId(boot_id_)) {
      return Status::NotFound("process " + std::to_string(id.pid) +
                              ": the boot id is unknown, so it cannot be proved to be the one "
                              "recorded");
    }
    if (!IsAlive(id)) {
      return Status::NotFound("process " + std::to_string(id.pid) + " with start time " +
                              std::to_string(id.start_time) + " is not alive");
    }
    if (kill(-id.pid, sig) != 0) {
      if (errno == ESRCH) return Status::NotFound("no process group " + std::to_string(id.pid));
      return Status::FromErrno("kill(-" + std::to_string(id.pid) + ")", errno);
    }
    return Status::OK();
  }

  Status SignalLeftoverGroup(const ProcessIdentity& leader, int sig) override {
    std::string name = "process group " + std::to_string(leader.pid);
    if (!IsKnownBootId(leader.boot_id) || !IsKnownBootId(boot_id_)) {
      return Status::NotFound(name +
                              ": the boot id is unknown, so the group cannot be proved "
                              "to be the one recorded");
    }
    if (leader.pid <= 0 || leader.boot_id != boot_id_) {
      return Status::NotFound(name + ": recorded on another boot");
    }
    std::ifstream in("/proc/" + std::to_string(leader.pid) + "/stat");
    if (in) {
      std::stringstream buf;
      buf << in.rdbuf();
      bool zombie = false;
      Result<uint64_t> start = ParseProcStatStartTime(buf.str(), &zombie);
      // A live leader is SignalGroup's business; another start time is a
      // stranger that reused the pid, so the old group is empty.
      if (!start.ok() || !zombie || *start != leader.start_time) {
        return Status::NotFound(name + ": pid " + std::to_string(leader.pid) + " is in use");
      }
    }
    if (kill(-leader.pid, sig) != 0) {
      if (errno == ESRCH) return Status::NotFound(name + ": no members left");
      return Status::FromErrno("kill(-" + std::to_string(leader.pid) + ")", errno);
    }
    return Status::OK();
  }

 private:
  std::string boot_id_;
};

}  // namespace

ProcessTable* SystemProcessTable() {
  static ProcProcessTable table(kBootIdPath);
  return &table;
}

std::unique_ptr<ProcessTable> NewProcProcessTable(const std::string& boot_id_path) {
  return std::make_unique<ProcProcessTable>(boot_id_path);
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace wtd
