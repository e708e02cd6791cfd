// Harness: the system under test of the property test, a state store in a
// directory of its own behind a fault-injecting file system, with its run
// store, a fake clock and a fake process table, together with the model of
// what the store must hold (run_model.h). Each public method is one step of a
// test case: it does the step to the store, predicts it in the model, and
// fails the rapidcheck case (RC_FAIL, with a trace of the steps so far) when
// the store and the model disagree. After every recovery pass it also checks
// the store's invariants (invariants.h).
//
// The same store also holds idempotency records (idem_model.h), made through
// an IdemStore whose owner is the daemon of the current incarnation
// (IdemDaemonOwner). A restart makes the previous daemon dead to the next:
// its pid is gone from the fake process table, or (every other
// incarnation) reused by another process, or its boot is gone (power loss),
// or the incarnation rule judges it (an incarnation without a boot id). Every
// call's answer must be the model's, and after every step the records must
// be the model's and satisfy CheckIdemRecords and IdemHistory.
//
// A crash comes in one of three forms:
//   Restart   the in-memory objects are dropped and the directory reopened,
//             after a power loss when asked (unsynced data dropped, and the
//             machine rebooted: a new boot id and every process gone);
//   Recover   with crash_after > 0 the recovery pass dies at its
//             during_recovery crash point (a throwing crash action,
//             SimulatedCrash) and the store is restarted;
//   RunChild  the next incarnation (recovery, then a script of operations)
//             runs in property_child, a process of its own, which dies at an
//             armed crash point; only what it reported over its stdout pipe
//             before dying counts as acknowledged.
// After a crash, the one operation in flight may or may not have happened,
// and so may each action of a recovery pass that did not finish: the harness
// accepts either outcome, adopts the one it finds, and nothing else.
//
// Thread-safety: none; one harness per test case.
#ifndef WTD_TESTS_PROPERTY_HARNESS_H_
#define WTD_TESTS_PROPERTY_HARNESS_H_

#include <rocksdb/env.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "fakes/fault_injection_fs.h"
#include "idem/idem_store.h"
#include "property/child_runner.h"
#include "property/idem_ops.h"
#include "property/invariants.h"
#include "property/run_model.h"
#include "recovery/recovery.h"
#include "runs/run_store.h"
#include "store/state_store.h"

namespace wtd::property {

// Thrown by the crash action the test installs (SetCrashAction): unwinds
// from a crash point to the harness, for which the process died there.
struct SimulatedCrash {
  std::string point;
};

// Tallies over all test cases, to show (and check) that the crashes the
// property is about really happen.
struct Coverage {
  std::atomic<uint64_t> recoveries_checked{0};
  std::atomic<uint64_t> power_losses{0};
  std::atomic<uint64_t> recovery_crashes{0};  // in-process and in the child
  std::atomic<uint64_t> child_runs{0};
  std::atomic<uint64_t> child_crashes{0};
  std::atomic<uint64_t> in_flight_applied{0};
  std::atomic<uint64_t> in_flight_lost{0};
  std::atomic<uint64_t> refusals{0};
  // Supervised runs: exit files written while no daemon ran, outcomes
  // recorded from them and live supervisors adopted by an in-process pass.
  std::atomic<uint64_t> exit_files_written{0};
  std::atomic<uint64_t> outcomes_recorded{0};
  std::atomic<uint64_t> adoptions{0};
  // Idempotency calls by what they met and answered: "begin STATUS/OWNER ->
  // DECISION" (OWNER "this daemon" or "dead"), "complete refused: dead
  // owner", "rolled_back -> blocked", "trimmed", ... Written by the test's
  // one thread only.
  std::map<std::string, uint64_t> idem;
};
Coverage& TestCoverage();

// One step of a child's script as generated: the next scheduler step of run
// `key` (PlanStep), or, when `idem`, the next call on idempotency record
// `key` (PlanIdemStep); `choice` picks among the possible ones.
struct ChildStep {
  int key = 0;
  int choice = 0;
  bool idem = false;
};

// `parts` joined by `sep`.
inline std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// What an idempotency call met: "STATUS/OWNER" of the record (OWNER "this
// daemon" or "dead"), or "none".
std::string IdemMet(const IdemRecords& records, const IdemOp& op, uint64_t incarnation);
// Counts the call in TestCoverage().idem, by what it met and answered and the
// record's status after it.
void CountIdem(const IdemOp& op, const std::string& met, const std::string& answer,
               const IdemRecords& after);

class Harness {
 public:
  // Opens a fresh store under `dir`, an empty directory that outlives the
  // harness. `child_path` is the property_child binary. `empty_store`, unless
  // "", is a closed store of incarnation 1 holding nothing else: the harness
  // starts from a copy of it, which is much cheaper than creating the store
  // (ten column families) anew for every case.
  Harness(std::string dir, std::string child_path, const std::string& empty_store = "");
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Enqueues `keys` (duplicates allowed) in one batch, with a cursor update
  // when `with_cursor`.
  void Enqueue(const std::vector<int>& keys, bool with_cursor);
  // The next scheduler step for `key` (run_model.h PlanStep); for a terminal
  // run, a cancel that must be refused.
  void Step(int key, int choice);
  // Takes `key`'s run (enqueued first if need be) step by step forward to
  // running under a supervisor, as the scheduler would: wake, lease, ready,
  // running. Nothing for a run that is running, finishing or terminal.
  void StartSupervised(int key);
  // `op` whatever the run's state: the store must accept it exactly when the
  // model does. A kRunning op gets a fresh process.
  void Poke(Op op);
  // The next call a daemon would make on idempotency record `key`
  // (idem_model.h PlanIdemStep).
  void IdemStep(int key, int choice);
  // `op` whatever the record's status: its answer must be the model's.
  void Idem(const IdemOp& op);
  // The process of `key`'s running attempt exits; when `pid_reused`, an
  // unrelated process gets its pid (recovery must leave that one alone).
  void ProcessDies(int key, bool pid_reused);
  // While no daemon runs: the job of the (pick mod N)-th of the N running
  // supervised runs whose supervisor is alive and has written no exit file
  // (none when N is 0) ends with `outcome`; its supervisor writes the exit
  // file (runs/<id>.exit under the state dir, a real file) and exits.
  void JobEndsUnwatched(int pick, Outcome outcome);
  // Drops the store objects and reopens the directory, after a power loss
  // when `power_loss`.
  void Restart(bool power_loss);
  // The recovery pass of the current incarnation. With crash_after > 0 the
  // process dies at the crash_after-th during_recovery point (or, if the pass
  // has fewer actions, just after the pass), then Restart(power_loss).
  void Recover(int crash_after, bool power_loss);
  // Runs the next incarnation in property_child: its recovery pass, then
  // one PlanStep or PlanIdemStep per step of `steps`. Of the P crash point
  // passes it will make (store open, recovery actions, run_ops.h's and
  // idem_ops.h's points), the (crash_pick mod (P + 1))-th is armed, so it
  // dies there (or at none, for the last value). Afterwards the parent is
  // the incarnation after that.
  void RunChild(int crash_pick, const std::vector<ChildStep>& steps);

