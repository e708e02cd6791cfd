#include "cli/wtctl.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

#include "base/clock.h"
#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "commands/command.h"
#include "daemon/pid_file.h"
#include "runs/run_store.h"
#include "store/state_store.h"
#include "wtd/client.h"

namespace wtd {
namespace {

constexpr int kConnectTimeoutMs = 2000;
constexpr int kCallTimeoutMs = 30000;

// wtctl's connection to the daemon, or to the store when none answers.
class CliSession : public Session {
 public:
  CliSession(std::string state_dir, std::string socket, bool json)
      : state_dir_(std::move(state_dir)), socket_(std::move(socket)), json_(json) {}

  Result<json> Call(std::string_view command, const json& args) override {
    Result<std::unique_ptr<Client>> client = Client::Connect(socket_, kConnectTimeoutMs);
    if (client.ok()) return (*client)->Call(std::string(command), args, kCallTimeoutMs);
    const CommandDef* def = FindCommand(command);
    if (def == nullptr || def->access == Access::kDaemon || def->handle == nullptr) {
      return Status::FailedPrecondition("no daemon answers on " + socket_ + " (" +
                                        client.status().message() + ")");
    }
    bool writes =
        def->access == Access::kStoreWrite && (def->writes == nullptr || def->writes(args));
    if (writes) return CallStoreWritable(*def, args);
    return CallStore(*def, args);
  }

  bool DaemonAnswers() override { return Client::Connect(socket_, kConnectTimeoutMs).ok(); }
  const std::string& state_dir() const override { return state_dir_; }
  const std::string& socket_path() const override { return socket_; }

  void Print(const json& result, const std::string& human) override {
    if (json_) {
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    } else {
      std::cout << human;
    }
  }

  bool JsonOutput() const override { return json_; }

  int Fail(const std::string& message, int code) override {
    std::cerr << "wtctl: " << message << "\n";
    return code;
  }

 private:
  // The read-only handler on the store, opened read-only (said on stderr
  // once: the answer may lag a daemon that is starting).
  Result<json> CallStore(const CommandDef& def, const json& args) {
    if (!store_) {
      std::cerr << "wtctl: no daemon answers on " << socket_ << "; reading the state store "
                << JoinPath(state_dir_, "db") << " directly (read-only)\n";
      StoreOptions o;
      o.dir = JoinPath(state_dir_, "db");
      o.read_only = true;
      o.create_if_missing = false;
      WTD_ASSIGN_OR_RETURN(store_, StateStore::Open(o));
      runs_ = std::make_unique<RunStore>(store_.get(), SystemClock());
    }
    return def.handle(DirectContext(), args);
  }

  // A command that changes the store with no daemon: under the PID-file
  // lock (a wtd started meanwhile refuses: "state dir busy: held by wtctl
  // pid N"), on the store opened read-write. The lock is held until wtctl
  // exits.
  Result<json> CallStoreWritable(const CommandDef& def, const json& args) {
    if (!pid_file_) {
      Result<PidFile> lock = PidFile::Acquire(PidFile::DefaultPath(state_dir_), "wtctl");
      if (!lock.ok()) {
        return Status::FailedPrecondition("no daemon answers on " + socket_ + ", and " +
                                          lock.status().message());
      }
      pid_file_.emplace(std::move(*lock));
      runs_.reset();  // a read-only store opened by an earlier call
      store_.reset();
      std::cerr << "wtctl: no daemon answers on " << socket_ << "; working on the state store "
                << JoinPath(state_dir_, "db") << " directly (holding "
                << PidFile::DefaultPath(state_dir_) << ")\n";
      StoreOptions o;
      o.dir = JoinPath(state_dir_, "db");
      o.create_if_missing = false;
      WTD_ASSIGN_OR_RETURN(store_, StateStore::Open(o));
      runs_ = std::make_unique<RunStore>(store_.get(), SystemClock());
      WTD_RETURN_IF_ERROR(runs_->Init());
    }
    return def.handle(DirectContext(), args);
  }

  // The context of a handler run here: the lock settings are the daemon's
  // as it recorded them in the store (the defaults before it ever ran).
  CommandContext DirectContext() const {
    CommandContext ctx;
    ctx.runs = runs_.get();
    ctx.state_dir = state_dir_;
    Result<WatchedRepos> watched = runs_->WatchedRepos();
    if (watched.ok()) {
      ctx.locks.locks_root = watched->locks_root;
      ctx.locks.notes_ref = watched->notes_ref;
      ctx.locks.grace_ms = watched->lock_grace_ms;
    }
    return ctx;
  }

