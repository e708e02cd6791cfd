// property_child: the next daemon incarnation of the property test, run in a
// process of its own so that it can die at a real crash point exactly as
// kill -9 would (no destructors, nothing but what is already durable).
//
//   property_child DB_DIR CRASH_AT CLOCK_MS BOOT_ID PROCESSES STATE_DIR [OP...]
//
// It arms CRASH_AT ("name:nth", or "-" for none), opens the store at DB_DIR,
// runs the recovery pass, then executes each OP (the text form of
// run_model.h, through run_ops.h, as the scheduler would; or of
// idem_model.h, through idem_ops.h, as the worktree slots would, with the
// idempotency owner IdemDaemonOwner of its incarnation). Its process table
// is a fake one with boot id BOOT_ID whose live processes are PROCESSES
// ("pid:start,...", or "-"); its clock is a fake one at CLOCK_MS. Its
// recovery pass reads the supervisors' exit files under STATE_DIR, records
// their outcomes and adopts the live supervisors, with the hooks of run_ops.h.
//
// It reports on stdout, one line each, written (unbuffered) before the step
// it reports on is followed by anything else:
//   open INCARNATION   the store is open
//   kill PID START     recovery signalled that process group
//   recovered          the recovery pass finished
//   begin I            op I (0-based) is about to run
//   ack I              run op I committed
//   ack I ANSWER       idempotency op I answered ANSWER (idem_ops.h's words)
//   refused I STATUS   op I was refused (a run op), or failed
// It exits 0 after the last op, kCrashExitCode (86) at the armed crash
// point, and 2 on a usage or store error (explained on stderr).
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/crash_point.h"
#include "fakes/fake_clock.h"
#include "idem/idem_store.h"
#include "property/idem_ops.h"
#include "property/run_model.h"
#include "property/run_ops.h"
#include "recovery/recovery.h"
#include "runs/run_store.h"
#include "store/state_store.h"

namespace wtd::property {
namespace {

// Writes one whole line to stdout, unbuffered, so that it is out before a
// crash point can end the process.
void Report(const std::string& line) {
  std::string text = line + "\n";
  for (size_t done = 0; done < text.size();) {
    ssize_t n = write(STDOUT_FILENO, text.data() + done, text.size() - done);
    if (n <= 0) _exit(2);
    done += static_cast<size_t>(n);
  }
}

[[noreturn]] void Die(const std::string& why) {
  fprintf(stderr, "property_child: %s\n", why.c_str());
  _exit(2);
}

// A process table given on the command line, which reports every signal it
// delivers (a delivered SIGKILL ends the process) before returning.
class ReportingProcessTable final : public ProcessTable {
 public:
  ReportingProcessTable(std::string boot_id, std::map<int32_t, uint64_t> processes)
      : boot_id_(std::move(boot_id)), processes_(std::move(processes)) {}

  const std::string& BootId() override { return boot_id_; }
  Result<uint64_t> StartTime(pid_t pid) override {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return Status::NotFound("no process " + std::to_string(pid));
    return it->second;
  }
  Status SignalGroup(const ProcessIdentity& id, int /*sig*/) override {
    if (!IsAlive(id)) return Status::NotFound("not alive: " + std::to_string(id.pid));
    Report("kill " + std::to_string(id.pid) + " " + std::to_string(id.start_time));
    processes_.erase(id.pid);
    return Status::OK();
  }
  // The model has no leftover groups: a job's leader is its whole group.
  Status SignalLeftoverGroup(const ProcessIdentity& leader, int) override {
    return Status::NotFound("no leftover group " + std::to_string(leader.pid));
  }

 private:
  std::string boot_id_;
  std::map<int32_t, uint64_t> processes_;
};

template <typename T>
T Number(std::string_view text, const char* what) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    Die(std::string("bad ") + what + " '" + std::string(text) + "'");
  }
  return value;
}

// Parses "pid:start,pid:start" ("-" for none).
std::map<int32_t, uint64_t> ParseProcesses(std::string_view text) {
  std::map<int32_t, uint64_t> out;
  if (text == "-") return out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    size_t colon = item.find(':');
    if (colon == std::string_view::npos) Die("bad process '" + std::string(item) + "'");
    out[Number<int32_t>(item.substr(0, colon), "pid")] =
        Number<uint64_t>(item.substr(colon + 1), "start time");
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return out;
}

void RunOps(RunStore* runs, IdemStore* idem, FakeClock* clock, const std::vector<ScriptOp>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    Report("begin " + std::to_string(i));
    Status s;
    std::string answer;
    if (const IdemOp* op = std::get_if<IdemOp>(&ops[i])) {
      Result<std::string> r = ExecuteIdemOp(idem, clock, *op);
      s = r.status();
      if (r.ok()) answer = " " + *r;
    } else {
      s = ExecuteOp(runs, clock, std::get<Op>(ops[i])).status();
    }
    Report((s.ok() ? "ack " : "refused ") + std::to_string(i) +
           (s.ok() ? answer : " " + s.ToString()));
  }
}

int Main(int argc, char** argv) {
  if (argc < 7) {
    Die("usage: property_child DB_DIR CRASH_AT CLOCK_MS BOOT_ID PROCESSES STATE_DIR [OP...]");
  }
  std::vector<ScriptOp> ops;
  for (int i = 7; i < argc; ++i) {
    Result<ScriptOp> op = DecodeScriptOp(argv[i]);
    if (!op.ok()) Die(op.status().ToString());
    ops.push_back(*op);
  }
  if (std::string_view(argv[2]) != "-") {
    Status armed = ArmCrashPointSpec(argv[2]);
    if (!armed.ok()) Die(armed.ToString());
  }
  FakeClock clock(Number<int64_t>(argv[3], "clock"));
  ReportingProcessTable processes(argv[4], ParseProcesses(argv[5]));

  Result<std::unique_ptr<StateStore>> store = StateStore::Open(StoreOptions{argv[1]});
  if (!store.ok()) Die(store.status().ToString());
  Report("open " + std::to_string((*store)->incarnation()));
  RunStore runs(store->get(), &clock, RetryPolicy(kRetryCapMs, 0.0, 1));
  if (Status s = runs.Init(); !s.ok()) Die(s.ToString());
  uint64_t incarnation = (*store)->incarnation();
  RecoveryHooks hooks;
  hooks.adopt = [&](const Run& r) { return AdoptRun(&runs, &clock, r, incarnation); };
  hooks.record_outcome = [&](const Run& r, const AttemptOutcome& o) {
    return RecordUnwatched(&runs, r, o);
  };
  RecoveryOptions options;
  options.kill_wait_ms = 0;
  options.state_dir = argv[6];
  Result<RecoveryReport> report =
      RunRecovery(&runs, &processes, &clock, hooks, incarnation, options);
  if (!report.ok()) Die(report.status().ToString());
  if (!report->errors.empty()) Die("recovery: " + report->errors[0]);
  Report("recovered");
  IdemStore idem(store->get(), &clock, &processes,
                 IdemDaemonOwner((*store)->incarnation(), processes.BootId()),
                 PropertyIdemOptions());
  RunOps(&runs, &idem, &clock, ops);
  return 0;
}

}  // namespace
}  // namespace wtd::property

int main(int argc, char** argv) { return wtd::property::Main(argc, argv); }
