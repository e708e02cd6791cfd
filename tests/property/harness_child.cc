// Harness::RunChild and its helpers: the next incarnation in property_child,
// and what the parent makes of its report (see harness.h).
#include <algorithm>
#include <sstream>

#include "base/crash_point.h"
#include "property/child_runner.h"
#include "property/harness.h"
#include "property/run_ops.h"

namespace wtd::property {
namespace {

// "name:nth" for the (pick mod (passes + 1))-th of `passes`, or "-".
std::string CrashSpec(const std::vector<std::string_view>& passes, int pick) {
  size_t i = static_cast<size_t>(pick) % (passes.size() + 1);
  if (i == passes.size()) return "-";
  auto nth = std::count(passes.begin(), passes.begin() + static_cast<ptrdiff_t>(i) + 1, passes[i]);
  return std::string(passes[i]) + ":" + std::to_string(nth);
}

}  // namespace

void Harness::RunChild(int crash_pick, const std::vector<ChildStep>& steps) {
  Close();
  NoteLiveness(&model_);
  uint64_t child_incarnation = incarnation_ + 1;
  int64_t start_ms = clock_.NowMs();
  std::vector<std::string_view> passes;
  std::vector<ScriptOp> script = PlanChild(steps, child_incarnation, &passes);
  std::string crash_at = CrashSpec(passes, crash_pick);
  std::vector<std::string> argv = {
      child_path_,         dir_ + "/db",    crash_at,  std::to_string(clock_.NowMs()),
      processes_.BootId(), LiveProcesses(), StateDir()};
  for (const ScriptOp& op : script) argv.push_back(EncodeScriptOp(op));
  Result<ChildReport> report = SpawnAndWait(argv, dir_ + "/child.stderr", 60'000);
  if (!report.ok()) Fail(report.status().ToString());
  TestCoverage().child_runs++;
  Trace("child with " + crash_at + " armed runs [" +
        Join(std::vector<std::string>(argv.begin() + 7, argv.end()), " ") + "], exits " +
        std::to_string(report->exit_code) + ", reported [" + Join(report->lines, "; ") + "]");
  for (const ScriptOp& op : script) {
    if (AdvancesClock(op)) clock_.AdvanceMs(kWakeAdvanceMs);  // as the child's clock
  }
  // The child wrote behind the fault-injecting file system's back: start a
  // new one, so that a later power loss drops only what the parent writes.
  fs_ = std::make_shared<FaultInjectionFs>();
  env_ = rocksdb::NewCompositeEnv(fs_);
  Open(child_incarnation + 1);
  Reconcile(*report, script, child_incarnation, start_ms);
}

std::vector<ScriptOp> Harness::PlanChild(const std::vector<ChildStep>& steps, uint64_t incarnation,
                                         std::vector<std::string_view>* passes) {
  Model plan = model_;
  passes->push_back("after_store_open");
  for (auto& [key, run] : plan.runs) {
    if (RecoverRun(&run, incarnation)) passes->push_back("during_recovery");
  }
  std::vector<ScriptOp> script;
  IdemCall call{incarnation, clock_.NowMs()};
  for (const ChildStep& step : steps) {
    if (step.idem) {
      IdemOp op = PlanIdemStep(plan.idem, step.key, step.choice, incarnation);
      std::string answer = ExpectedIdemAnswer(plan.idem, op, call);
      if (op.kind == IdemOpKind::kPass) call.now_ms += kWakeAdvanceMs;
      for (std::string_view point : IdemCrashPointsOf(op, answer)) passes->push_back(point);
      ApplyIdemOp(&plan.idem, op, call);
      script.emplace_back(op);
      continue;
    }
    std::optional<Op> op = PlanStep(plan, step.key, step.choice, FreshProcess());
    if (!op) continue;
    if (op->kind == OpKind::kWake) call.now_ms += kWakeAdvanceMs;
    bool writes = op->kind != OpKind::kEnqueue || op->with_cursor || !NewKeys(plan, *op).empty();
    if (writes) {
      for (std::string_view point : CrashPointsOf(*op)) passes->push_back(point);
    }
    ApplyOp(&plan, *op, incarnation);
    script.push_back(*op);
  }
  return script;
}

void Harness::Reconcile(const ChildReport& report, const std::vector<ScriptOp>& script,
                        uint64_t incarnation, int64_t start_ms) {
  bool crashed = report.exit_code == kCrashExitCode;
  if (!crashed && report.exit_code != 0) {
    Fail("child failed (exit " + std::to_string(report.exit_code) + ", signal " +
         std::to_string(report.term_signal) + "): " + report.stderr_text);
  }
  if (crashed) TestCoverage().child_crashes++;
  ChildProgress progress;
  progress.acked = model_;
  progress.now_ms = start_ms;
  for (const std::string& line : report.lines) Replay(line, script, incarnation, &progress);
  if (!crashed && (!progress.recovered || progress.acks != script.size())) {
    Fail("child exited 0 before the end of its script");
  }
  if (!progress.recovered) {
    Model after = progress.acked;
    RecoverAll(&after, incarnation);
    TestCoverage().recovery_crashes++;
    Trace("the child died before its recovery pass finished");
    Settle(progress.acked, after, /*per_run=*/true, "reopen after the child died in recovery");
  } else if (progress.in_flight) {
    const ScriptOp& op = script[*progress.in_flight];
    std::string text = EncodeScriptOp(op);
    Model after = progress.acked;
    const Op* run_op = std::get_if<Op>(&op);
    if (run_op) {
      ApplyOp(&after, *run_op, incarnation);
    } else {
      ApplyIdemOp(&after.idem, std::get<IdemOp>(op), IdemCall{incarnation, progress.now_ms});
    }
    bool applied = Settle(progress.acked, after, /*per_run=*/false,
                          "reopen after the child died in " + text) > 0;
    (applied ? TestCoverage().in_flight_applied : TestCoverage().in_flight_lost)++;
    if (!run_op) ++TestCoverage().idem[applied ? "in flight: committed" : "in flight: lost"];
    Trace(text + (applied ? " was committed" : " was not committed"));
    // Spawned but never recorded: no recovery can know this process.
    if (!applied && run_op && run_op->kind == OpKind::kRunning) {
      bystanders_.push_back(run_op->process);
    }
  } else {
    Settle(progress.acked, progress.acked, /*per_run=*/false, "reopen after the child");
  }
}

void Harness::Replay(const std::string& line, const std::vector<ScriptOp>& script,
                     uint64_t incarnation, ChildProgress* progress) {
  std::istringstream in(line);
  std::string word;
  size_t i = 0;
  in >> word;
  if (word == "open") {
    uint64_t n = 0;
    in >> n;
    if (n != incarnation) Fail("child opened as incarnation " + std::to_string(n));
    return;
  }
  if (word == "kill") {
    ProcessIdentity p{0, 0, processes_.BootId()};
    in >> p.pid >> p.start_time;
    return KillIfAlive(p);
  }
  if (word == "recovered" && !progress->recovered) {
    RecoverAll(&progress->acked, incarnation);
    progress->recovered = true;
    return;
  }
  bool numbered = static_cast<bool>(in >> i);
  if (numbered && word == "begin" && progress->recovered && !progress->in_flight &&
      i == progress->acks && i < script.size()) {
    if (const IdemOp* idem = std::get_if<IdemOp>(&script[i])) {
      if (idem->kind == IdemOpKind::kTrim) idem_history_.Forget();
    } else {
      const Op& op = std::get<Op>(script[i]);
      if (!IsAccepted(progress->acked, op)) Fail("planned " + EncodeOp(op) + " is not valid");
      BeforeOp(op, progress->acked);
    }
    if (AdvancesClock(script[i])) progress->now_ms += kWakeAdvanceMs;
    progress->in_flight = i;
    return;
  }
  if (numbered && word == "ack" && progress->in_flight == i) {
    if (const IdemOp* idem = std::get_if<IdemOp>(&script[i])) {
      std::string answer;
      in >> answer;
      ReplayIdem(*idem, answer, incarnation, progress);
    } else {
      ApplyOp(&progress->acked, std::get<Op>(script[i]), incarnation);
    }
    progress->in_flight.reset();
    ++progress->acks;
    return;
  }
  Fail("child reported '" + line + "' (out of order, or a refusal)");
}

void Harness::ReplayIdem(const IdemOp& op, const std::string& answer, uint64_t incarnation,
                         ChildProgress* progress) {
  IdemCall call{incarnation, progress->now_ms};
  std::string want = ExpectedIdemAnswer(progress->acked.idem, op, call);
  std::string met = IdemMet(progress->acked.idem, op, incarnation);
  if (answer != want) {
    Fail("child's " + EncodeIdemOp(op) + " on " + met + " answered " + answer + ", expected " +
         want);
  }
  ApplyIdemOp(&progress->acked.idem, op, call);
  CountIdem(op, met, answer, progress->acked.idem);
}

std::string Harness::LiveProcesses() {
  std::vector<std::string> live;
  for (int32_t pid : started_) {
    Result<uint64_t> start = processes_.StartTime(pid);
    if (start.ok()) live.push_back(std::to_string(pid) + ":" + std::to_string(*start));
  }
  return live.empty() ? "-" : Join(live, ",");
}

}  // namespace wtd::property
