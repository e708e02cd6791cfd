// Daemon logging: spdlog to stderr (journald-friendly: no colours; with
// --daemonize stderr is the log file itself) and to a rotating
// <state-dir>/logs/wtd.log, as text or JSON lines.
//
// Thread-safety: call SetupLogging once before threads start; spdlog's _mt
// sinks are thread-safe afterwards.
#ifndef WTD_DAEMON_LOGGING_H_
#define WTD_DAEMON_LOGGING_H_

#include <string>

#include "daemon/config.h"
#include "wtd/status.h"

namespace wtd {

Status SetupLogging(const Config& config, bool to_stderr);
// Applies a new --log-level (reload).
void SetLogLevel(const std::string& level);

}  // namespace wtd

#endif  // WTD_DAEMON_LOGGING_H_
