// Daemon logging: spdlog to stderr (journald-friendly: no colours; with
// --daemonize stderr is the log file itself) and to a rotating
// <state-dir>/logs/wtd.log, as text or JSON lines.
//
// Thread-safety: call SetupLogging once before threads start; spdlog's _mt
// sinks are thread-safe afterwards, and so is ApplyLogging.
#ifndef WTD_DAEMON_LOGGING_H_
#define WTD_DAEMON_LOGGING_H_

#include <string>

#include "wtd/status.h"

namespace wtd {

enum class LogFormat { kText, kJson };

// Set from the option table (src/daemon/options.cc), which takes its
// defaults from here.
struct LoggingOptions {
  std::string level = "info";           // --log-level: trace | debug | info | warn | error
  LogFormat format = LogFormat::kText;  // --log-format
};

Status SetupLogging(const std::string& state_dir, const LoggingOptions& options, bool to_stderr);
// Applies a new level and format to every sink (a reload), from the next
// line on.
void ApplyLogging(const LoggingOptions& options);

}  // namespace wtd

#endif  // WTD_DAEMON_LOGGING_H_