 private:
  // The pool runs and the cursor as the store has them.
  struct Observed {
    std::map<int, Run> runs;
    std::optional<std::string> cursor_sha;
    std::map<int, IdemRecord> idem;
  };

  void Open(uint64_t expected_incarnation);
  // Restart without comparing the store with the model.
  void Reopen(bool power_loss);
  void Close();
  void Execute(const Op& op);
  void CheckCreated(const Op& op, const std::vector<int>& fresh_keys,
                    const std::vector<Run>& created);
  // What happens to processes when `op` starts: kRunning spawns its process;
  // kFinish (reaped) and a cancel of a running run (killed) end it.
  void BeforeOp(const Op& op, const Model& model);
  Observed Observe();
  std::string Diff(const Model& want, const Observed& got) const;
  // Requires the store to match `without` or `with`; per run when `per_run`
  // (an unfinished recovery pass), else as a whole (one operation). Adopts
  // the match as the model; returns how many runs (or 1 for the whole) took
  // the `with` outcome.
  int Settle(const Model& without, const Model& with, bool per_run, const std::string& what);
  void ExpectModel(const std::string& what) { Settle(model_, model_, false, what); }
  void Adopt(const Observed& got);
  void CheckAfterRecovery();
  // The state dir of the supervisors' files (runs/<id>.exit), beside the db.
  std::string StateDir() const { return dir_ + "/state"; }
  // The recovery hooks of a daemon of `incarnation` (run_ops.h).
  RecoveryHooks Hooks(uint64_t incarnation);
  // Sets each run's `alive` from the process table, as a recovery pass will
  // find it.
  void NoteLiveness(Model* model);
  // CheckIdemRecords and IdemHistory on what the store holds.
  void CheckIdem(const Observed& got);
  std::map<int, IdemRecord> ReadIdemOrFail();
  // The previous incarnation's daemon as this one finds it (see above).
  void BuryPreviousDaemon();
  // What a child's report says it did.
  struct ChildProgress {
    Model acked;  // the model with all the child acknowledged
    bool recovered = false;
    size_t acks = 0;                  // ops acknowledged
    std::optional<size_t> in_flight;  // op begun and not acknowledged
    int64_t now_ms = 0;               // the child's clock
  };

  // The child's script, and the crash points it will pass in order.
  std::vector<ScriptOp> PlanChild(const std::vector<ChildStep>& steps, uint64_t incarnation,
                                  std::vector<std::string_view>* passes);
  // Adopts what the child left in the store (see the file comment).
  void Reconcile(const ChildReport& report, const std::vector<ScriptOp>& script,
                 uint64_t incarnation, int64_t start_ms);
  void Replay(const std::string& line, const std::vector<ScriptOp>& script, uint64_t incarnation,
              ChildProgress* progress);
  // An acknowledged idempotency op of the child: its answer must be the model's.
  void ReplayIdem(const IdemOp& op, const std::string& answer, uint64_t incarnation,
                  ChildProgress* progress);
  std::string LiveProcesses();
  ProcessIdentity FreshProcess();
  void KillIfAlive(const ProcessIdentity& process);
  void Reboot();
  void Trace(std::string line) { trace_.push_back(std::move(line)); }
  [[noreturn]] void Fail(const std::string& what) const;

  std::string dir_;
  std::string child_path_;
  std::shared_ptr<FaultInjectionFs> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  FakeClock clock_;
  FakeProcessTable processes_{"boot-0"};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<IdemStore> idem_;
  IdemHistory idem_history_;

  Model model_;
  uint64_t incarnation_ = 0;
  uint64_t max_id_ = 0;                      // greatest run id seen in the store
  std::set<int32_t> started_;                // every pid ever started
  std::vector<ProcessIdentity> bystanders_;  // live processes no run owns
  int32_t next_pid_ = 1000;
  uint64_t next_start_time_ = 500;
  int boots_ = 0;
  std::vector<std::string> trace_;
};

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_HARNESS_H_