  std::string state_dir_;
  std::string socket_;
  bool json_;
  std::optional<PidFile> pid_file_;  // held in direct read-write mode; released last
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
};

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
  // Each command's usage, then its summary indented below it: the usages
  // are too long to share a line with a column of summaries.
  for (const CommandDef& c : AllCommands()) {
    u += "  " + std::string(c.usage) + "\n      " + std::string(c.summary) + "\n";
  }
  return u + "\nExit status: 0 ok, 1 error, 2 usage error, 3 no daemon answered.\n";
}

Result<CliArgs> ParseCommandArgs(const CommandDef& c, const std::vector<std::string>& argv,
                                 size_t i) {
  CliArgs a;
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
    auto flag = std::find_if(c.flags.begin(), c.flags.end(),
                             [&](const FlagDef& f) { return f.name == name; });
    if (name == "json" && !has_value) {
      a.flags[name] = "1";
    } else if (flag == c.flags.end()) {
      return Status::InvalidArgument(std::string(c.name) + ": unknown option " + s);
    } else if (!flag->takes_value) {
      if (has_value) return Status::InvalidArgument("--" + name + " takes no value");
      a.flags[name] = "1";
    } else {
      if (!has_value) {
        if (i + 1 >= argv.size()) return Status::InvalidArgument("--" + name + " needs a value");
        value = argv[++i];
      }
      a.flags[name] = value;
    }
  }
  return a;
}

// One command: its request from the arguments, then its own run, or one
// call printed.
int RunCommand(const CommandDef& def, CliSession& session, const CliArgs& args) {
  json request = json::object();
  if (def.request != nullptr) {
    Result<json> r = def.request(args);
    if (!r.ok()) {
      return session.Fail(r.status().message() + "\nusage: wtctl " + std::string(def.usage),
                          kExitUsage);
    }
    request = std::move(*r);
  } else if (!args.positional.empty()) {
    return session.Fail(
        std::string(def.name) + " takes no arguments\nusage: wtctl " + std::string(def.usage),
        kExitUsage);
  }
  if (def.run != nullptr) return def.run(session, request);
  Result<json> r = session.Call(def.name, request);
  if (!r.ok()) {
    bool no_daemon = r.status().code() == Status::Code::kFailedPrecondition &&
                     def.access == Access::kDaemon && !session.DaemonAnswers();
    return session.Fail(no_daemon ? r.status().message() : r.status().ToString(),
                        no_daemon ? kExitNoDaemon : kExitError);
  }
  session.Print(*r, def.print != nullptr ? def.print(*r) : r->dump(2) + "\n");
  return kExitOk;
}

}  // namespace

int WtctlMain(int argc, char** argv) {
  // wtctl's direct mode makes the same durable steps as the daemon (a
  // worktree's creation, a recovery pass): tests crash it there too.
  if (Status st = ArmCrashPointFromEnv(); !st.ok()) {
    std::cerr << "wtctl: " << st.message() << "\n";
    return kExitUsage;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string state_dir, socket;
  bool json_out = false;
  auto fail = [](const std::string& m) {
    std::cerr << "wtctl: " << m << "\n";
    return kExitUsage;
  };
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
      return kExitOk;
    } else if (s == "--json") {
      json_out = true;
    } else if (s.rfind("--state-dir", 0) == 0) {
      auto v = value("--state-dir");
      if (!v) return fail("--state-dir needs a value");
      state_dir = *v;
    } else if (s.rfind("--socket", 0) == 0) {
      auto v = value("--socket");
      if (!v) return fail("--socket needs a value");
      socket = *v;
    } else {
      return fail("unknown option " + s + " (see wtctl --help)");
    }
  }
  if (i >= args.size()) {
    std::cerr << Usage();
    return kExitUsage;
  }
  if (state_dir.empty()) state_dir = DefaultStateDir();
  if (socket.empty()) socket = JoinPath(state_dir, "wtd.sock");
  const CommandDef* def = FindCommand(args[i]);
  if (def == nullptr) return fail("unknown command '" + args[i] + "' (see wtctl --help)");
  Result<CliArgs> a = ParseCommandArgs(*def, args, i + 1);
  if (!a.ok()) return fail(a.status().message() + "\nusage: wtctl " + std::string(def->usage));
  if (a->Has("json")) json_out = true;
  CliSession session(state_dir, socket, json_out);
  return RunCommand(*def, session, *a);
}

}  // namespace wtd
