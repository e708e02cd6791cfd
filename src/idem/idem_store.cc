#include "idem/idem_store.h"

#include <utility>

#include "base/sha256.h"
#include "base/time_format.h"
#include "store/keys.h"

namespace wtd {
namespace {

constexpr size_t kKeySize = 64;

// "call op key": what every error of a call names.
std::string Where(std::string_view call, std::string_view op, std::string_view key) {
  std::string out(call);
  if (!op.empty()) out.append(" ").append(op);
  out.append(" ").append(key);
  return out;
}

Status CheckKey(std::string_view call, std::string_view key) {
  bool hex = key.size() == kKeySize;
  for (char c : key) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (hex) return Status::OK();
  return Status::InvalidArgument(std::string(call) + ": idempotency key '" + std::string(key) +
                                 "' is not 64 lowercase hex digits");
}

std::string StatusName(IdemStatus s) { return std::string(IdemStatusName(s)); }

std::string DescribeOwner(const IdemOwner& o) {
  return o.host + " pid " + std::to_string(o.pid) + " (incarnation " +
         std::to_string(o.incarnation) + ")";
}

}  // namespace

std::string IdemKey(std::string_view op, std::string_view params) {
  std::string input(op);
  input.push_back('\0');
  input.append(params);
  return Sha256Hex(input);
}

int64_t IdemBackoffMs(const IdemOptions& options, uint32_t attempts) {
  const int64_t cap = options.backoff_cap_ms;
  int64_t wait = options.backoff_base_ms;
  for (uint32_t n = 1; n < attempts && wait < cap; ++n) {
    if (wait >= cap - wait) return cap;  // doubling would reach the cap (or overflow)
    wait *= 2;
  }
  return wait < cap ? wait : cap;
}

std::string_view IdemDecisionName(IdemDecision d) {
  switch (d) {
    case IdemDecision::kProceed:
      return "proceed";
    case IdemDecision::kDone:
      return "done";
    case IdemDecision::kBusy:
      return "busy";
    case IdemDecision::kRollBack:
      return "roll_back";
    case IdemDecision::kWait:
      return "wait";
    case IdemDecision::kBlocked:
      return "blocked";
  }
  return "invalid";
}

IdemOwnerVerdict JudgeIdemOwner(const IdemOwner& owner, const IdemOwner& me,
                                ProcessTable* processes) {
  if (owner == me) return {true, "this daemon"};
  if (owner.host != me.host) return {true, "another host: never judged dead here"};
  std::string pid = "pid " + std::to_string(owner.pid);
  if (!IsKnownBootId(owner.boot_id) || !IsKnownBootId(me.boot_id)) {
    if (owner.incarnation < me.incarnation) {
      return {false, "began under incarnation " + std::to_string(owner.incarnation) +
                         " of this store (boot id unknown)"};
    }
    return {true, pid + " of this incarnation (boot id unknown)"};
  }
  if (owner.boot_id != me.boot_id) return {false, "other boot " + owner.boot_id};
  Result<uint64_t> start = processes->StartTime(owner.pid);
  if (!start.ok()) {
    if (start.status().IsNotFound()) return {false, pid + " gone"};
    return {true, pid + " unknown (" + start.status().message() + ")"};
  }
  if (*start != owner.pid_start_time) return {false, pid + " reused"};
  return {true, pid + " alive"};
}

IdemStore::IdemStore(StateStore* store, Clock* clock, ProcessTable* processes, IdemOwner me,
                     IdemOptions options)
    : store_(store), clock_(clock), processes_(processes), me_(std::move(me)), options_(options) {}

Result<IdemRecord> IdemStore::Get(std::string_view key) const {
  WTD_RETURN_IF_ERROR(CheckKey("get", key));
  Result<std::string> value = store_->Get(Family::kIdem, key);
  if (!value.ok()) {
    if (value.status().IsNotFound()) {
      return Status::NotFound("idem " + std::string(key) + ": no idempotency record");
    }
    return value.status();
  }
  Result<IdemRecord> r = DecodeIdem(*value);
  if (!r.ok()) return r.status().WithContext("idem/" + std::string(key));
  return r;
}

Result<std::vector<IdemEntry>> IdemStore::List() const {
  std::vector<IdemEntry> out;
  Status decode_error;
  WTD_RETURN_IF_ERROR(
      store_->Scan(Family::kIdem, "", [&](std::string_view key, std::string_view value) {
        Result<IdemRecord> r = DecodeIdem(value);
        if (!r.ok()) {
          decode_error = r.status().WithContext("idem/" + std::string(key));
          return false;
        }
        out.push_back(IdemEntry{std::string(key), std::move(*r)});
        return true;
      }));
  WTD_RETURN_IF_ERROR(decode_error);
  return out;
}

Status IdemStore::Put(std::string_view call, std::string_view key, const IdemRecord& r) {
  WriteBatch b;
  b.Put(Family::kIdem, key, EncodeIdem(r));
  Status s = store_->Commit(b);
  if (!s.ok()) return s.WithContext(Where(call, r.op, key));
  return Status::OK();
}

Result<IdemBegin> IdemStore::Begin(std::string_view op, std::string_view params,
                                   std::string_view rollback_payload) {
  Status bad_op = CheckKeyPart("operation", op);
  if (!bad_op.ok()) return bad_op.WithContext("begin");
  std::string key = IdemKey(op, params);
  MutexLock lock(&mu_);
  IdemRecord r;
  Result<IdemRecord> stored = Get(key);
  if (stored.ok()) {
    if (stored->op != op || stored->params != params) {
      return Status::Corruption(Where("begin", op, key) + ": the record holds operation '" +
                                stored->op + "' with other parameters");
    }
    WTD_ASSIGN_OR_RETURN(IdemBegin decided, Decide(key, std::move(*stored)));
    if (decided.decision != IdemDecision::kProceed) return decided;
    r = std::move(decided.record);
  } else if (stored.status().IsNotFound()) {
    r.op = std::string(op);
    r.params = std::string(params);
    r.first_at_ms = clock_->NowMs();
  } else {
    return stored.status().WithContext("begin " + std::string(op));
  }
  r.status = IdemStatus::kInProgress;
  r.attempts += 1;
  r.next_retry_at_ms = 0;
  r.result.clear();
  r.rollback_payload = std::string(rollback_payload);
  r.last_at_ms = clock_->NowMs();
  r.owner = me_;
  WTD_RETURN_IF_ERROR(Put("begin", key, r));
  return IdemBegin{IdemDecision::kProceed, std::move(key), std::move(r), "", 0};
}

// The decision for an existing record; kProceed returns the record to be
// rewritten by Begin.
Result<IdemBegin> IdemStore::Decide(std::string key, IdemRecord r) {
  IdemBegin out{IdemDecision::kProceed, std::move(key), IdemRecord(), "", 0};
  switch (r.status) {
    case IdemStatus::kCompleted:
      out.decision = IdemDecision::kDone;
      break;
    case IdemStatus::kBlocked:
      out.decision = IdemDecision::kBlocked;
      out.detail = r.error;
      break;
    case IdemStatus::kFailed:
      if (clock_->NowMs() < r.next_retry_at_ms) {
        out.decision = IdemDecision::kWait;
        out.retry_at_ms = r.next_retry_at_ms;
        out.detail = "failed (" + r.error + "), retry at " + FormatRfc3339(r.next_retry_at_ms);
      }
      break;
    case IdemStatus::kRolledBack:
      break;
    case IdemStatus::kInProgress: {
      IdemOwnerVerdict v = JudgeIdemOwner(r.owner, me_, processes_);
      out.decision = v.alive ? IdemDecision::kBusy : IdemDecision::kRollBack;
      out.detail = v.alive ? "in progress by " + r.owner.host + " pid " +
                                 std::to_string(r.owner.pid) + " (" + v.detail + ")"
                           : "owner " + DescribeOwner(r.owner) + " is dead: " + v.detail;
      break;
    }
  }
  out.record = std::move(r);
  return out;
}

Result<IdemRecord> IdemStore::ReadExpecting(std::string_view call, std::string_view key,
                                            IdemStatus expected) const {
  WTD_RETURN_IF_ERROR(CheckKey(call, key));
  Result<IdemRecord> r = Get(key);
  if (!r.ok()) return r.status().WithContext(std::string(call));
  if (r->status != expected) {
    return Status::FailedPrecondition(Where(call, r->op, key) + ": record is " +
                                      StatusName(r->status) + ", expected " + StatusName(expected));
  }
  return r;
}

Status IdemStore::CheckMine(std::string_view call, std::string_view key,
                            const IdemRecord& r) const {
  if (r.owner == me_) return Status::OK();
  return Status::FailedPrecondition(Where(call, r.op, key) + ": in_progress by " +
                                    DescribeOwner(r.owner) + ", not by this daemon " +
                                    DescribeOwner(me_));
}

Result<IdemRecord> IdemStore::Complete(std::string_view key, std::string_view result) {
  MutexLock lock(&mu_);
  WTD_ASSIGN_OR_RETURN(IdemRecord r, ReadExpecting("complete", key, IdemStatus::kInProgress));
  WTD_RETURN_IF_ERROR(CheckMine("complete", key, r));
  r.status = IdemStatus::kCompleted;
  r.result = std::string(result);
  r.error.clear();
  r.last_at_ms = clock_->NowMs();
  WTD_RETURN_IF_ERROR(Put("complete", key, r));
  return r;
}

Result<IdemRecord> IdemStore::Fail(std::string_view key, std::string_view error) {
  MutexLock lock(&mu_);
  WTD_ASSIGN_OR_RETURN(IdemRecord r, ReadExpecting("fail", key, IdemStatus::kInProgress));
  WTD_RETURN_IF_ERROR(CheckMine("fail", key, r));
  int64_t now = clock_->NowMs();
  r.error = std::string(error);
  r.last_at_ms = now;
  if (r.attempts >= options_.max_attempts) {
    r.status = IdemStatus::kBlocked;
    r.next_retry_at_ms = 0;
  } else {
    r.status = IdemStatus::kFailed;
    r.next_retry_at_ms = now + IdemBackoffMs(options_, r.attempts);
  }
  WTD_RETURN_IF_ERROR(Put("fail", key, r));
  return r;
}

Result<IdemRecord> IdemStore::RolledBack(std::string_view key) {
  MutexLock lock(&mu_);
  WTD_ASSIGN_OR_RETURN(IdemRecord r, ReadExpecting("rolled_back", key, IdemStatus::kInProgress));
  IdemOwnerVerdict v = JudgeIdemOwner(r.owner, me_, processes_);
  if (v.alive) {
    return Status::FailedPrecondition(Where("rolled_back", r.op, key) + ": in_progress by " +
                                      DescribeOwner(r.owner) + ", which is alive (" + v.detail +
                                      "): only a dead owner's attempt is rolled back");
  }
  r.error = "rolled back: owner " + DescribeOwner(r.owner) + " died (" + v.detail + ")";
  r.last_at_ms = clock_->NowMs();
  r.status = IdemStatus::kRolledBack;
  if (r.attempts >= options_.max_attempts) {  // a crash-looping operation stops here too
    r.status = IdemStatus::kBlocked;
    r.error += "; " + std::to_string(r.attempts) + " attempts made, none left";
  }
  WTD_RETURN_IF_ERROR(Put("rolled_back", key, r));
  return r;
}

Result<IdemRecord> IdemStore::Unblock(std::string_view key) {
  MutexLock lock(&mu_);
  WTD_ASSIGN_OR_RETURN(IdemRecord r, ReadExpecting("unblock", key, IdemStatus::kBlocked));
  int64_t now = clock_->NowMs();
  r.status = IdemStatus::kFailed;
  r.attempts = 0;
  r.next_retry_at_ms = now;
  r.last_at_ms = now;
  WTD_RETURN_IF_ERROR(Put("unblock", key, r));
  return r;
}

Result<size_t> IdemStore::Trim(int64_t retention_ms) {
  if (retention_ms < 0) {
    return Status::InvalidArgument("trim idem: negative retention " + std::to_string(retention_ms) +
                                   " ms");
  }
  MutexLock lock(&mu_);
  int64_t cutoff = clock_->NowMs() - retention_ms;
  WTD_ASSIGN_OR_RETURN(std::vector<IdemEntry> all, List());
  WriteBatch b;
  for (const IdemEntry& e : all) {
    IdemStatus s = e.record.status;
    if (s == IdemStatus::kInProgress || s == IdemStatus::kBlocked) continue;
    if (e.record.last_at_ms < cutoff) b.Delete(Family::kIdem, e.key);
  }
  if (b.empty()) return size_t{0};
  Status s = store_->Commit(b);
  if (!s.ok()) return s.WithContext("trim idem");
  return b.size();
}

}  // namespace wtd
