// AllCommands(), and the argument helpers every command uses.
#include <cerrno>
#include <cstdlib>

#include "commands/defs.h"

namespace wtd {

const std::vector<CommandDef>& AllCommands() {
  // One line per group of commands, so that additions merge.
  // clang-format off
  static const std::vector<CommandDef> kCommands = {
      StatusCommand(), RunsCommand(),  ShowCommand(),    LogsCommand(),
      EventsCommand(), StopCommand(),  PauseCommand(),   ResumeCommand(),
      ReloadCommand(), LocksCommand(), RecoverCommand(), WorktreeCommand(),
      TriggerCommand(), CancelCommand(), JobsCommand(),
      StatsCommand(),
      GcCommand(),
      RestartCommand(),
  };
  // clang-format on
  return kCommands;
}

const CommandDef* FindCommand(std::string_view name) {
  for (const CommandDef& c : AllCommands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Result<int64_t> IntArg(const json& args, const char* name, int64_t fallback, int64_t lo) {
  if (!args.is_object() || !args.contains(name) || args[name].is_null()) return fallback;
  const json& v = args[name];
  if (!v.is_number_integer() || v.get<int64_t>() < lo) {
    return Status::InvalidArgument(std::string("args.") + name + ": expected an integer >= " +
                                   std::to_string(lo) + ", got " + v.dump());
  }
  return v.get<int64_t>();
}

Result<std::string> StringArg(const json& args, const char* name) {
  if (!args.is_object() || !args.contains(name) || args[name].is_null()) return std::string();
  if (!args[name].is_string()) {
    return Status::InvalidArgument(std::string("args.") + name + ": expected a string, got " +
                                   args[name].dump());
  }
  return args[name].get<std::string>();
}

Result<int64_t> RunIdArg(const CliArgs& a) {
  if (a.positional.size() != 1) return Status::InvalidArgument("expected one RUN_ID");
  Result<int64_t> id = ParseCount("RUN_ID", a.positional[0], 1);
  if (!id.ok()) return Status::InvalidArgument("RUN_ID " + a.positional[0] + ": expected a run id");
  return *id;
}

Result<int64_t> ParseCount(const std::string& flag, const std::string& value, int64_t lo) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || n < lo) {
    return Status::InvalidArgument("--" + flag + "=" + value +
                                   ": expected an integer >= " + std::to_string(lo));
  }
  return static_cast<int64_t>(n);
}

}  // namespace wtd
