#include "cli/wtctl.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "base/clock.h"
#include "base/file_util.h"
#include "cli/format.h"
#include "report/run_view.h"
#include "runs/run_store.h"
#include "store/state_store.h"
#include "wtd/client.h"

namespace wtd {
namespace {

using json = nlohmann::json;

constexpr int kExitError = 1, kExitUsage = 2, kExitNoDaemon = 3;

const char* Env(const char* name) { return getenv(name); }

struct Globals {
  std::string state_dir;
  std::string socket;
  bool json = false;
};

// A command's own arguments: --flag VALUE pairs, bare flags and positionals.
struct Args {
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;
};

struct Command {
  const char* name;
  const char* usage;
  const char* summary;
  std::vector<std::string> value_flags;  // flags taking a value
  std::vector<std::string> bool_flags;
  std::function<int(const Globals&, const Args&)> run;
};

std::string DefaultStateDir() {
  const char* v = Env("WTD_STATE_DIR");
  if (v && *v) return v;
  v = Env("XDG_STATE_HOME");
  if (v && *v) return std::string(v) + "/wtd";
  v = Env("HOME");
  return v && *v ? std::string(v) + "/.local/state/wtd" : "";
}

int Fail(const std::string& msg, int code = kExitError) {
  std::cerr << "wtctl: " << msg << "\n";
  return code;
}

// Calls the daemon; nullopt (with *no_daemon) when none answers.
Result<json> CallDaemon(const Globals& g, const std::string& command, const json& args,
                        bool* no_daemon) {
  *no_daemon = false;
  Result<std::unique_ptr<Client>> client = Client::Connect(g.socket, 2000);
  if (!client.ok()) {
    *no_daemon = true;
    return client.status();
  }
  return (*client)->Call(command, args, 30000);
}

Result<std::unique_ptr<StateStore>> OpenDirect(const Globals& g) {
  StoreOptions o;
  o.dir = JoinPath(g.state_dir, "db");
  o.read_only = true;
  o.create_if_missing = false;
  return StateStore::Open(o);
}

void Print(const Globals& g, const json& value, const std::function<std::string()>& human) {
  if (g.json) {
    std::cout << value.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::cout << human();
  }
}

int CmdStatus(const Globals& g, const Args&) {
  bool no_daemon;
  Result<json> r = CallDaemon(g, "status", json::object(), &no_daemon);
  if (no_daemon) {
    if (g.json)
      Print(g, json{{"running", false}, {"socket", g.socket}}, [] { return std::string(); });
    return Fail("no daemon answers on " + g.socket + " (" + r.status().message() + ")",
                kExitNoDaemon);
  }
  if (!r.ok()) return Fail(r.status().ToString());
  (*r)["running"] = true;
  Print(g, *r, [&] { return FormatStatus(*r); });
  return 0;
}

Result<json> RunsFromStore(const Globals& g, const json& args) {
  WTD_ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store, OpenDirect(g));
  RunStore runs(store.get(), SystemClock());
  RunFilter f;
  f.job = args.value("job", "");
  f.worktree = args.value("worktree", "");
  if (args.contains("state")) {
    WTD_ASSIGN_OR_RETURN(f.state, ParseRunState(args["state"].get<std::string>()));
  }
  f.limit = args.value("limit", 50);
  WTD_ASSIGN_OR_RETURN(std::vector<Run> list, runs.List(f));
  json out = json::array();
  for (const Run& r : list) out.push_back(RunToJson(r));
  return out;
}

Result<int64_t> ParseCount(const std::string& flag, const std::string& v, int64_t lo) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || n < lo) {
    return Status::InvalidArgument("--" + flag + "=" + v +
                                   ": expected an integer >= " + std::to_string(lo));
  }
  return static_cast<int64_t>(n);
}

int CmdRuns(const Globals& g, const Args& a) {
  json args = json::object();
  for (const char* k : {"job", "state", "worktree"}) {
    if (a.flags.count(k)) args[k] = a.flags.at(k);
  }
  if (args.contains("state") && !ParseRunState(args["state"].get<std::string>()).ok()) {
    return Fail("--state=" + args["state"].get<std::string>() +
                    ": expected one of pending, leased, preparing, ready, running, retry_wait, "
                    "succeeded, failed, timed_out, cancelled",
                kExitUsage);
  }
  if (a.flags.count("limit")) {
    Result<int64_t> n = ParseCount("limit", a.flags.at("limit"), 0);
    if (!n.ok()) return Fail(n.status().message(), kExitUsage);
    args["limit"] = *n;
  }
  bool no_daemon;
  Result<json> r = CallDaemon(g, "runs", args, &no_daemon);
  if (no_daemon) {
    std::cerr << "wtctl: no daemon answers on " << g.socket << "; reading the state store "
              << JoinPath(g.state_dir, "db") << " directly (read-only)\n";
    r = RunsFromStore(g, args);
  }
  if (!r.ok()) return Fail(r.status().ToString());
  Print(g, *r, [&] { return FormatRuns(*r); });
  return 0;
}

