// The idempotency-record part of the reference model of tests/property:
// what every record of the `idem` family must be, and what every IdemStore
// call must answer, after a sequence of calls by the daemon's successive
// incarnations, written down from docs/design/idempotency.md without using
// src/idem.
//
// Records are named by a key index into a small fixed pool (kIdemKeyCount
// operations, each always with the same parameters). Each store incarnation
// is one daemon with one owner identity (IdemDaemonOwner), which is dead to
// every later incarnation: its pid gone, its pid reused, its boot gone
// (power loss), or, when either side could not read its boot id, by the
// incarnation rule. So an in_progress record's owner is either this daemon
// (alive: Begin says busy) or an earlier incarnation (dead: roll_back).
//
// An operation (IdemOp) is a plain value with a text form ("idem_begin:1",
// "idem_trim:2"), so that the property test can hand it to its child process
// among the run operations of run_model.h.
//
// Thread-safety: plain values and pure functions.
#ifndef WTD_TESTS_PROPERTY_IDEM_MODEL_H_
#define WTD_TESTS_PROPERTY_IDEM_MODEL_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "idem/idem_store.h"
#include "store/records.h"
#include "wtd/status.h"

namespace wtd::property {

// The pool of idempotent operations; keys are indices 0 .. kIdemKeyCount-1.
inline constexpr int kIdemKeyCount = 3;
std::string IdemOpName(int key);         // "slot_add0", ...
std::string IdemParams(int key);         // canonical JSON, always the same for a key
std::string IdemKeyFor(int key);         // IdemKey(IdemOpName(key), IdemParams(key))
int IdemKeyIndex(std::string_view key);  // -1 for a key outside the pool
// Two attempts, and a backoff always shorter than run_model.h's
// kWakeAdvanceMs: after a Wake every failed record is due.
IdemOptions PropertyIdemOptions();
// Trim's retention for a retention index 0..kRetentionCount-1: 0, then whole
// multiples of kWakeAdvanceMs (the clock moves only by Wake).
inline constexpr int kRetentionCount = 3;
int64_t RetentionMs(int retention);

// The daemon of store incarnation `incarnation`, on a machine whose boot id
// is `boot_id`: host-a, pid kDaemonPidBase + incarnation, start time 1. Every
// third incarnation could not read its boot id (kUnknownBootId), so owners
// are judged by the incarnation rule whenever it or the record's owner is one
// of those.
inline constexpr int32_t kDaemonPidBase = 90'000;
IdemOwner IdemDaemonOwner(uint64_t incarnation, const std::string& boot_id);

enum class IdemOpKind : uint8_t {
  kBegin,       // Begin(op, params, payload): a decision, proceed writes
  kComplete,    // Complete(key, result) by this daemon
  kFail,        // Fail(key, error) by this daemon
  kRolledBack,  // RolledBack(key): undoing a dead owner's attempt is done
  kUnblock,     // Unblock(key), as an operator would
  kTrim,        // Trim(RetentionMs(retention))
  kPass,        // no call: the clock moves on by kWakeAdvanceMs (backoffs run out)
};
inline constexpr int kIdemOpKindCount = 7;

struct IdemOp {
  IdemOpKind kind = IdemOpKind::kBegin;
  int key = 0;        // all but kTrim and kPass
  int retention = 0;  // kTrim
};

// "idem_begin:1", "idem_complete:0", "idem_rolled_back:2", "idem_trim:1",
// "idem_pass:0", ...
std::string EncodeIdemOp(const IdemOp& op);
// InvalidArgument naming the text when it is not EncodeIdemOp's output.
Result<IdemOp> DecodeIdemOp(std::string_view text);
// Whether `text` is an IdemOp's text form (rather than a run op's).
bool IsIdemOpText(std::string_view text);

// The payload a Begin by `incarnation` records, and the result or error its
// Complete or Fail writes.
std::string IdemPayload(int key, uint64_t incarnation);
std::string IdemResult(int key, uint64_t incarnation);
std::string IdemError(int key, uint64_t incarnation);

// What the store must hold for one record.
struct ExpectedIdem {
  IdemStatus status = IdemStatus::kInProgress;
  uint32_t attempts = 0;
  std::string result;
  std::string rollback_payload;
  uint64_t owner_incarnation = 0;  // of the daemon that began the current (or last) attempt
  int64_t first_at_ms = 0;
  int64_t last_at_ms = 0;
  int64_t next_retry_at_ms = 0;
};
using IdemRecords = std::map<int, ExpectedIdem>;  // by key index: every record that must exist

// When and by whom a call is made.
struct IdemCall {
  uint64_t incarnation = 0;  // this daemon's
  int64_t now_ms = 0;
};

// What a call must answer, as one word: Begin's decision
// (IdemDecisionName), "ok" for a transition done, "refused" for one refused
// (FailedPrecondition), "absent" for one on a key with no record (NotFound),
// "trimmed:N" for Trim, "passed" for kPass.
std::string ExpectedIdemAnswer(const IdemRecords& records, const IdemOp& op, const IdemCall& call);
// Applies `op` (whatever it answers: a refusal or a decision that writes
// nothing leaves the records alone).
void ApplyIdemOp(IdemRecords* records, const IdemOp& op, const IdemCall& call);
// Whether `op` writes when made now (Begin that proceeds, a transition done,
// a Trim that deletes something).
bool IdemOpWrites(const IdemRecords& records, const IdemOp& op, const IdemCall& call);

// The call a daemon could make next on `key`, picked by `choice` among those
// the record's status makes sensible (mostly the step forward: Begin, then
// Complete or Fail; RolledBack after a restart; time passing after a
// failure; sometimes Unblock or Trim).
IdemOp PlanIdemStep(const IdemRecords& records, int key, int choice, uint64_t incarnation);

// "" when `got` is what `want` says, else what differs.
std::string DiffIdem(int key, const ExpectedIdem& want, const IdemRecord& got);

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_IDEM_MODEL_H_
