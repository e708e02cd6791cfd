#include "report/run_view.h"

#include "base/time_format.h"

namespace wtd {

nlohmann::json TimeOrNull(int64_t ms) {
  if (ms <= 0) return nullptr;
  return FormatRfc3339(ms);
}

nlohmann::json RunToJson(const Run& r) {
  bool has_exit = r.started_at_ms > 0 && (IsTerminal(r.state) || r.state == RunState::kRetryWait ||
                                          r.state == RunState::kFinishing);
  return nlohmann::json{
      {"id", r.id},
      {"repo", r.key.repo},
      {"worktree", r.key.worktree},
      {"job", r.key.job},
      {"sha", r.key.sha},
      {"branch", r.branch},
      {"state", std::string(RunStateName(r.state))},
      {"attempt", r.attempt},
      {"max_attempts", r.max_attempts},
      {"exit_code", has_exit && r.exit_code >= 0 ? nlohmann::json(r.exit_code) : nullptr},
      {"term_signal", r.term_signal != 0 ? nlohmann::json(r.term_signal) : nullptr},
      {"created_at", TimeOrNull(r.created_at_ms)},
      {"updated_at", TimeOrNull(r.updated_at_ms)},
      {"started_at", TimeOrNull(r.started_at_ms)},
      {"finished_at", TimeOrNull(r.finished_at_ms)},
      {"not_before", r.state == RunState::kRetryWait ? TimeOrNull(r.not_before_ms) : nullptr},
      {"duration_ms", r.started_at_ms > 0 && r.state != RunState::kRunning
                          ? nlohmann::json(r.duration_ms)
                          : nullptr},
      {"log_path", r.log_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.log_path)},
      {"log_bytes", r.log_bytes},
      {"log_truncated", r.log_truncated},
      {"error", r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error)},
  };
}

}  // namespace wtd
