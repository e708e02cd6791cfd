// The JSON view of a run, shared by the daemon's `runs` command and wtctl's
// direct (store) mode so both print the same thing. The fields are the
// stable `--json` contract documented in docs/design/wtctl.md.
//
// Thread-safety: pure functions.
#ifndef WTD_REPORT_RUN_VIEW_H_
#define WTD_REPORT_RUN_VIEW_H_

#include <nlohmann/json.hpp>

#include "store/records.h"

namespace wtd {

// {id, repo, worktree, job, sha, branch, state, attempt, max_attempts,
//  exit_code, term_signal, created_at, updated_at, started_at, finished_at (RFC 3339 UTC
//  or null), duration_ms, log_path, log_bytes, log_truncated, error}
nlohmann::json RunToJson(const Run& run);

// An RFC 3339 UTC timestamp, or null for 0 (never).
nlohmann::json TimeOrNull(int64_t ms);

}  // namespace wtd

#endif  // WTD_REPORT_RUN_VIEW_H_
