// Runs an idem_model IdemOp against a real IdemStore, the same way in the
// property test and in its child process (property_child), and reads the
// records back in the model's terms. Also the entries of a child's script,
// which mixes run operations (run_ops.h) and idempotency operations.
//
// Thread-safety: as IdemStore's; the functions keep no state.
#ifndef WTD_TESTS_PROPERTY_IDEM_OPS_H_
#define WTD_TESTS_PROPERTY_IDEM_OPS_H_

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fakes/fake_clock.h"
#include "idem/idem_store.h"
#include "property/idem_model.h"
#include "property/run_model.h"
#include "wtd/status.h"

namespace wtd::property {

// One entry of a child's script.
using ScriptOp = std::variant<Op, IdemOp>;

// Makes `op` on `idem` (kPass moves `clock` on by kWakeAdvanceMs) and
// returns its answer in ExpectedIdemAnswer's words.
// Passes the crash points the worktree slots pass around the same calls
// (src/worktrees/slots.cc), each only after a commit as there:
// after_intent_commit after a Begin that proceeded, after_idem_complete
// after a Complete. Errors other than a refusal (FailedPrecondition) or a
// missing record (NotFound) are returned.
Result<std::string> ExecuteIdemOp(IdemStore* idem, FakeClock* clock, const IdemOp& op);

// Whether `op` moves the clock on by kWakeAdvanceMs: a run op's kWake or an
// idempotency op's kPass.
bool AdvancesClock(const ScriptOp& op);

// The crash points ExecuteIdemOp passes when `op` answers `answer`.
std::vector<std::string_view> IdemCrashPointsOf(const IdemOp& op, std::string_view answer);

// Every record of the idem family, by key index. Corruption for a record
// whose key is not in the pool.
Result<std::map<int, IdemRecord>> ReadIdemRecords(const IdemStore& idem);

std::string EncodeScriptOp(const ScriptOp& op);
Result<ScriptOp> DecodeScriptOp(std::string_view text);

}  // namespace wtd::property

#endif  // WTD_TESTS_PROPERTY_IDEM_OPS_H_
