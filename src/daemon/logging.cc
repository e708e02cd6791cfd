#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/time_format.h"

namespace wtd {
namespace {

// One JSON object per line: {"time", "level", "msg"}; the message is
// escaped properly (a pattern string could not do that).
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json line = {{"time", FormatRfc3339(ms)},
                           {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                                                 spdlog::level::to_string_view(msg.level).size())},
                           {"msg", std::string(msg.payload.data(), msg.payload.size())}};
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.push_back('\n');
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

std::unique_ptr<spdlog::formatter> Formatter(LogFormat format) {
  if (format == LogFormat::kJson) return std::make_unique<JsonFormatter>();
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                                                     spdlog::pattern_time_type::utc);
}

}  // namespace

void ApplyLogging(const LoggingOptions& options) {
  // Each sink swaps its formatter under its own lock, so lines written
  // meanwhile come out whole, in one format or the other.
  spdlog::default_logger()->set_formatter(Formatter(options.format));
  spdlog::set_level(spdlog::level::from_str(options.level));
}

Status SetupLogging(const std::string& state_dir, const LoggingOptions& options, bool to_stderr) {
  std::string dir = JoinPath(state_dir, "logs");
  WTD_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  std::vector<spdlog::sink_ptr> sinks;
  try {
    if (to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(JoinPath(dir, "wtd.log"),
                                                                           10 << 20, 5));
  } catch (const spdlog::spdlog_ex& e) {
    return Status::IOError("cannot open log " + JoinPath(dir, "wtd.log") + ": " + e.what());
  }
  auto logger = std::make_shared<spdlog::logger>("wtd", sinks.begin(), sinks.end());
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  ApplyLogging(options);
  return Status::OK();
}

}  // namespace wtd
