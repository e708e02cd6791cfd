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

void Harness::RunChild(int crash_pick, const std::vector<std::pair<int, int>>& steps) {
  Close();
  uint64_t child_incarnation = incarnation_ + 1;
  std::vector<std::string_view> passes;
  std::vector<Op> script = PlanChild(steps, child_incarnation, &passes);
  std::string crash_at = CrashSpec(passes, crash_pick);
  std::vector<std::string> argv = {
      child_path_,         dir_ + "/db",   crash_at, std::to_string(clock_.NowMs()),
      processes_.BootId(), LiveProcesses()};
  for (const Op& op : script) argv.push_back(EncodeOp(op));
  Result<ChildReport> report = SpawnAndWait(argv, dir_ + "/child.stderr", 60'000);
  if (!report.ok()) Fail(report.status().ToString());
  TestCoverage().child_runs++;
  Trace("child with " + crash_at + " armed runs [" +
        Join(std::vector<std::string>(argv.begin() + 6, argv.end()), " ") + "], exits " +
        std::to_string(report->exit_code) + ", reported [" + Join(report->lines, "; ") + "]");
  for (const Op& op : script) {
    if (op.kind == OpKind::kWake) clock_.AdvanceMs(kWakeAdvanceMs);  // as the child's clock
  }
  // The child wrote behind the fault-injecting file system's back: start a
  // new one, so that a later power loss drops only what the parent writes.
  fs_ = std::make_shared<FaultInjectionFs>();
  env_ = rocksdb::NewCompositeEnv(fs_);
  Open(child_incarnation + 1);
  Reconcile(*report, script, child_incarnation);
}

std::vector<Op> Harness::PlanChild(const std::vector<std::pair<int, int>>& steps,
                                   uint64_t incarnation, std::vector<std::string_view>* passes) {
  Model plan = model_;
  passes->push_back("after_store_open");
  for (auto& [key, run] : plan.runs) {
    if (RecoverRun(&run, incarnation)) passes->push_back("during_recovery");
  }
  std::vector<Op> script;
  for (auto [key, choice] : steps) {
    std::optional<Op> op = PlanStep(plan, key, choice, FreshProcess());
    if (!op) continue;
    bool writes = op->kind != OpKind::kEnqueue || op->with_cursor || !NewKeys(plan, *op).empty();
    if (writes) {
      for (std::string_view point : CrashPointsOf(*op)) passes->push_back(point);
    }
    ApplyOp(&plan, *op, incarnation);
    script.push_back(*op);
  }
  return script;
}

void Harness::Reconcile(const ChildReport& report, const std::vector<Op>& script,
                        uint64_t incarnation) {
  bool crashed = report.exit_code == kCrashExitCode;
  if (!crashed && report.exit_code != 0) {
    Fail("child failed (exit " + std::to_string(report.exit_code) + ", signal " +
         std::to_string(report.term_signal) + "): " + report.stderr_text);
  }
  if (crashed) TestCoverage().child_crashes++;
  ChildProgress progress;
  progress.acked = model_;
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
    const Op& op = script[*progress.in_flight];
    Model after = progress.acked;
    ApplyOp(&after, op, incarnation);
    bool applied = Settle(progress.acked, after, /*per_run=*/false,
                          "reopen after the child died in " + EncodeOp(op)) > 0;
    (applied ? TestCoverage().in_flight_applied : TestCoverage().in_flight_lost)++;
    Trace(EncodeOp(op) + (applied ? " was committed" : " was not committed"));
    // Spawned but never recorded: no recovery can know this process.
    if (!applied && op.kind == OpKind::kRunning) bystanders_.push_back(op.process);
  } else {
    Settle(progress.acked, progress.acked, /*per_run=*/false, "reopen after the child");
  }
}

void Harness::Replay(const std::string& line, const std::vector<Op>& script, uint64_t incarnation,
                     ChildProgress* progress) {
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
    if (!IsAccepted(progress->acked, script[i])) {
      Fail("planned " + EncodeOp(script[i]) + " is not valid");
    }
    BeforeOp(script[i], progress->acked);
    progress->in_flight = i;
    return;
  }
  if (numbered && word == "ack" && progress->in_flight == i) {
    ApplyOp(&progress->acked, script[i], incarnation);
    progress->in_flight.reset();
    ++progress->acks;
    return;
  }
  Fail("child reported '" + line + "' (out of order, or a refusal)");
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
