#include "property/idem_model.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <sstream>
#include <vector>

#include "base/process_table.h"
#include "property/run_model.h"

namespace wtd::property {
namespace {

using St = IdemStatus;

constexpr std::string_view kPrefix = "idem_";
constexpr std::string_view kIdemOpNames[kIdemOpKindCount] = {
    "idem_begin",   "idem_complete", "idem_fail", "idem_rolled_back",
    "idem_unblock", "idem_trim",     "idem_pass",
};

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

IdemOp Make(IdemOpKind kind, int key) { return IdemOp{kind, key, 0}; }

// The model's owner liveness: only this daemon is alive (see the header).
bool OwnerAlive(const ExpectedIdem& r, const IdemCall& call) {
  return r.owner_incarnation == call.incarnation;
}

// The decision Begin makes on `r` (nullptr: no record).
IdemDecision Decide(const ExpectedIdem* r, const IdemCall& call) {
  if (r == nullptr) return IdemDecision::kProceed;
  switch (r->status) {
    case St::kCompleted:
      return IdemDecision::kDone;
    case St::kBlocked:
      return IdemDecision::kBlocked;
    case St::kFailed:
      return call.now_ms < r->next_retry_at_ms ? IdemDecision::kWait : IdemDecision::kProceed;
    case St::kRolledBack:
      return IdemDecision::kProceed;
    case St::kInProgress:
      return OwnerAlive(*r, call) ? IdemDecision::kBusy : IdemDecision::kRollBack;
  }
  return IdemDecision::kProceed;
}

// Whether the transition `kind` is accepted on `r`.
bool TransitionAccepted(const ExpectedIdem& r, IdemOpKind kind, const IdemCall& call) {
  switch (kind) {
    case IdemOpKind::kComplete:
    case IdemOpKind::kFail:  // only this daemon's own attempt: never a dead owner's
      return r.status == St::kInProgress && OwnerAlive(r, call);
    case IdemOpKind::kRolledBack:
      return r.status == St::kInProgress && !OwnerAlive(r, call);
    case IdemOpKind::kUnblock:
      return r.status == St::kBlocked;
    default:
      return false;
  }
}

bool Trimmed(const ExpectedIdem& r, int64_t cutoff) {
  return r.status != St::kInProgress && r.status != St::kBlocked && r.last_at_ms < cutoff;
}

size_t TrimCount(const IdemRecords& records, const IdemOp& op, const IdemCall& call) {
  size_t n = 0;
  int64_t cutoff = call.now_ms - RetentionMs(op.retention);
  for (const auto& [key, r] : records) n += Trimmed(r, cutoff) ? 1 : 0;
  return n;
}

void Begin(IdemRecords* records, int key, const IdemCall& call) {
  auto it = records->find(key);
  if (Decide(it == records->end() ? nullptr : &it->second, call) != IdemDecision::kProceed) return;
  ExpectedIdem& r = (*records)[key];
  if (it == records->end()) r.first_at_ms = call.now_ms;
  r.status = St::kInProgress;
  r.attempts += 1;
  r.next_retry_at_ms = 0;
  r.result.clear();
  r.rollback_payload = IdemPayload(key, call.incarnation);
  r.last_at_ms = call.now_ms;
  r.owner_incarnation = call.incarnation;
}

void Transit(ExpectedIdem* r, int key, IdemOpKind kind, const IdemCall& call) {
  const IdemOptions options = PropertyIdemOptions();
  r->last_at_ms = call.now_ms;
  switch (kind) {
    case IdemOpKind::kComplete:
      r->status = St::kCompleted;
      r->result = IdemResult(key, call.incarnation);
      return;
    case IdemOpKind::kFail:
      if (r->attempts >= options.max_attempts) {
        r->status = St::kBlocked;
        r->next_retry_at_ms = 0;
      } else {
        r->status = St::kFailed;
        r->next_retry_at_ms = call.now_ms + IdemBackoffMs(options, r->attempts);
      }
      return;
    case IdemOpKind::kRolledBack:  // the dead owner's attempt counts as one
      r->status = r->attempts >= options.max_attempts ? St::kBlocked : St::kRolledBack;
      return;
    case IdemOpKind::kUnblock:
      r->status = St::kFailed;
      r->attempts = 0;
      r->next_retry_at_ms = call.now_ms;
      return;
    default:
      return;
  }
}

template <typename T>
void Compare(std::string* diff, const char* field, const T& want, const T& got) {
  if (want == got) return;
  std::ostringstream line;
  line << (diff->empty() ? "" : ", ") << field << " " << got << " (expected " << want << ")";
  *diff += line.str();
}

}  // namespace

std::string IdemOpName(int key) { return "slot_add" + std::to_string(key); }
std::string IdemParams(int key) { return R"({"slot":)" + std::to_string(key) + "}"; }
std::string IdemKeyFor(int key) { return IdemKey(IdemOpName(key), IdemParams(key)); }

int IdemKeyIndex(std::string_view key) {
  for (int i = 0; i < kIdemKeyCount; ++i) {
    if (IdemKeyFor(i) == key) return i;
  }
  return -1;
}

IdemOptions PropertyIdemOptions() { return IdemOptions{2, 1'000, 4'000}; }

int64_t RetentionMs(int retention) { return int64_t{retention} * kWakeAdvanceMs; }

IdemOwner IdemDaemonOwner(uint64_t incarnation, const std::string& boot_id) {
  return IdemOwner{"host-a", incarnation % 3 == 0 ? std::string(kUnknownBootId) : boot_id,
                   kDaemonPidBase + static_cast<int32_t>(incarnation), 1, incarnation};
}

std::string EncodeIdemOp(const IdemOp& op) {
  std::string out(kIdemOpNames[static_cast<int>(op.kind)]);
  return out + ":" + std::to_string(op.kind == IdemOpKind::kTrim ? op.retention : op.key);
}

bool IsIdemOpText(std::string_view text) { return text.substr(0, kPrefix.size()) == kPrefix; }

Result<IdemOp> DecodeIdemOp(std::string_view text) {
  size_t colon = text.rfind(':');
  int n = -1;
  if (colon != std::string_view::npos && ParseNumber(text.substr(colon + 1), &n)) {
    for (int k = 0; k < kIdemOpKindCount; ++k) {
      if (kIdemOpNames[k] != text.substr(0, colon)) continue;
      IdemOp op{static_cast<IdemOpKind>(k), 0, 0};
      bool trim = op.kind == IdemOpKind::kTrim;
      int limit = trim ? kRetentionCount : op.kind == IdemOpKind::kPass ? 1 : kIdemKeyCount;
      if (n < 0 || n >= limit) break;
      (trim ? op.retention : op.key) = n;
      return op;
    }
  }
  return Status::InvalidArgument("not an idempotency op: '" + std::string(text) + "'");
}

std::string IdemPayload(int key, uint64_t incarnation) {
  return "undo slot " + std::to_string(key) + " of incarnation " + std::to_string(incarnation);
}
std::string IdemResult(int key, uint64_t incarnation) {
  return "slot " + std::to_string(key) + " made by incarnation " + std::to_string(incarnation);
}
std::string IdemError(int key, uint64_t incarnation) {
  return "slot " + std::to_string(key) + " failed in incarnation " + std::to_string(incarnation);
}

std::string ExpectedIdemAnswer(const IdemRecords& records, const IdemOp& op, const IdemCall& call) {
  if (op.kind == IdemOpKind::kTrim) {
    return "trimmed:" + std::to_string(TrimCount(records, op, call));
  }
  if (op.kind == IdemOpKind::kPass) return "passed";
  auto it = records.find(op.key);
  const ExpectedIdem* r = it == records.end() ? nullptr : &it->second;
  if (op.kind == IdemOpKind::kBegin) return std::string(IdemDecisionName(Decide(r, call)));
  if (r == nullptr) return "absent";
  return TransitionAccepted(*r, op.kind, call) ? "ok" : "refused";
}

bool IdemOpWrites(const IdemRecords& records, const IdemOp& op, const IdemCall& call) {
  std::string answer = ExpectedIdemAnswer(records, op, call);
  return answer == "ok" || answer == "proceed" ||
         (answer.rfind("trimmed:", 0) == 0 && answer != "trimmed:0");
}

void ApplyIdemOp(IdemRecords* records, const IdemOp& op, const IdemCall& call) {
  if (op.kind == IdemOpKind::kBegin) return Begin(records, op.key, call);
  if (op.kind == IdemOpKind::kTrim) {
    int64_t cutoff = call.now_ms - RetentionMs(op.retention);
    std::erase_if(*records, [&](const auto& entry) { return Trimmed(entry.second, cutoff); });
    return;
  }
  auto it = records->find(op.key);
  if (it == records->end() || !TransitionAccepted(it->second, op.kind, call)) return;
  Transit(&it->second, op.key, op.kind, call);
}

IdemOp PlanIdemStep(const IdemRecords& records, int key, int choice, uint64_t incarnation) {
  if (choice % 12 >= 10) return IdemOp{IdemOpKind::kTrim, 0, choice % 12 == 10 ? 0 : 1};
  auto it = records.find(key);
  if (it == records.end()) return Make(IdemOpKind::kBegin, key);
  const ExpectedIdem& r = it->second;
  std::vector<IdemOp> steps;
  switch (r.status) {
    case St::kInProgress:
      if (r.owner_incarnation == incarnation) {
        steps = {Make(IdemOpKind::kComplete, key), Make(IdemOpKind::kFail, key),
                 Make(IdemOpKind::kFail, key), Make(IdemOpKind::kBegin, key)};
      } else {  // Begin says roll_back; the daemon undoes, then records it
        steps = {Make(IdemOpKind::kBegin, key), Make(IdemOpKind::kRolledBack, key),
                 Make(IdemOpKind::kRolledBack, key), Make(IdemOpKind::kComplete, key),
                 Make(IdemOpKind::kFail, key)};
      }
      break;
    case St::kBlocked:
      steps = {Make(IdemOpKind::kBegin, key), Make(IdemOpKind::kBegin, key),
               Make(IdemOpKind::kUnblock, key)};
      break;
    case St::kFailed:
      steps = {Make(IdemOpKind::kBegin, key), Make(IdemOpKind::kPass, 0)};
      break;
    default:  // completed, rolled_back
      steps = {Make(IdemOpKind::kBegin, key), Make(IdemOpKind::kBegin, key),
               Make(IdemOpKind::kComplete, key), Make(IdemOpKind::kPass, 0)};
      break;
  }
  return steps[static_cast<size_t>(choice) % steps.size()];
}

std::string DiffIdem(int key, const ExpectedIdem& want, const IdemRecord& got) {
  std::string diff;
  Compare(&diff, "op", IdemOpName(key), got.op);
  Compare(&diff, "params", IdemParams(key), got.params);
  Compare(&diff, "status", IdemStatusName(want.status), IdemStatusName(got.status));
  Compare(&diff, "attempts", want.attempts, got.attempts);
  Compare(&diff, "result", want.result, got.result);
  Compare(&diff, "rollback_payload", want.rollback_payload, got.rollback_payload);
  Compare(&diff, "owner incarnation", want.owner_incarnation, got.owner.incarnation);
  Compare(&diff, "owner pid", kDaemonPidBase + static_cast<int32_t>(want.owner_incarnation),
          got.owner.pid);
  Compare(&diff, "first_at_ms", want.first_at_ms, got.first_at_ms);
  Compare(&diff, "last_at_ms", want.last_at_ms, got.last_at_ms);
  Compare(&diff, "next_retry_at_ms", want.next_retry_at_ms, got.next_retry_at_ms);
  return diff;
}

}  // namespace wtd::property
