// Runs a helper program to its end and collects its stdout line by line:
// how the property test drives property_child.
//
// Thread-safety: may be called from any thread (posix_spawn, no fork).
#ifndef WTD_TESTS_PROPERTY_CHILD_RUNNER_H_
#define WTD_TESTS_PROPERTY_CHILD_RUNNER_H_

#include <string>
#include <vector>

#include "wtd/status.h"

namespace wtd::property {

struct ChildReport {
  int exit_code = -1;              // when it exited; -1 when a signal ended it
  int term_signal = 0;             // the signal that ended it, or 0
  std::vector<std::string> lines;  // its stdout, without the newlines
  std::string stderr_text;
};

// Spawns argv[0] with `argv` and the caller's environment, its stderr into
// `stderr_path`, and waits for it. A child still running after `timeout_ms`
// is killed (and reported as killed by SIGKILL). IOError when it cannot be
// spawned.
Result<ChildReport> SpawnAndWait(const std::vector<std::string>& argv,
                                 const std::string& stderr_path, int timeout_ms);

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_CHILD_RUNNER_H_
