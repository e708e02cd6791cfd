#include "property/idem_ops.h"

#include "base/crash_point.h"

namespace wtd::property {
namespace {

// "ok", or the refusal's word; other errors are returned.
Result<std::string> Transition(const Result<IdemRecord>& r) {
  if (r.ok()) return std::string("ok");
  if (r.status().IsFailedPrecondition()) return std::string("refused");
  if (r.status().IsNotFound()) return std::string("absent");
  return r.status();
}

}  // namespace

Result<std::string> ExecuteIdemOp(IdemStore* idem, FakeClock* clock, const IdemOp& op) {
  uint64_t incarnation = idem->me().incarnation;
  std::string key = IdemKeyFor(op.key);
  switch (op.kind) {
    case IdemOpKind::kBegin: {
      WTD_ASSIGN_OR_RETURN(IdemBegin b, idem->Begin(IdemOpName(op.key), IdemParams(op.key),
                                                    IdemPayload(op.key, incarnation)));
      if (b.decision == IdemDecision::kProceed) WTD_CRASH_POINT("after_intent_commit");
      return std::string(IdemDecisionName(b.decision));
    }
    case IdemOpKind::kComplete: {
      Result<std::string> answer = Transition(idem->Complete(key, IdemResult(op.key, incarnation)));
      if (answer.ok() && *answer == "ok") WTD_CRASH_POINT("after_idem_complete");
      return answer;
    }
    case IdemOpKind::kFail:
      return Transition(idem->Fail(key, IdemError(op.key, incarnation)));
    case IdemOpKind::kRolledBack:
      return Transition(idem->RolledBack(key));
    case IdemOpKind::kUnblock:
      return Transition(idem->Unblock(key));
    case IdemOpKind::kTrim: {
      WTD_ASSIGN_OR_RETURN(size_t n, idem->Trim(RetentionMs(op.retention)));
      return "trimmed:" + std::to_string(n);
    }
    case IdemOpKind::kPass:
      clock->AdvanceMs(kWakeAdvanceMs);
      return std::string("passed");
  }
  return Status::InvalidArgument("not an idempotency op: " + EncodeIdemOp(op));
}

std::vector<std::string_view> IdemCrashPointsOf(const IdemOp& op, std::string_view answer) {
  if (op.kind == IdemOpKind::kBegin && answer == "proceed") return {"after_intent_commit"};
  if (op.kind == IdemOpKind::kComplete && answer == "ok") return {"after_idem_complete"};
  return {};
}

Result<std::map<int, IdemRecord>> ReadIdemRecords(const IdemStore& idem) {
  WTD_ASSIGN_OR_RETURN(std::vector<IdemEntry> all, idem.List());
  std::map<int, IdemRecord> by_key;
  for (IdemEntry& e : all) {
    int key = IdemKeyIndex(e.key);
    if (key < 0) return Status::Corruption("idem/" + e.key + " is not in the pool: " + e.record.op);
    by_key[key] = std::move(e.record);
  }
  return by_key;
}

bool AdvancesClock(const ScriptOp& op) {
  if (const IdemOp* idem = std::get_if<IdemOp>(&op)) return idem->kind == IdemOpKind::kPass;
  return std::get<Op>(op).kind == OpKind::kWake;
}

std::string EncodeScriptOp(const ScriptOp& op) {
  if (const IdemOp* idem = std::get_if<IdemOp>(&op)) return EncodeIdemOp(*idem);
  return EncodeOp(std::get<Op>(op));
}

Result<ScriptOp> DecodeScriptOp(std::string_view text) {
  if (IsIdemOpText(text)) {
    WTD_ASSIGN_OR_RETURN(IdemOp op, DecodeIdemOp(text));
    return ScriptOp(op);
  }
  WTD_ASSIGN_OR_RETURN(Op op, DecodeOp(text));
  return ScriptOp(std::move(op));
}

}  // namespace wtd::property
