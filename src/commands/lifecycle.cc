// The daemon's life: `stop` (and wait for it to exit), `restart` (and wait
// for the next incarnation), `pause`, `resume`, `reload`. Each needs the
// running daemon.
#include <chrono>
#include <thread>

#include "commands/defs.h"

namespace wtd {
namespace {

constexpr int64_t kDefaultStopWaitS = 60;

Status NeedDaemon(const CommandContext& c, const char* what) {
  if (c.daemon != nullptr) return Status::OK();
  return Status::FailedPrecondition(std::string(what) + " needs the running daemon");
}

Result<json> StopRequest(const CliArgs& a) {
  int64_t wait_s = kDefaultStopWaitS;
  if (a.Has("wait")) {
    WTD_ASSIGN_OR_RETURN(wait_s, ParseCount("wait", a.flags.at("wait"), 0));
  }
  return json{{"wait_s", wait_s}};
}

Result<json> Stop(const CommandContext& c, const json&) {
  WTD_RETURN_IF_ERROR(NeedDaemon(c, "stop"));
  c.daemon->RequestStop();
  return json{{"stopping", true}};
}

// Asks for the stop, then waits until the daemon is gone: it removes its
// socket when it exits.
int StopRunCli(Session& session, const json& request) {
  int64_t wait_s = request.value("wait_s", kDefaultStopWaitS);
  Result<json> r = session.Call("stop", json::object());
  if (!r.ok()) {
    // No daemon to ask is exit 3. A daemon that took the request but was
    // gone before its answer arrived has stopped, as asked.
    bool none = r.status().code() == Status::Code::kFailedPrecondition;
    if (none || session.DaemonAnswers()) {
      return session.Fail(r.status().message(), none ? kExitNoDaemon : kExitError);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!session.DaemonAnswers()) {
      session.Print(json{{"stopped", true}}, "stopped\n");
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (wait_s == 0) {
    session.Print(json{{"stopping", true}}, "stopping\n");
    return kExitOk;
  }
  return session.Fail("the daemon is still stopping after " + std::to_string(wait_s) + " s",
                      kExitError);
}

Result<json> Restart(const CommandContext& c, const json&) {
  WTD_RETURN_IF_ERROR(NeedDaemon(c, "restart"));
  DaemonControl::Info before = c.daemon->Status();
  WTD_ASSIGN_OR_RETURN(uint64_t jobs, c.daemon->RequestRestart());
  return json{{"restarting", true},
              {"pid", before.pid},
              {"incarnation", before.incarnation},
              {"jobs", jobs}};
}

// Asks for the re-execution, then waits until a daemon of a later
// incarnation answers: the same pid, its jobs adopted.
int RestartRunCli(Session& session, const json& request) {
  int64_t wait_s = request.value("wait_s", kDefaultStopWaitS);
  Result<json> r = session.Call("restart", json::object());
  if (!r.ok()) {
    bool none = r.status().code() == Status::Code::kFailedPrecondition;
    return session.Fail(r.status().message(), none ? kExitNoDaemon : kExitError);
  }
  uint64_t before = r->value("incarnation", uint64_t{0});
  uint64_t jobs = r->value("jobs", uint64_t{0});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  do {
    Result<json> s = session.Call("status", json::object());
    if (s.ok() && s->value("incarnation", uint64_t{0}) > before) {
      uint64_t adopted = 0;
      json running = s->value("running_jobs", json::array());
      for (const json& job : running) adopted += job.value("adopted", false) ? 1 : 0;
      json out = {{"restarted", true},
                  {"pid", s->value("pid", 0)},
                  {"incarnation", s->value("incarnation", uint64_t{0})},
                  {"jobs_left_running", jobs},
                  {"adopted", adopted}};
      session.Print(out, "restarted: pid " + std::to_string(out["pid"].get<int>()) +
                             ", incarnation " + std::to_string(out["incarnation"].get<uint64_t>()) +
                             ", " + std::to_string(adopted) + " running job(s) adopted\n");
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  if (wait_s == 0) {
    session.Print(json{{"restarting", true}}, "restarting\n");
    return kExitOk;
  }
  return session.Fail("no daemon of a later incarnation answers after " + std::to_string(wait_s) +
                          " s (see the daemon's log)",
                      kExitError);
}

Result<json> Pause(const CommandContext& c, const json&) {
  WTD_RETURN_IF_ERROR(NeedDaemon(c, "pause"));
  c.daemon->SetPaused(true);
  return json{{"paused", true}};
}

Result<json> Resume(const CommandContext& c, const json&) {
  WTD_RETURN_IF_ERROR(NeedDaemon(c, "resume"));
  c.daemon->SetPaused(false);
  return json{{"paused", false}};
}

// A reload that changes an option needing a restart still applies the
// rest: it succeeds, and its result names what waits for the restart.
Result<json> Reload(const CommandContext& c, const json&) {
  WTD_RETURN_IF_ERROR(NeedDaemon(c, "reload"));
  WTD_ASSIGN_OR_RETURN(ReloadResult r, c.daemon->Reload());
  return json{{"reloaded", true},
              {"config_file", r.config_file.empty() ? json(nullptr) : json(r.config_file)},
              {"applied", r.applied},
              {"needs_restart", r.needs_restart}};
}

std::string PrintPaused(const json& r) {
  return r.value("paused", false) ? "paused\n" : "resumed\n";
}
std::string PrintReloaded(const json& r) {
  std::string out = "reloaded";
  if (r.value("config_file", json()).is_string()) out += " " + r["config_file"].get<std::string>();
  std::vector<std::string> applied = r.value("applied", std::vector<std::string>{});
  std::vector<std::string> restart = r.value("needs_restart", std::vector<std::string>{});
  if (applied.empty() && restart.empty()) return out + ": nothing changed\n";
  out += "\n";
  if (!applied.empty()) {
    out += "applied:";
    for (const std::string& name : applied) out += " --" + name;
    out += "\n";
  }
  for (const std::string& name : restart) out += "--" + name + " changed: needs a restart\n";
  return out;
}

}  // namespace

const CommandDef& StopCommand() {
  static const CommandDef kDef = {
      .name = "stop",
      .usage = "stop [--wait SECONDS]",
      .summary = "graceful stop; waits for the daemon to exit (60 s)",
      .flags = {{"wait", true}},
      .access = Access::kDaemon,
      .request = StopRequest,
      .handle = Stop,
      .run = StopRunCli,
  };
  return kDef;
}

const CommandDef& RestartCommand() {
  static const CommandDef kDef = {
      .name = "restart",
      .usage = "restart [--wait SECONDS]",
      .summary =
          "re-execute the daemon (same options) without stopping running jobs; "
          "the new one adopts them. Waits for it to answer (60 s)",
      .flags = {{"wait", true}},
      .access = Access::kDaemon,
      .request = StopRequest,
      .handle = Restart,
      .run = RestartRunCli,
  };
  return kDef;
}

const CommandDef& PauseCommand() {
  static const CommandDef kDef = {
      .name = "pause",
      .usage = "pause",
      .summary = "start no new runs (polling goes on)",
      .access = Access::kDaemon,
      .handle = Pause,
      .print = PrintPaused,
  };
  return kDef;
}

const CommandDef& ResumeCommand() {
  static const CommandDef kDef = {
      .name = "resume",
      .usage = "resume",
      .summary = "start runs again",
      .access = Access::kDaemon,
      .handle = Resume,
      .print = PrintPaused,
  };
  return kDef;
}

const CommandDef& ReloadCommand() {
  static const CommandDef kDef = {
      .name = "reload",
      .usage = "reload",
      .summary = "re-read the configuration file (like SIGHUP); say what applied",
      .access = Access::kDaemon,
      .handle = Reload,
      .print = PrintReloaded,
  };
  return kDef;
}

}  // namespace wtd
