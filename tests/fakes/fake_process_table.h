// FakeProcessTable: a process table the test writes — processes that live,
// die, or whose pid is reused by another process — and that records every
// signal sent.
#ifndef WTD_TESTS_FAKES_FAKE_PROCESS_TABLE_H_
#define WTD_TESTS_FAKES_FAKE_PROCESS_TABLE_H_

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/process_table.h"

namespace wtd {

class FakeProcessTable final : public ProcessTable {
 public:
  explicit FakeProcessTable(std::string boot_id = "boot-A") : boot_id_(std::move(boot_id)) {}

  const std::string& BootId() override { return boot_id_; }
  void SetBootId(std::string id) { boot_id_ = std::move(id); }

  // A live process `pid` started at `start_time`. Replaces any earlier one
  // (that is how PID reuse looks).
  void Start(int32_t pid, uint64_t start_time) {
    std::lock_guard<std::mutex> lock(mu_);
    procs_[pid] = start_time;
  }
  void Exit(int32_t pid) {
    std::lock_guard<std::mutex> lock(mu_);
    procs_.erase(pid);
  }
  // When true, a SIGKILL/SIGTERM to a live group makes its leader exit.
  void SetSignalsKill(bool v) { signals_kill_ = v; }

  Result<uint64_t> StartTime(pid_t pid) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = procs_.find(pid);
    if (it == procs_.end()) return Status::NotFound("no process " + std::to_string(pid));
    return it->second;
  }

  Status SignalGroup(const ProcessIdentity& id, int sig) override {
    if (!IsAlive(id)) return Status::NotFound("not alive: " + std::to_string(id.pid));
    std::lock_guard<std::mutex> lock(mu_);
    signals_.emplace_back(id.pid, sig);
    if (signals_kill_) procs_.erase(id.pid);
    return Status::OK();
  }

  // Process group `pgid` has members although its leader `pgid` exited.
  void LeaveGroup(int32_t pgid) {
    std::lock_guard<std::mutex> lock(mu_);
    leftover_groups_.insert(pgid);
  }
  bool HasLeftoverGroup(int32_t pgid) {
    std::lock_guard<std::mutex> lock(mu_);
    return leftover_groups_.count(pgid) > 0;
  }

  // Signals to leftover groups are recorded as (-pgid, sig).
  Status SignalLeftoverGroup(const ProcessIdentity& leader, int sig) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (leader.boot_id != boot_id_ || procs_.count(leader.pid) ||
        !leftover_groups_.count(leader.pid)) {
      return Status::NotFound("no leftover group " + std::to_string(leader.pid));
    }
    signals_.emplace_back(-leader.pid, sig);
    if (signals_kill_) leftover_groups_.erase(leader.pid);
    return Status::OK();
  }

  std::vector<std::pair<int32_t, int>> signals() {
    std::lock_guard<std::mutex> lock(mu_);
    return signals_;
  }

 private:
  std::string boot_id_;
  std::mutex mu_;
  std::map<int32_t, uint64_t> procs_;
  std::set<int32_t> leftover_groups_;
  std::vector<std::pair<int32_t, int>> signals_;
  bool signals_kill_ = true;
};

}  // namespace wtd

#endif  // WTD_TESTS_FAKES_FAKE_PROCESS_TABLE_H_
