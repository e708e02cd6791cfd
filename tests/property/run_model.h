// The reference model of tests/property: what every run in the store must be
// after a sequence of run-store operations and recovery passes, written down
// from the state machine (docs/design/state-machine.md) and the recovery rules
// (src/recovery/recovery.h) without using src/runs.
//
// Runs are named by a key index into a small fixed pool (KeyFor), so that the
// same key is enqueued again and again and idempotency is exercised. An
// operation (Op) is a plain value with a one-word text form, so the property
// test can hand a script of them to its child process (property_child).
//
// The model also holds the idempotency records (idem_model.h), which the run
// operations and the recovery pass leave alone: they change only by the
// IdemOps of idem_model.h.
//
// Thread-safety: plain values and pure functions.
#ifndef WTD_TESTS_PROPERTY_RUN_MODEL_H_
#define WTD_TESTS_PROPERTY_RUN_MODEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/process_table.h"
#include "property/idem_model.h"
#include "store/records.h"
#include "wtd/status.h"

namespace wtd::property {

// The pool of run keys; keys are indices 0 .. kKeyCount-1.
inline constexpr int kKeyCount = 5;
RunKey KeyFor(int key);
// The index of a pool key, or -1 for a key outside the pool.
int KeyIndex(const RunKey& key);
// Each key always has the same max_attempts (1, 2 or 3), so a duplicate
// enqueue never asks for something different.
uint32_t MaxAttemptsFor(int key);
inline constexpr int64_t kRetryBackoffMs = 1000;
// The retry policy's cap; Wake first moves the clock past it, so that every
// retry_wait run is due.
inline constexpr int64_t kRetryCapMs = 60'000;
inline constexpr int64_t kWakeAdvanceMs = kRetryCapMs + 1;

enum class OpKind : uint8_t {
  kEnqueue,      // RunStore::Enqueue of `keys`, with a cursor when with_cursor
  kLease,        // pending -> leased, with a lock lease (AcquireLease)
  kPrepare,      // leased -> preparing
  kReady,        // `from` (leased | preparing) -> ready
  kRunning,      // ready -> running with `process` (a supervisor's when
                 // process.supervisor), under the run's lease token
  kSpawnFailed,  // ready -> retry_wait | failed
  kFinish,       // running -> finishing with `outcome` (BeginFinish)
  kWake,         // retry_wait -> pending (the clock is moved past not_before)
  kRequeue,      // `from` (leased | preparing | ready | retry_wait) -> pending
  kCancel,       // `from` -> cancelled
  kComplete,     // finishing -> the state its outcome decided (CompleteFinish)
  kSkip,         // leased | finishing -> skipped (SkipDone)
  kContended,    // leased -> retry_wait, no attempt used (LockContended)
  kRenew,        // RenewLease with the run's token: accepted while it holds its lease
  kStaleRenew,   // RenewLease with a token that is not the lease's: always refused
};
inline constexpr int kOpKindCount = 15;

enum class Outcome : uint8_t { kSuccess, kFailure, kTimeout };

struct Op {
  OpKind kind = OpKind::kLease;
  std::vector<int> keys;                // kEnqueue: one or more; others: exactly one
  bool with_cursor = false;             // kEnqueue: cursor moves to the last key's sha
  RunState from = RunState::kPending;   // kReady, kRequeue, kCancel
  ProcessIdentity process;              // kRunning
  Outcome outcome = Outcome::kSuccess;  // kFinish

  int key() const { return keys.at(0); }
};

// "enqueue:0,3:c", "lease:2", "ready:1:leased", "running:1:1004:5004:boot-A",
// "running:1:1004:5004:boot-A:s" (supervised), "finish:1:failure",
// "cancel:4:retry_wait", ...
std::string EncodeOp(const Op& op);
// InvalidArgument naming the text when it is not EncodeOp's output.
Result<Op> DecodeOp(std::string_view text);

// What the store must hold for one run.
struct ExpectedRun {
  uint64_t id = 0;  // 0 until the store has told us (ids are the store's choice)
  RunState state = RunState::kPending;
  uint32_t attempt = 0;
  uint32_t max_attempts = 1;
  ProcessIdentity process;                     // of the last attempt
  uint64_t incarnation = 0;                    // that started the last attempt
  RunState finish_state = RunState::kPending;  // finishing: where it ends
  uint32_t lock_waits = 0;
  // A supervised run's (process.supervisor) last attempt as its supervisor
  // left it for the next recovery pass, which reads both:
  //   exit_file  the outcome the supervisor wrote to runs/<id>.exit when the
  //              job ended while no daemon watched it (its process then
  //              exits); unset: no file for this attempt;
  //   alive      whether its process is alive, as the harness sets it from
  //              its process table just before a recovery pass.
  std::optional<Outcome> exit_file;
  bool alive = false;
  // The exit code an outcome recorded by recovery from an exit file left on
  // the run (compared only when set; a new attempt unsets it).
  std::optional<int32_t> exit_code;
};

struct Model {
  std::map<int, ExpectedRun> runs;  // by key index: every run that must exist
  std::optional<int> cursor_key;    // the cursor holds this key's sha; unset: no cursor
  IdemRecords idem;                 // the idempotency records (idem_model.h)
};

// The keys an enqueue creates: those of op.keys not yet in `model`, once
// each, in order. Empty for any other op.
std::vector<int> NewKeys(const Model& model, const Op& op);

// Whether the store must accept `op` in `model` (otherwise it must refuse it
// and change nothing).
bool IsAccepted(const Model& model, const Op& op);
// Applies an accepted op. `incarnation` is the store's, for kRunning.
// REQUIRES: IsAccepted(*model, op)
void ApplyOp(Model* model, const Op& op, uint64_t incarnation);

// The exit code of an attempt that ended with `outcome` (run_ops.h OutcomeOf).
int32_t ExitCodeOf(Outcome outcome);

// What one recovery pass by `incarnation` does to `run`; false when it leaves
// the run alone. A running run of an earlier incarnation: supervised with an
// exit file, the outcome recorded as the job's own (its state from the
// outcome, the attempt unchanged, no re-run); supervised and alive, adopted
// (still running, now `incarnation`'s, attempt unchanged); otherwise
// interrupted.
bool RecoverRun(ExpectedRun* run, uint64_t incarnation);
void RecoverAll(Model* model, uint64_t incarnation);

// The operation a scheduler could do next on `key`, picked by `choice` among
// those its state allows (mostly the step forward, sometimes a requeue, a
// cancel or a failure); `fresh` is the process a kRunning step gets. None
// when the run is terminal. Never an op the store must refuse (a stale
// renewal comes only from PokeCommand).
std::optional<Op> PlanStep(const Model& model, int key, int choice, const ProcessIdentity& fresh);

// "" when `got` is what `want` says (the id is compared only once known),
// else what differs.
std::string DiffRun(const ExpectedRun& want, const Run& got);

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_RUN_MODEL_H_
