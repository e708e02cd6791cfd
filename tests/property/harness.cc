#include "property/harness.h"

#include <rapidcheck.h>

#include <algorithm>
#include <filesystem>

#include "base/crash_point.h"
#include "base/paths.h"
#include "exec/exit_record.h"
#include "property/invariants.h"
#include "property/run_ops.h"
#include "recovery/recovery.h"

namespace wtd::property {
namespace {

using S = RunState;

std::string KeyName(int key) { return "job" + std::to_string(key); }

}  // namespace

std::string IdemMet(const IdemRecords& records, const IdemOp& op, uint64_t incarnation) {
  auto it = records.find(op.key);
  if (op.kind == IdemOpKind::kTrim || it == records.end()) return "none";
  return std::string(IdemStatusName(it->second.status)) +
         (it->second.owner_incarnation == incarnation ? "/this daemon" : "/dead");
}

void CountIdem(const IdemOp& op, const std::string& met, const std::string& answer,
               const IdemRecords& after) {
  std::map<std::string, uint64_t>& seen = TestCoverage().idem;
  auto it = after.find(op.key);
  std::string now = it == after.end() ? "gone" : std::string(IdemStatusName(it->second.status));
  switch (op.kind) {
    case IdemOpKind::kBegin:
      ++seen["begin " + met + " -> " + answer];
      return;
    case IdemOpKind::kTrim:
      if (answer != "trimmed:0") ++seen["trimmed"];
      return;
    default: {
      std::string name(EncodeIdemOp(op), 0, EncodeIdemOp(op).rfind(':'));
      if (answer == "ok") ++seen[name + " -> " + now];
      if (answer == "refused" && met == "in_progress/dead") ++seen[name + " refused: dead owner"];
      return;
    }
  }
}

Coverage& TestCoverage() {
  static Coverage coverage;
  return coverage;
}

Harness::Harness(std::string dir, std::string child_path, const std::string& empty_store)
    : dir_(std::move(dir)),
      child_path_(std::move(child_path)),
      fs_(std::make_shared<FaultInjectionFs>()),
      env_(rocksdb::NewCompositeEnv(fs_)) {
  std::error_code made;
  std::filesystem::create_directories(StateDir() + "/runs", made);
  if (made) Fail("create " + StateDir() + "/runs: " + made.message());
  if (empty_store.empty()) {
    Open(1);
    return;
  }
  std::error_code ec;
  std::filesystem::copy(empty_store, dir_ + "/db", std::filesystem::copy_options::recursive, ec);
  if (ec) Fail("copy " + empty_store + ": " + ec.message());
  Open(2);
}

Harness::~Harness() { Close(); }

void Harness::Open(uint64_t expected_incarnation) {
  StoreOptions options{dir_ + "/db"};
  options.env = env_.get();
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(options);
  if (!store.ok()) Fail("open: " + store.status().ToString());
  store_ = std::move(*store);
  incarnation_ = store_->incarnation();
  if (incarnation_ != expected_incarnation) {
    Fail("opened as incarnation " + std::to_string(incarnation_) + ", expected " +
         std::to_string(expected_incarnation));
  }
  runs_ = std::make_unique<RunStore>(store_.get(), &clock_, RetryPolicy(kRetryCapMs, 0.0, 1));
  if (Status s = runs_->Init(); !s.ok()) Fail("RunStore::Init: " + s.ToString());
  BuryPreviousDaemon();
  idem_ = std::make_unique<IdemStore>(store_.get(), &clock_, &processes_,
                                      IdemDaemonOwner(incarnation_, processes_.BootId()),
                                      PropertyIdemOptions());
}

void Harness::BuryPreviousDaemon() {
  int32_t previous = kDaemonPidBase + static_cast<int32_t>(incarnation_) - 1;
  if (incarnation_ % 2 == 1) return processes_.Exit(previous);  // gone
  processes_.Start(previous, 2);  // reused: the daemon's start time was 1
  started_.insert(previous);
}

void Harness::Close() {
  idem_.reset();
  runs_.reset();
  store_.reset();
}

void Harness::Fail(const std::string& what) const {
  RC_FAIL(what + "\nsteps so far:\n  " + (trace_.empty() ? "(none)" : Join(trace_, "\n  ")));
}

void Harness::Enqueue(const std::vector<int>& keys, bool with_cursor) {
  Op op;
  op.kind = OpKind::kEnqueue;
  op.keys = keys;
  op.with_cursor = with_cursor;
  Execute(op);
}

void Harness::Step(int key, int choice) {
  std::optional<Op> op = PlanStep(model_, key, choice, FreshProcess());
  if (op) return Execute(*op);
  Op cancel;  // terminal: the state machine must keep it so
  cancel.kind = OpKind::kCancel;
  cancel.keys = {key};
  cancel.from = model_.runs.at(key).state;
  Execute(cancel);
}

void Harness::StartSupervised(int key) {
  if (!model_.runs.count(key)) Enqueue({key}, false);
  for (;;) {
    Op op;
    op.keys = {key};
    op.from = model_.runs.at(key).state;
    switch (op.from) {
      case S::kRetryWait:
        op.kind = OpKind::kWake;
        break;
      case S::kPending:
        op.kind = OpKind::kLease;
        break;
      case S::kLeased:
      case S::kPreparing:
        op.kind = OpKind::kReady;
        break;
      case S::kReady:
        op.kind = OpKind::kRunning;
        op.process = FreshProcess();
        op.process.supervisor = true;
        return Execute(op);
      default:
        return;
    }
    Execute(op);
  }
}

void Harness::Poke(Op op) {
  if (op.kind == OpKind::kRunning) op.process = FreshProcess();
  Execute(op);
}

void Harness::Execute(const Op& op) {
  std::string text = EncodeOp(op);
  bool accepted = IsAccepted(model_, op);
  std::vector<int> fresh = NewKeys(model_, op);
  if (accepted) BeforeOp(op, model_);
  Result<std::vector<Run>> r = ExecuteOp(runs_.get(), &clock_, op);
  if (!accepted) {
    bool absent = !model_.runs.count(op.key());
    if (r.ok() || !(absent ? r.status().IsNotFound() : r.status().IsFailedPrecondition())) {
      Fail(text + " must be refused (run " +
           (absent ? "absent" : std::string(RunStateName(model_.runs.at(op.key()).state))) +
           "), got " + (r.ok() ? "OK" : r.status().ToString()));
    }
    TestCoverage().refusals++;
    Trace(text + " -> refused");
    return ExpectModel(text);
  }
  if (!r.ok()) Fail(text + " refused: " + r.status().ToString());
  ApplyOp(&model_, op, incarnation_);
  Trace(text + " -> ok");
  ExpectModel(text);
  CheckCreated(op, fresh, *r);
}

void Harness::CheckCreated(const Op& op, const std::vector<int>& fresh_keys,
                           const std::vector<Run>& created) {
  std::string text = EncodeOp(op);
  if (op.kind != OpKind::kEnqueue) {
    if (created.size() != 1 || created[0].id != model_.runs.at(op.key()).id) {
      Fail(text + " returned another run");
    }
    return;
  }
  if (created.size() != fresh_keys.size()) {
    Fail(text + " created " + std::to_string(created.size()) + " runs, expected " +
         std::to_string(fresh_keys.size()));
  }
  for (size_t i = 0; i < created.size(); ++i) {
    const ExpectedRun& want = model_.runs.at(fresh_keys[i]);
    if (KeyIndex(created[i].key) != fresh_keys[i] || created[i].id != want.id ||
        created[i].state != S::kPending) {
      Fail(text + ": created run " + std::to_string(created[i].id) + " is not the new " +
           KeyName(fresh_keys[i]));
    }
  }
}

void Harness::BeforeOp(const Op& op, const Model& model) {
  if (op.kind == OpKind::kRunning) {
    processes_.Start(op.process.pid, op.process.start_time);
    started_.insert(op.process.pid);
  }
  // Whoever cancels a running run stops its process (Cancel signals nothing).
  bool ends_attempt =
      op.kind == OpKind::kFinish || (op.kind == OpKind::kCancel && op.from == S::kRunning);
  if (ends_attempt) KillIfAlive(model.runs.at(op.key()).process);
}

void Harness::IdemStep(int key, int choice) {
  Idem(PlanIdemStep(model_.idem, key, choice, incarnation_));
}

void Harness::Idem(const IdemOp& op) {
  std::string text = EncodeIdemOp(op);
  IdemCall call{incarnation_, clock_.NowMs()};
  std::string want = ExpectedIdemAnswer(model_.idem, op, call);
  std::string met = IdemMet(model_.idem, op, incarnation_);
  std::map<int, IdemRecord> before = ReadIdemOrFail();
  Result<std::string> got = ExecuteIdemOp(idem_.get(), &clock_, op);
  if (!got.ok()) Fail(text + " failed: " + got.status().ToString());
  if (*got != want) Fail(text + " on " + met + " answered " + *got + ", expected " + want);
  ApplyIdemOp(&model_.idem, op, call);
  CountIdem(op, met, want, model_.idem);
  Trace(text + " -> " + want);
  if (op.kind == IdemOpKind::kTrim) idem_history_.Forget();
  ExpectModel(text);
  if (op.kind != IdemOpKind::kTrim) return;
  std::map<int, IdemRecord> after = ReadIdemOrFail();
  for (const auto& [key, r] : before) {  // in_progress and blocked stay as they were
    auto it = after.find(key);
    bool kept = r.status != IdemStatus::kInProgress && r.status != IdemStatus::kBlocked;
    if (!kept && (it == after.end() || !(it->second == r))) {
      Fail(text + " trimmed or changed the " + std::string(IdemStatusName(r.status)) + " record " +
           std::to_string(key));
    }
  }
}

std::map<int, IdemRecord> Harness::ReadIdemOrFail() {
  Result<std::map<int, IdemRecord>> idem = ReadIdemRecords(*idem_);
  if (!idem.ok()) Fail("reading the idempotency records: " + idem.status().ToString());
  return std::move(*idem);
}

void Harness::ProcessDies(int key, bool pid_reused) {
  auto it = model_.runs.find(key);
  if (it == model_.runs.end() || it->second.state != S::kRunning ||
      !processes_.IsAlive(it->second.process)) {
    return Trace("process of " + KeyName(key) + ": none alive");
  }
  ProcessIdentity process = it->second.process;
  processes_.Exit(process.pid);
  Trace("process " + std::to_string(process.pid) + " of " + KeyName(key) + " exits");
  if (!pid_reused) return;
  ProcessIdentity other{process.pid, next_start_time_ += 10, processes_.BootId()};
  processes_.Start(other.pid, other.start_time);
  bystanders_.push_back(other);
  Trace("pid " + std::to_string(other.pid) + " reused by an unrelated process");
}

void Harness::JobEndsUnwatched(int pick, Outcome outcome) {
  std::vector<int> keys;
  for (const auto& [key, run] : model_.runs) {
    if (run.state == S::kRunning && run.process.supervisor && !run.exit_file &&
        processes_.IsAlive(run.process)) {
      keys.push_back(key);
    }
  }
  if (keys.empty()) return Trace("no job under a live supervisor to end");
  int key = keys[static_cast<size_t>(pick) % keys.size()];
  ExpectedRun& run = model_.runs.at(key);
  ExitRecord record;
  record.run_id = run.id;
  record.attempt = run.attempt;
  record.outcome = OutcomeOf(outcome);
  record.started_at_ms = clock_.NowMs();
  record.ended_at_ms = clock_.NowMs() + record.outcome.duration_ms;
  if (Status s = WriteExitRecord(RunExitPath(StateDir(), run.id), record); !s.ok()) {
    Fail("writing the exit file of " + KeyName(key) + ": " + s.ToString());
  }
  processes_.Exit(run.process.pid);
  run.exit_file = outcome;
  TestCoverage().exit_files_written++;
  Trace("job of " + KeyName(key) + " (run " + std::to_string(run.id) + ", attempt " +
        std::to_string(run.attempt) + ") ends unwatched with exit code " +
        std::to_string(record.outcome.exit_code) + "; supervisor " +
        std::to_string(run.process.pid) + " wrote its exit file and exits");
}

RecoveryHooks Harness::Hooks(uint64_t incarnation) {
  RecoveryHooks hooks;
  hooks.adopt = [this, incarnation](const Run& r) {
    return AdoptRun(runs_.get(), &clock_, r, incarnation);
  };
  hooks.record_outcome = [this](const Run& r, const AttemptOutcome& o) {
    return RecordUnwatched(runs_.get(), r, o);
  };
  return hooks;
}

void Harness::NoteLiveness(Model* model) {
  for (auto& [key, run] : model->runs) run.alive = processes_.IsAlive(run.process);
}

void Harness::Restart(bool power_loss) {
  Reopen(power_loss);
  ExpectModel("reopen");
}

void Harness::Reopen(bool power_loss) {
  Close();
  if (power_loss) {
    rocksdb::IOStatus s = fs_->DropUnsyncedData();
    if (!s.ok()) Fail("DropUnsyncedData: " + s.ToString());
    Reboot();
    TestCoverage().power_losses++;
  }
  Open(incarnation_ + 1);
  Trace(std::string(power_loss ? "power loss and reboot" : "crash") + ", reopened as incarnation " +
        std::to_string(incarnation_));
}

void Harness::Recover(int crash_after, bool power_loss) {
  uint64_t incarnation = incarnation_;
  NoteLiveness(&model_);
  if (crash_after > 0) {
    if (Status s = ArmCrashPoint("during_recovery", crash_after); !s.ok()) Fail(s.ToString());
  }
  std::optional<Result<RecoveryReport>> report;
  try {
    RecoveryOptions options;
    options.kill_wait_ms = 0;
    options.state_dir = StateDir();
    report =
        RunRecovery(runs_.get(), &processes_, &clock_, Hooks(incarnation), incarnation, options);
  } catch (const SimulatedCrash&) {
  }
  DisarmCrashPoints();
  if (!report) {  // died at during_recovery after `crash_after` actions
    Trace("recovery dies after " + std::to_string(crash_after) + " actions");
    TestCoverage().recovery_crashes++;
    Model before = model_, after = model_;
    RecoverAll(&after, incarnation);
    Reopen(power_loss);
    Settle(before, after, /*per_run=*/true, "reopen after a crash in recovery");
    return;
  }
  if (!report->ok()) Fail("recovery: " + report->status().ToString());
  if (!(*report)->errors.empty()) Fail("recovery: " + Join((*report)->errors, "; "));
  RecoverAll(&model_, incarnation);
  for (const RecoveryAction& a : (*report)->actions) {
    if (a.kind == "record_outcome") TestCoverage().outcomes_recorded++;
    if (a.kind == "adopt_run") TestCoverage().adoptions++;
  }
  Trace("recovery: " + std::to_string((*report)->actions.size()) + " actions");
  ExpectModel("recovery");
  CheckAfterRecovery();
  if (crash_after > 0) Restart(power_loss);  // the point never came: die after the pass
}

void Harness::CheckAfterRecovery() {
  std::vector<std::string> errors = CheckInvariants(*store_, &processes_, incarnation_, StateDir());
  for (const ProcessIdentity& p : bystanders_) {
    if (!processes_.IsAlive(p)) {
      errors.push_back("unrelated process " + std::to_string(p.pid) + " was killed");
    }
  }
  if (!errors.empty()) Fail("after recovery: " + Join(errors, "; "));
  TestCoverage().recoveries_checked++;
}

void Harness::CheckIdem(const Observed& got) {
  std::vector<std::string> errors =
      CheckIdemRecords(got.idem, PropertyIdemOptions().max_attempts, incarnation_);
  for (std::string& e : idem_history_.Observe(got.idem, incarnation_)) errors.push_back(e);
  if (!errors.empty()) Fail("idempotency records: " + Join(errors, "; "));
}

Harness::Observed Harness::Observe() {
  Observed got;
  Result<std::map<int, Run>> runs = ReadRuns(*runs_);
  if (!runs.ok()) Fail("reading the runs: " + runs.status().ToString());
  got.runs = std::move(*runs);
  Result<std::optional<Cursor>> cursor = runs_->GetCursor("/repo", "main", "main");
  if (!cursor.ok()) Fail("reading the cursor: " + cursor.status().ToString());
  if (cursor->has_value()) got.cursor_sha = (*cursor)->sha;
  got.idem = ReadIdemOrFail();
  return got;
}

std::string Harness::Diff(const Model& want, const Observed& got) const {
  std::vector<std::string> diffs;
  for (const auto& [key, run] : want.runs) {
    auto it = got.runs.find(key);
    std::string d = it == got.runs.end() ? "lost" : DiffRun(run, it->second);
    if (!d.empty()) diffs.push_back(KeyName(key) + ": " + d);
  }
  for (const auto& [key, run] : got.runs) {
    if (!want.runs.count(key)) {
      diffs.push_back(KeyName(key) + ": unexpected run " + std::to_string(run.id));
    }
  }
  std::optional<std::string> cursor;
  if (want.cursor_key) cursor = KeyName(*want.cursor_key) + "'s sha";
  std::optional<std::string> got_cursor;
  if (got.cursor_sha) {
    int key = 0;
    while (key < kKeyCount && KeyFor(key).sha != *got.cursor_sha) ++key;
    got_cursor = key < kKeyCount ? KeyName(key) + "'s sha" : "sha " + *got.cursor_sha;
  }
  if (cursor != got_cursor) {
    diffs.push_back("cursor is " + got_cursor.value_or("none") + ", expected " +
                    cursor.value_or("none"));
  }
  for (const auto& [key, r] : want.idem) {
    auto it = got.idem.find(key);
    std::string d = it == got.idem.end() ? "lost" : DiffIdem(key, r, it->second);
    if (!d.empty()) diffs.push_back("idem " + std::to_string(key) + ": " + d);
  }
  for (const auto& [key, r] : got.idem) {
    if (!want.idem.count(key)) {
      diffs.push_back("idem " + std::to_string(key) + ": unexpected " +
                      std::string(IdemStatusName(r.status)) + " record");
    }
  }
  return Join(diffs, "; ");
}

int Harness::Settle(const Model& without, const Model& with, bool per_run,
                    const std::string& what) {
  Observed got = Observe();
  Model chosen = with;
  int taken = 1;
  if (per_run) {
    taken = 0;
    for (auto& [key, run] : chosen.runs) {
      auto before = without.runs.find(key);
      auto it = got.runs.find(key);
      if (before != without.runs.end() && it != got.runs.end() &&
          DiffRun(before->second, it->second).empty()) {
        run = before->second;
      } else {
        ++taken;
      }
    }
  } else if (Diff(without, got).empty()) {
    chosen = without;
    taken = 0;
  }
  std::string diff = Diff(chosen, got);
  if (!diff.empty()) {
    std::string without_diff = Diff(without, got);
    std::string with_diff = Diff(with, got);
    if (without_diff == with_diff) Fail(what + ": the store differs from the model: " + diff);
    Fail(what + ": the store matches neither outcome of the unacknowledged step: without it [" +
         without_diff + "], with it [" + with_diff + "]" +
         (per_run ? ", run by run [" + diff + "]" : ""));
  }
  model_ = std::move(chosen);
  Adopt(got);
  CheckIdem(got);
  return taken;
}

void Harness::Adopt(const Observed& got) {
  uint64_t newest = max_id_;
  for (auto& [key, run] : model_.runs) {
    if (run.id != 0) continue;
    uint64_t id = got.runs.at(key).id;
    if (id <= max_id_) {
      Fail(KeyName(key) + " got run id " + std::to_string(id) + ", not above the earlier " +
           std::to_string(max_id_));
    }
    run.id = id;
    newest = std::max(newest, id);
  }
  max_id_ = newest;
}

ProcessIdentity Harness::FreshProcess() {
  return ProcessIdentity{next_pid_++, next_start_time_ += 10, processes_.BootId()};
}

void Harness::KillIfAlive(const ProcessIdentity& process) {
  if (processes_.IsAlive(process)) processes_.Exit(process.pid);
}

void Harness::Reboot() {
  for (int32_t pid : started_) processes_.Exit(pid);
  bystanders_.clear();
  processes_.SetBootId("boot-" + std::to_string(++boots_));
}

}  // namespace wtd::property
