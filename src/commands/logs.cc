// `logs RUN_ID [--follow]`: a run's output, from its log file; with
// --follow, until the run ends. wtctl-only: it reads the run through `show`
// (daemon or store) and the file itself.
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "base/paths.h"
#include "commands/defs.h"
#include "report/table.h"

namespace wtd {
namespace {

Result<json> Request(const CliArgs& a) {
  WTD_ASSIGN_OR_RETURN(int64_t id, RunIdArg(a));
  return json{{"id", id}, {"follow", a.Has("follow")}};
}

bool Terminal(const json& run) {
  Result<RunState> s = ParseRunState(run.value("state", ""));
  return s.ok() && IsTerminal(*s);
}

// Copies what `in` has past *offset to stdout; true when it copied anything.
bool Copy(std::ifstream& in, std::streamoff* offset) {
  if (!in.is_open()) return false;
  char buf[65536];
  bool progressed = false;
  in.clear();
  in.seekg(*offset);
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    std::cout.write(buf, in.gcount());
    *offset += in.gcount();
    progressed = true;
  }
  std::cout.flush();
  return progressed;
}

int RunCli(Session& session, const json& request) {
  uint64_t id = request["id"].get<uint64_t>();
  json show_args = {{"id", id}};
  Result<json> run = session.Call("show", show_args);
  if (!run.ok()) return session.Fail(run.status().ToString(), kExitError);
  std::string path = RunLogPath(session.state_dir(), id);
  if ((*run)["log_path"].is_string()) path = (*run)["log_path"].get<std::string>();
  std::ifstream in;
  std::streamoff offset = 0;
  if (!request.value("follow", false)) {
    in.open(path, std::ios::binary);
    if (!in.is_open()) {
      return session.Fail("run " + std::to_string(id) + " has no log yet (state " +
                              Cell((*run)["state"]) + "): " + path,
                          kExitError);
    }
    Copy(in, &offset);
    return kExitOk;
  }
  auto last_check = std::chrono::steady_clock::now();
  for (;;) {
    if (!in.is_open()) in.open(path, std::ios::binary);
    bool progressed = Copy(in, &offset);
    if (!progressed && std::chrono::steady_clock::now() - last_check > std::chrono::seconds(1)) {
      last_check = std::chrono::steady_clock::now();
      Result<json> now = session.Call("show", show_args);
      if (!now.ok()) return session.Fail(now.status().ToString(), kExitError);
      if (Terminal(*now)) {
        Copy(in, &offset);  // output written just before the end
        return kExitOk;
      }
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

const CommandDef& LogsCommand() {
  static const CommandDef kDef = {
      .name = "logs",
      .usage = "logs RUN_ID [--follow]",
      .summary = "a run's output; --follow until the run ends",
      .flags = {{"follow", false}},
      .access = Access::kReadOnly,
      .request = Request,
      .run = RunCli,
  };
  return kDef;
}

}  // namespace wtd
