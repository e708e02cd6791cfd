// The stateful property of the run store, its state machine, the recovery
// pass and the idempotency records. Random sequences of enqueues (from a
// small pool of keys, so that duplicates happen), transitions (the
// scheduler's next step, or any operation whatever the state, which must
// then be refused), idempotency calls on a small pool of operations (the
// next call a daemon would make, or any call whatever the record's status),
// process deaths (with pid reuse), jobs that end under their supervisor
// while no daemon runs (an exit file for recovery to record; a supervisor
// still alive at recovery is adopted), crashes and recoveries run against the
// model of run_model.h and idem_model.h. A crash drops the in-memory objects and reopens the same
// RocksDB directory: plainly, after a simulated power loss (FaultInjectionFs),
// inside the recovery pass, or in a child process, the next incarnation,
// that dies at a real crash point (property_child). See harness.h.
//
// After every step the store must hold exactly what the model says, up to
// the one step a crash left unacknowledged; after every recovery pass the
// invariants of invariants.h must hold: no acknowledged run lost, none
// duplicated, none left running without a live process, every terminal
// outcome recorded exactly once. Every idempotency call must answer what
// the model says (Begin's decision for every status x owner: this daemon or
// a dead earlier incarnation), and after every step the records must hold:
// a completed record's result never changes until trimmed, no attempt of a
// dead owner is completed (Complete and Fail are refused after a restart),
// Trim never drops in_progress or blocked records, attempts never exceed
// max_attempts.
//
// CI runs 300 cases. WTD_PROPERTY_CASES=N runs N, for a longer soak by hand:
//   WTD_PROPERTY_CASES=20000 build/tests/property/property_test
// RC_PARAMS works as usual (seed=..., a failure's reproduce=..., and
// max_success when WTD_PROPERTY_CASES is not set).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/crash_point.h"
#include "fakes/temp_dir.h"
#include "property/harness.h"
#include "property/run_model.h"
#include "store/state_store.h"