// The run `id`, from the daemon or else from the store.
Result<json> ShowRun(const Globals& g, uint64_t id) {
  bool no_daemon;
  Result<json> r = CallDaemon(g, "show", json{{"id", id}}, &no_daemon);
  if (!no_daemon) return r;
  WTD_ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store, OpenDirect(g));
  RunStore runs(store.get(), SystemClock());
  WTD_ASSIGN_OR_RETURN(Run run, runs.Get(id));
  return RunToJson(run);
}

bool Terminal(const json& run) {
  Result<RunState> s = ParseRunState(run.value("state", ""));
  return s.ok() && IsTerminal(*s);
}

int CmdLogs(const Globals& g, const Args& a) {
  if (a.positional.size() != 1) return Fail("usage: wtctl logs RUN_ID [--follow]", kExitUsage);
  Result<int64_t> id = ParseCount("RUN_ID", a.positional[0], 1);
  if (!id.ok()) return Fail("RUN_ID " + a.positional[0] + ": expected a run id", kExitUsage);
  Result<json> run = ShowRun(g, static_cast<uint64_t>(*id));
  if (!run.ok()) return Fail(run.status().ToString());
  std::string path = JoinPath(g.state_dir, "logs/runs/" + std::to_string(*id) + ".log");
  if ((*run)["log_path"].is_string()) path = (*run)["log_path"].get<std::string>();
  bool follow = a.flags.count("follow") > 0;
  std::ifstream in;
  std::streamoff offset = 0;
  char buf[65536];
  auto last_check = std::chrono::steady_clock::now();
  for (;;) {
    if (!in.is_open()) in.open(path, std::ios::binary);
    bool progressed = false;
    if (in.is_open()) {
      in.clear();
      in.seekg(offset);
      while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        std::cout.write(buf, in.gcount());
        offset += in.gcount();
        progressed = true;
      }
      std::cout.flush();
    }
    if (!follow) {
      if (!in.is_open()) {
        return Fail("run " + std::to_string(*id) + " has no log yet (state " +
                    Cell((*run)["state"]) + "): " + path);
      }
      return 0;
    }
    if (!progressed && std::chrono::steady_clock::now() - last_check > std::chrono::seconds(1)) {
      last_check = std::chrono::steady_clock::now();
      Result<json> now = ShowRun(g, static_cast<uint64_t>(*id));
      if (!now.ok()) return Fail(now.status().ToString());
      if (Terminal(*now)) {
        // One more read: output written just before the end.
        in.clear();
        in.seekg(offset);
        while (in.is_open() && (in.read(buf, sizeof buf) || in.gcount() > 0)) {
          std::cout.write(buf, in.gcount());
        }
        std::cout.flush();
        return 0;
      }
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int CmdSimple(const Globals& g, const std::string& command, const std::string& done) {
  bool no_daemon;
  Result<json> r = CallDaemon(g, command, json::object(), &no_daemon);
  if (no_daemon) return Fail("no daemon answers on " + g.socket, kExitNoDaemon);
  if (!r.ok()) return Fail(r.status().ToString());
  Print(g, *r, [&] { return done + "\n"; });
  return 0;
}

int CmdStop(const Globals& g, const Args& a) {
  int64_t wait_s = 60;
  if (a.flags.count("wait")) {
    Result<int64_t> n = ParseCount("wait", a.flags.at("wait"), 0);
    if (!n.ok()) return Fail(n.status().message(), kExitUsage);
    wait_s = *n;
  }
  bool no_daemon;
  Result<json> r = CallDaemon(g, "stop", json::object(), &no_daemon);
  if (no_daemon) return Fail("no daemon answers on " + g.socket, kExitNoDaemon);
  if (!r.ok()) return Fail(r.status().ToString());
  // Wait until the daemon is gone: it removes its socket when it exits.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Client::Connect(g.socket, 500).ok()) {
      Print(g, json{{"stopped", true}}, [] { return std::string("stopped\n"); });
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (wait_s == 0) {
    Print(g, json{{"stopping", true}}, [] { return std::string("stopping\n"); });
    return 0;
  }
  return Fail("the daemon is still stopping after " + std::to_string(wait_s) + " s");
}

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"status",
       "status",
       "daemon pid, version, uptime, repositories, active runs",
       {},
       {},
       CmdStatus},
      {"runs",
       "runs [--job J] [--state S] [--worktree W] [--limit N]",
       "runs, newest first (default limit 50; 0 = all)",
       {"job", "state", "worktree", "limit"},
       {},
       CmdRuns},
      {"logs",
       "logs RUN_ID [--follow]",
       "a run's output; --follow until the run ends",
       {},
       {"follow"},
       CmdLogs},
      {"stop",
       "stop [--wait SECONDS]",
       "graceful stop; waits for the daemon to exit (60 s)",
       {"wait"},
       {},
       CmdStop},
      {"pause",
       "pause",
       "start no new runs (polling goes on)",
       {},
       {},
       [](const Globals& g, const Args&) { return CmdSimple(g, "pause", "paused"); }},
      {"resume",
       "resume",
       "start runs again",
       {},
       {},
       [](const Globals& g, const Args&) { return CmdSimple(g, "resume", "resumed"); }},
      {"reload",
       "reload",
       "re-read the configuration file (like SIGHUP)",
       {},
       {},
       [](const Globals& g, const Args&) { return CmdSimple(g, "reload", "reloaded"); }},
  };
  return kCommands;
}

