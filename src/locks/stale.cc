#include "locks/stale.h"

#include <nlohmann/json.hpp>

namespace wtd::locks {
namespace {

enum class Liveness { kAlive, kGone, kReused };

Liveness Check(ProcessTable* processes, int32_t pid, uint64_t start_time) {
  Result<uint64_t> now = processes->StartTime(pid);
  if (!now.ok()) return now.status().IsNotFound() ? Liveness::kGone : Liveness::kAlive;
  return *now == start_time ? Liveness::kAlive : Liveness::kReused;
}

std::string Describe(const char* who, int32_t pid, Liveness l) {
  return std::string(who) + " pid " + std::to_string(pid) +
         (l == Liveness::kGone     ? " gone"
          : l == Liveness::kReused ? " reused"
                                   : " alive");
}

}  // namespace

std::string_view ReasonName(LockReason reason) {
  switch (reason) {
    case LockReason::kHeld:
      return "held";
    case LockReason::kPidGone:
      return "pid gone";
    case LockReason::kPidReused:
      return "pid reused";
    case LockReason::kOtherBoot:
      return "other boot";
    case LockReason::kExpired:
      return "expired";
    case LockReason::kUnreadable:
      return "unreadable";
  }
  return "unknown";
}

LockVerdict JudgeLock(const std::optional<LockOwner>& owner, const JudgeContext& ctx) {
  if (!owner) return {false, LockReason::kUnreadable, "owner unknown"};
  const LockOwner& o = *owner;
  bool boots_known = IsKnownBootId(ctx.my_boot_id) && IsKnownBootId(o.boot_id);
  if (o.host == ctx.my_host && boots_known) {
    if (o.boot_id != ctx.my_boot_id) {
      return {true, LockReason::kOtherBoot, "owner boot " + o.boot_id};
    }
    Liveness daemon = Check(ctx.processes, o.pid, o.pid_start_time);
    Liveness job =
        o.job_pid != 0 ? Check(ctx.processes, o.job_pid, o.job_start_time) : Liveness::kGone;
    if (daemon != Liveness::kAlive && job != Liveness::kAlive) {
      std::string detail = Describe("daemon", o.pid, daemon);
      if (o.job_pid != 0) detail += "; " + Describe("job", o.job_pid, job);
      return {true, daemon == Liveness::kGone ? LockReason::kPidGone : LockReason::kPidReused,
              detail};
    }
  }
  // In 128 bits: the times come from a blob anyone can write.
  __int128 late = static_cast<__int128>(ctx.now_ms) - o.expires_at_ms;
  if (late > ctx.grace_ms) {
    return {true, LockReason::kExpired,
            "expired " + std::to_string(static_cast<unsigned long long>(late)) + " ms ago"};
  }
  return {false, LockReason::kHeld, "owner " + o.host + " pid " + std::to_string(o.pid)};
}

std::string ReapRecord::ToJson() const {
  return nlohmann::json{{"repo", repo},     {"name", name}, {"ref", ref},    {"blob", blob},
                        {"reason", reason}, {"by", by},     {"at_ms", at_ms}}
      .dump();
}

}  // namespace wtd::locks
