#include "base/paths.h"

#include <stdlib.h>

#include "base/file_util.h"

namespace wtd {

namespace {
const char* GetEnv(const char* name) { return getenv(name); }
}  // namespace

std::string DefaultStateDir(const char* (*env)(const char*)) {
  if (env == nullptr) env = GetEnv;
  const char* v = env("WTD_STATE_DIR");
  if (v != nullptr && *v != '\0') return v;
  v = env("XDG_STATE_HOME");
  if (v != nullptr && *v != '\0') return std::string(v) + "/wtd";
  v = env("HOME");
  if (v != nullptr && *v != '\0') return std::string(v) + "/.local/state/wtd";
  return "";
}

std::string RunLogPath(const std::string& state_dir, uint64_t run_id) {
  return JoinPath(state_dir, "logs/runs/" + std::to_string(run_id) + ".log");
}

std::string RunContextPath(const std::string& state_dir, uint64_t run_id) {
  return JoinPath(state_dir, "runs/" + std::to_string(run_id) + ".json");
}

std::string RunExitPath(const std::string& state_dir, uint64_t run_id) {
  return JoinPath(state_dir, "runs/" + std::to_string(run_id) + ".exit");
}

std::string RunGroupPath(const std::string& state_dir, uint64_t run_id) {
  return JoinPath(state_dir, "runs/" + std::to_string(run_id) + ".pgid");
}

}  // namespace wtd