namespace wtd::property {
namespace {

using S = RunState;

constexpr int kDefaultCases = 300;
// The longest command sequence of one case.
constexpr int kMaxCommands = 40;

// What generation needs to know: whether the store has been reopened and
// the next incarnation must run its recovery pass before anything else.
struct Phase {
  bool needs_recovery = false;
};

using Command = rc::state::Command<Phase, Harness>;
using CommandPtr = std::shared_ptr<const Command>;

// A value in [lo, hi), uniform whatever the generation size.
int Pick(int lo, int hi) { return *rc::gen::resize(100, rc::gen::inRange(lo, hi)); }
bool Coin() { return Pick(0, 2) == 1; }

// A command of the normal phase, between recovery and the next crash.
struct NormalCommand : Command {
  void checkPreconditions(const Phase& phase) const override { RC_PRE(!phase.needs_recovery); }
};

struct EnqueueCommand : NormalCommand {
  std::vector<int> keys = *rc::gen::container<std::vector<int>>(
      static_cast<size_t>(Pick(1, 4)), rc::gen::resize(100, rc::gen::inRange(0, kKeyCount)));
  bool with_cursor = Coin();
  void run(const Phase&, Harness& h) const override { h.Enqueue(keys, with_cursor); }
  void show(std::ostream& os) const override {
    os << "Enqueue(";
    for (int k : keys) os << "job" << k << " ";
    os << (with_cursor ? "+cursor)" : ")");
  }
};

struct StepCommand : NormalCommand {
  int key = Pick(0, kKeyCount);
  int choice = Pick(0, 60);
  void run(const Phase&, Harness& h) const override { h.Step(key, choice); }
  void show(std::ostream& os) const override { os << "Step(job" << key << ", " << choice << ")"; }
};

// A run taken straight to running under a supervisor, so that crashes
// often find a job that outlives its daemon.
struct StartSupervisedCommand : NormalCommand {
  int key = Pick(0, kKeyCount);
  void run(const Phase&, Harness& h) const override { h.StartSupervised(key); }
  void show(std::ostream& os) const override { os << "StartSupervised(job" << key << ")"; }
};

struct PokeCommand : NormalCommand {
  Op op = [] {
    Op o;
    o.kind = static_cast<OpKind>(Pick(1, kOpKindCount));  // any but an enqueue
    o.keys = {Pick(0, kKeyCount)};
    o.from = static_cast<S>(Pick(0, kRunStateCount));
    o.outcome = static_cast<Outcome>(Pick(0, 3));
    return o;
  }();
  void run(const Phase&, Harness& h) const override { h.Poke(op); }
  void show(std::ostream& os) const override { os << "Poke(" << EncodeOp(op) << ")"; }
};

// A record is mostly taken several steps along (attempts used up, blocked,
// unblocked) before a restart comes: the keys are drawn unevenly.
int IdemKeyPick() { return *rc::gen::weightedElement<int>({{4, 0}, {2, 1}, {1, 2}}); }

// One to three calls in a row on one record, as a daemon makes them
// (Begin, then Complete or Fail), so that records get far between restarts.
struct IdemStepCommand : NormalCommand {
  int key = IdemKeyPick();
  std::vector<int> choices = *rc::gen::container<std::vector<int>>(
      static_cast<size_t>(Pick(1, 4)), rc::gen::resize(100, rc::gen::inRange(0, 60)));
  void run(const Phase&, Harness& h) const override {
    for (int choice : choices) h.IdemStep(key, choice);
  }
  void show(std::ostream& os) const override {
    os << "IdemStep(" << key;
    for (int choice : choices) os << ", " << choice;
    os << ")";
  }
};

struct IdemPokeCommand : NormalCommand {
  IdemOp op = [] {
    IdemOp o;
    o.kind = static_cast<IdemOpKind>(Pick(0, kIdemOpKindCount));
    o.key = Pick(0, kIdemKeyCount);
    o.retention = Pick(0, kRetentionCount);
    return o;
  }();
  void run(const Phase&, Harness& h) const override { h.Idem(op); }
  void show(std::ostream& os) const override { os << "IdemPoke(" << EncodeIdemOp(op) << ")"; }
};

struct ProcessDiesCommand : NormalCommand {
  int key = Pick(0, kKeyCount);
  bool pid_reused = Coin();
  void run(const Phase&, Harness& h) const override { h.ProcessDies(key, pid_reused); }
  void show(std::ostream& os) const override {
    os << "ProcessDies(job" << key << (pid_reused ? ", pid reused)" : ")");
  }
};

struct RestartCommand : Command {
  bool power_loss = Coin();
  void apply(Phase& phase) const override { phase.needs_recovery = true; }
  void run(const Phase&, Harness& h) const override { h.Restart(power_loss); }
  void show(std::ostream& os) const override { os << (power_loss ? "PowerLoss()" : "Crash()"); }
};

// The daemon alone dies (kill -9): no power loss, so the jobs under their
// supervisors live on, for JobEndsUnwatched to end or recovery to adopt.
struct DaemonKilledCommand : Command {
  void apply(Phase& phase) const override { phase.needs_recovery = true; }
  void run(const Phase&, Harness& h) const override { h.Restart(/*power_loss=*/false); }
  void show(std::ostream& os) const override { os << "DaemonKilled()"; }
};

// While no daemon runs (between a crash and the next recovery pass): a
// supervised job ends on its own and its supervisor writes its exit file.
struct JobEndsUnwatchedCommand : Command {
  int pick = Pick(0, kKeyCount);
  Outcome outcome = static_cast<Outcome>(Pick(0, 3));
  void checkPreconditions(const Phase& phase) const override { RC_PRE(phase.needs_recovery); }
  void run(const Phase&, Harness& h) const override { h.JobEndsUnwatched(pick, outcome); }
  void show(std::ostream& os) const override {
    constexpr const char* kNames[] = {"success", "failure", "timeout"};
    os << "JobEndsUnwatched(pick " << pick << ", " << kNames[static_cast<int>(outcome)] << ")";
  }
};

struct RecoverCommand : Command {
  int crash_after = *rc::gen::weightedElement<int>({{4, 0}, {1, 1}, {1, 2}, {1, 3}});
  bool power_loss = Coin();
  void checkPreconditions(const Phase& phase) const override { RC_PRE(phase.needs_recovery); }
  void apply(Phase& phase) const override { phase.needs_recovery = crash_after > 0; }
  void run(const Phase&, Harness& h) const override { h.Recover(crash_after, power_loss); }
  void show(std::ostream& os) const override {
    os << "Recover(";
    if (crash_after > 0) os << "dies after " << crash_after << (power_loss ? ", power loss" : "");
    os << ")";
  }
};

struct ChildCommand : Command {
  int crash_pick = Pick(0, 1000);
  // Steps on two run keys at most, so that a run gets far enough along to
  // pass the crash points of running and finishing; one step in three on an
  // idempotency record.
  std::vector<ChildStep> steps = [] {
    int keys[2] = {Pick(0, kKeyCount), Pick(0, kKeyCount)};
    std::vector<ChildStep> s(static_cast<size_t>(Pick(0, 12)));
    for (ChildStep& step : s) {
      step.idem = Pick(0, 3) == 0;
      step.key = step.idem ? IdemKeyPick() : keys[Pick(0, 2)];
      step.choice = Pick(0, 60);
    }
    return s;
  }();
  void apply(Phase& phase) const override { phase.needs_recovery = true; }
  void run(const Phase&, Harness& h) const override { h.RunChild(crash_pick, steps); }
  void show(std::ostream& os) const override {
    os << "Child(crash pick " << crash_pick;
    for (const ChildStep& step : steps) {
      os << ", " << (step.idem ? "idem" : "job") << step.key << "/" << step.choice;
    }
    os << ")";
  }
};

template <typename C>
rc::Gen<CommandPtr> Make() {
  return rc::gen::exec([] { return CommandPtr(std::make_shared<const C>()); });
}

rc::Gen<CommandPtr> NextCommand(const Phase& phase) {
  if (phase.needs_recovery) {
    return rc::gen::weightedOneOf<CommandPtr>({{6, Make<RecoverCommand>()},
                                               {1, Make<RestartCommand>()},
                                               {1, Make<ChildCommand>()},
                                               {6, Make<JobEndsUnwatchedCommand>()}});
  }
  return rc::gen::weightedOneOf<CommandPtr>({{3, Make<EnqueueCommand>()},
                                             {10, Make<StepCommand>()},
                                             {2, Make<StartSupervisedCommand>()},
                                             {2, Make<PokeCommand>()},
                                             {1, Make<ProcessDiesCommand>()},
                                             {5, Make<IdemStepCommand>()},
                                             {1, Make<IdemPokeCommand>()},
                                             {2, Make<RestartCommand>()},
                                             {2, Make<DaemonKilledCommand>()},
                                             {1, Make<ChildCommand>()}});
}

// A closed, empty store made once for all cases (see Harness), or "".
const std::string& EmptyStore() {
  static TempDir dir;
  static const std::string path = [] {
    std::string db = dir.Sub("db");
    Result<std::unique_ptr<StateStore>> store = StateStore::Open(StoreOptions{db});
    return store.ok() && !dir.path().empty() ? db : std::string();
  }();
  return path;
}

void CrashRecoveryProperty() {
  TempDir dir;
  RC_ASSERT(!dir.path().empty());
  Harness harness(dir.path(), WTD_PROPERTY_CHILD, EmptyStore());
  auto commands = *rc::gen::resize(kMaxCommands, rc::state::gen::commands(Phase{}, &NextCommand));
  rc::state::runAll(commands, Phase{}, harness);
}

// WTD_PROPERTY_CASES, else RC_PARAMS' max_success, else kDefaultCases.
int CaseCount(int configured) {
  const char* cases = std::getenv("WTD_PROPERTY_CASES");
  if (cases != nullptr && *cases != '\0') {
    int n = std::atoi(cases);
    return n > 0 ? n : kDefaultCases;
  }
  const char* params = std::getenv("RC_PARAMS");
  if (params != nullptr && std::strstr(params, "max_success") != nullptr) return configured;
  return kDefaultCases;
}

void PrintCoverage(int cases) {
  const Coverage& c = TestCoverage();
  std::cout << cases << " cases: " << c.recoveries_checked << " recoveries checked, "
            << c.power_losses << " power losses, " << c.recovery_crashes
            << " crashes before a recovery pass finished, " << c.child_runs
            << " child incarnations (" << c.child_crashes
            << " died at a crash point: the op in flight was committed " << c.in_flight_applied
            << " times, not committed " << c.in_flight_lost << " times), " << c.refusals
            << " refused operations\nsupervised runs: " << c.exit_files_written
            << " exit files written while no daemon ran, " << c.outcomes_recorded
            << " outcomes recorded from one and " << c.adoptions
            << " live supervisors adopted by an in-process recovery pass\nidempotency calls:";
  for (const auto& [what, n] : c.idem) std::cout << " " << what << ": " << n << ";";
  std::cout << "\n";
}

// What the idempotency part must have met and answered over all cases: Begin
// on every status x owner that can exist (a rolled-back record's owner is
// always dead), and each transition, refusal and trim.
constexpr const char* kIdemMustHappen[] = {
    "begin none -> proceed",
    "begin in_progress/this daemon -> busy",
    "begin in_progress/dead -> roll_back",
    "begin completed/this daemon -> done",
    "begin completed/dead -> done",
    "begin failed/this daemon -> wait",
    "begin failed/dead -> proceed",
    "begin rolled_back/dead -> proceed",
    "begin blocked/this daemon -> blocked",
    "begin blocked/dead -> blocked",
    "idem_complete -> completed",
    "idem_fail -> failed",
    "idem_fail -> blocked",
    "idem_rolled_back -> rolled_back",
    "idem_rolled_back -> blocked",
    "idem_unblock -> failed",
    "idem_complete refused: dead owner",
    "idem_fail refused: dead owner",
    "trimmed",
    "in flight: committed",
};

TEST(RunLifecyclePropertyTest, CrashesAndRecoveriesNeverLoseDuplicateOrStrandARun) {
  SetCrashAction([](std::string_view name) { throw SimulatedCrash{std::string(name)}; });
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  params.maxSuccess = CaseCount(params.maxSuccess);
  rc::detail::TestMetadata metadata;
  metadata.id = "RunLifecyclePropertyTest/CrashesAndRecoveriesNeverLoseDuplicateOrStrandARun";
  metadata.description = "CrashesAndRecoveriesNeverLoseDuplicateOrStrandARun";
  rc::detail::TestResult result =
      rc::detail::checkTestable(&CrashRecoveryProperty, metadata, params);
  SetCrashAction(nullptr);
  DisarmCrashPoints();

  std::ostringstream message;
  rc::detail::printResultMessage(result, message);
  ASSERT_TRUE(result.template is<rc::detail::SuccessResult>()) << message.str();
  PrintCoverage(params.maxSuccess);
  if (params.maxSuccess >= kDefaultCases) {
    // The crashes the property is about must really happen.
    const Coverage& c = TestCoverage();
    EXPECT_GT(c.power_losses, 0u);
    EXPECT_GT(c.recovery_crashes, 0u);
    EXPECT_GT(c.child_crashes, 0u);
    EXPECT_GT(c.in_flight_applied, 0u);
    EXPECT_GT(c.in_flight_lost, 0u);
    EXPECT_GT(c.outcomes_recorded, 0u);
    EXPECT_GT(c.adoptions, 0u);
    for (const char* what : kIdemMustHappen) {
      EXPECT_GT(TestCoverage().idem[what], 0u) << what;
    }
  }
}

}  // namespace
}  // namespace wtd::property