std::string Usage() {
  std::string u =
      "Usage: wtctl [--state-dir DIR | --socket PATH] [--json] COMMAND [ARGS]\n\n"
      "Controls and inspects the wtd daemon.\n\n"
      "Options:\n"
      "  --state-dir DIR  the daemon's state directory [default: $WTD_STATE_DIR, else\n"
      "                   $XDG_STATE_HOME/wtd, else ~/.local/state/wtd]\n"
      "  --socket PATH    the control socket [default: <state-dir>/wtd.sock]\n"
      "  --json           machine-readable output (docs/design/wtctl.md)\n"
      "  -h, --help       this help\n\nCommands:\n";
  std::vector<std::vector<std::string>> rows;
  for (const Command& c : Commands()) rows.push_back({"  " + std::string(c.usage), c.summary});
  return u + FormatTable(rows) +
         "\nExit status: 0 ok, 1 error, 2 usage error, 3 no daemon answered.\n";
}

Result<Args> ParseCommandArgs(const Command& c, const std::vector<std::string>& argv, size_t i) {
  Args a;
  for (; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    std::string name = s.substr(2), value;
    size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) value = name.substr(eq + 1), name = name.substr(0, eq);
    bool takes = std::find(c.value_flags.begin(), c.value_flags.end(), name) != c.value_flags.end();
    bool is_bool = name == "json" ||
                   std::find(c.bool_flags.begin(), c.bool_flags.end(), name) != c.bool_flags.end();
    if (is_bool && !has_value) {
      a.flags[name] = "1";
    } else if (takes) {
      if (!has_value) {
        if (i + 1 >= argv.size()) return Status::InvalidArgument("--" + name + " needs a value");
        value = argv[++i];
      }
      a.flags[name] = value;
    } else {
      return Status::InvalidArgument(std::string(c.name) + ": unknown option " + s);
    }
  }
  return a;
}

}  // namespace

int WtctlMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Globals g;
  size_t i = 0;
  for (; i < args.size() && args[i].rfind("-", 0) == 0; ++i) {
    const std::string& s = args[i];
    auto value = [&](const std::string& flag) -> std::optional<std::string> {
      if (s.rfind(flag + "=", 0) == 0) return s.substr(flag.size() + 1);
      if (s == flag && i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    if (s == "-h" || s == "--help") {
      std::cout << Usage();
      return 0;
    } else if (s == "--json") {
      g.json = true;
    } else if (s.rfind("--state-dir", 0) == 0) {
      auto v = value("--state-dir");
      if (!v) return Fail("--state-dir needs a value", kExitUsage);
      g.state_dir = *v;
    } else if (s.rfind("--socket", 0) == 0) {
      auto v = value("--socket");
      if (!v) return Fail("--socket needs a value", kExitUsage);
      g.socket = *v;
    } else {
      return Fail("unknown option " + s + " (see wtctl --help)", kExitUsage);
    }
  }
  if (i >= args.size()) {
    std::cerr << Usage();
    return kExitUsage;
  }
  if (g.state_dir.empty()) g.state_dir = DefaultStateDir();
  if (g.socket.empty()) g.socket = JoinPath(g.state_dir, "wtd.sock");
  const std::string& name = args[i];
  for (const Command& c : Commands()) {
    if (name != c.name) continue;
    Result<Args> a = ParseCommandArgs(c, args, i + 1);
    if (!a.ok()) return Fail(a.status().message() + "\nusage: wtctl " + c.usage, kExitUsage);
    if (a->flags.count("json")) g.json = true;
    return c.run(g, *a);
  }
  return Fail("unknown command '" + name + "' (see wtctl --help)", kExitUsage);
}

}  // namespace wtd
