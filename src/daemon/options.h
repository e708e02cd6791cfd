// The one definition of every wtd option: its name, kind, help, range or
// allowed values, where it may be given, and what a reload does with it.
// `wtd --help`, the command-line and --config file parsers (config.cc), the
// reload's plan and docs/design/options.md all follow this table. An
// option's default is not written here: it is the default of the module
// struct field the option sets (e.g. PollerOptions::lookback_s), read from
// a default Config; the few that depend on the machine or the environment
// (the repository, the number of cores, the state dir, the exec shim) come
// from DefaultConfig.
//
// Thread-safety: the table is built once and immutable.
#ifndef WTD_DAEMON_OPTIONS_H_
#define WTD_DAEMON_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.h"
#include "wtd/status.h"

namespace wtd {

// What a reload (SIGHUP, `wtctl reload`) does with a changed value.
enum class Reload {
  kApplies,       // in effect from the loop's next step (or the next log line)
  kNeedsRestart,  // reported; the running value stays until wtd restarts
};
// "applies" or "needs restart", as --help and the docs say it.
std::string_view ReloadName(Reload reload);

enum class OptionKind {
  kInt,     // a decimal integer in [min, max]
  kText,    // one string; one of `choices` when there are any
  kList,    // one or more strings (repeated, or several after one flag)
  kSwitch,  // no value on the command line; true/false in the file
  kNumber,  // a decimal number, fractions allowed ("0.5", "2e-05"), in [min, max]
};

struct OptionDef {
  std::string name;  // without the dashes
  char short_name = 0;
  OptionKind kind = OptionKind::kText;
  Reload reload = Reload::kApplies;
  // Only on the command line (--help, --version, --config): not in the file,
  // and not something a reload can change.
  bool command_line_only = false;
  std::string help;
  // --help prints the default value, "(=1500)". Off for a default that
  // depends on other options or the environment: `default_note` says it.
  bool shows_default = false;
  std::string default_note;          // "[default: ...]" in --help
  int64_t min = 0, max = 0;          // kInt, kNumber
  std::vector<std::string> choices;  // kText: the allowed values (empty: any)
  bool multitoken = false;           // kList: several values after one flag

  // Sets the option in *config from its value(s) as given (kSwitch: "true"
  // or "false"); relative paths are taken from `cwd`. A bad value is
  // InvalidArgument "--name=value: why".
  std::function<Status(const std::vector<std::string>& values, const std::string& cwd,
                       Config* config)>
      set;
  // The value in effect, as text: the default in --help, what a reload
  // compares and reports.
  std::function<std::string(const Config& config)> show;
  // Copies the value in effect from `from` to `to`: a reload keeps the
  // running value of an option that needs a restart.
  std::function<void(const Config& from, Config* to)> keep;
};

// Every option, in --help order.
const std::vector<OptionDef>& AllOptions();
// The option named `name` (no dashes), or null.
const OptionDef* FindOption(std::string_view name);

// The configuration before any option is given: the module structs'
// defaults, and those that depend on the machine (concurrency: the number
// of cores; exec shim: beside this program) or on `env` and `cwd` (the
// state dir, the repository). Socket and PID file follow the state dir in
// FinishConfig.
Config DefaultConfig(const char* (*env_lookup)(const char*), const std::string& cwd);
// Fills what follows from other options (socket and PID file in the state
// dir, the scheduler's state dir) and checks what involves several of them.
Status FinishConfig(Config* config);

}  // namespace wtd

#endif  // WTD_DAEMON_OPTIONS_H_
