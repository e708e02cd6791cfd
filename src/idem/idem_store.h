// IdemStore: idempotency records over the StateStore's `idem` family
// (docs/design/idempotency.md). An operation with an effect outside the
// store (a worktree made on disk, a branch created) is begun, completed,
// failed or rolled back through its record, so that running it twice, or
// again after a crash, either returns the first run's result or undoes the
// half-done first run before trying again.
//
// The key of an operation is IdemKey(op, params) = Sha256Hex(op + '\0' +
// params): 64 lowercase hex digits. `params` must be canonical (the same
// operation always spelled with the same bytes, e.g. sorted JSON without
// spaces): the key is a hash of the bytes, not of their meaning. `op` must be
// non-empty and hold no NUL byte.
//
// Begin(op, params, rollback_payload) reads the record and decides, in one
// serialized step:
//   no record, rolled_back, or failed with now >= next_retry_at
//       -> writes in_progress owned by this daemon (attempts + 1, last_at =
//          now, the new rollback payload; first_at on a new record): kProceed
//   completed                          -> kDone with the cached result; writes nothing
//   in_progress by a live owner        -> kBusy "in progress by HOST pid N"; writes nothing
//   in_progress by a dead owner        -> kRollBack with the record; writes nothing.
//          The caller undoes what record.rollback_payload names, calls
//          RolledBack(key), then Begin again.
//   failed with now < next_retry_at    -> kWait with the retry time; writes nothing
//   blocked                            -> kBlocked with the record's error; writes nothing
//
// Owner liveness (JudgeIdemOwner below): this daemon's own record is live
// (another caller in this daemon is doing it); another host's is never
// judged dead here; on this host with both boot ids known, an owner of
// another boot is dead, and one of this boot is dead when its pid is gone or
// reused (a different start time), live otherwise (a process table error
// other than NotFound counts as live: never judged dead on a guess). When
// either boot id is unknown, pids cannot be trusted: the owner is dead only
// when it began under an earlier incarnation of this store (a store is
// opened read-write by one process at a time and for that process's whole
// life), live otherwise.
//
// The transitions, each refused with FailedPrecondition (nothing written)
// unless the record is in the status it expects:
//   Complete(key, result)  in_progress owned by this daemon -> completed
//   Fail(key, error)       in_progress owned by this daemon -> failed (retry at now + backoff)
//                          or, once attempts >= max_attempts, blocked
//   RolledBack(key)        in_progress by a dead owner (judged again) -> rolled_back
//                          or, once attempts >= max_attempts, blocked
//   Unblock(key)           blocked -> failed, retry now, attempts reset to 0
// "Owned by this daemon" compares the whole owner (host, boot id, pid, start
// time, incarnation): a caller left over from before a rollback finds the
// record rolled_back or owned by the next attempt and is refused, with a
// message naming the key and both statuses (or both owners).
// The backoff after the n-th attempt failed is backoff_base_ms * 2^(n-1),
// at most backoff_cap_ms.
//
// Trim(retention_ms) deletes every record whose last_at_ms is older than
// now - retention_ms, except in_progress (its owner may be working, or its
// effects wait for a rollback) and blocked ones (an operator must see them).
//
// Every write is one synced batch (StateStore::Commit): when a call returns
// OK its write survives kill -9 and power loss; when it fails nothing of it
// is written. Errors name the call, the record's operation when known, and
// the key. A record that does not decode is Corruption naming idem/KEY.
//
// Thread-safety: all methods may be called concurrently. Every
// read-decide-write (Begin and each transition, Trim) holds one mutex across
// its read, its check and its commit; Get and List take no lock. Two
// IdemStores over one StateStore (tests) serialize only through the store.
#ifndef WTD_IDEM_IDEM_STORE_H_
#define WTD_IDEM_IDEM_STORE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "base/process_table.h"
#include "store/records.h"
#include "store/state_store.h"
#include "wtd/status.h"

namespace wtd {

// The key of an operation: Sha256Hex(op + '\0' + params).
std::string IdemKey(std::string_view op, std::string_view params);

// All non-negative.
struct IdemOptions {
  uint32_t max_attempts = 5;  // a failure, or a rollback, of attempt max_attempts blocks the record
  int64_t backoff_base_ms = 1'000;  // after the first failed attempt
  int64_t backoff_cap_ms = 300'000;
};

// The wait after the n-th attempt failed (n >= 1): base * 2^(n-1), capped.
int64_t IdemBackoffMs(const IdemOptions& options, uint32_t attempts);

// What Begin decided.
enum class IdemDecision {
  kProceed,   // the record is in_progress, owned by this daemon: do the operation
  kDone,      // completed earlier: record.result is the result
  kBusy,      // in progress by a live owner: do nothing now
  kRollBack,  // in progress by a dead owner: undo record.rollback_payload, then RolledBack
  kWait,      // failed: retry at retry_at_ms
  kBlocked,   // attempts exhausted: record.error says why; an operator must Unblock
};
// "proceed", "done", "busy", "roll_back", "wait", "blocked".
std::string_view IdemDecisionName(IdemDecision d);

struct IdemBegin {
  IdemDecision decision = IdemDecision::kProceed;
  std::string key;
  IdemRecord record;  // as stored after Begin (kProceed: the record just written)
  // kBusy: "in progress by HOST pid N ..."; kRollBack: why the owner is
  // dead ("pid 12 gone"); kWait: "failed, retry at ..."; kBlocked: the error.
  std::string detail;
  int64_t retry_at_ms = 0;  // kWait
};

// Whether the owner of an in_progress record is alive, as seen by `me`.
struct IdemOwnerVerdict {
  bool alive = true;
  std::string detail;  // "this daemon", "another host", "pid 12 gone", "pid 12 reused", ...
};
// The rules of the header comment. `processes` is this host's table.
IdemOwnerVerdict JudgeIdemOwner(const IdemOwner& owner, const IdemOwner& me,
                                ProcessTable* processes);

struct IdemEntry {
  std::string key;
  IdemRecord record;
};

class IdemStore {
 public:
  // `store`, `clock` and `processes` must outlive the IdemStore. `me` is
  // this daemon: its host, boot id, pid, pid start time and the store's
  // incarnation.
  IdemStore(StateStore* store, Clock* clock, ProcessTable* processes, IdemOwner me,
            IdemOptions options = IdemOptions());

  // Decides and, for kProceed only, records in one synced batch (above).
  // InvalidArgument for an empty op or one holding NUL.
  Result<IdemBegin> Begin(std::string_view op, std::string_view params,
                          std::string_view rollback_payload) EXCLUDES(mu_);

  // The transitions (above). Each returns the record as written.
  Result<IdemRecord> Complete(std::string_view key, std::string_view result) EXCLUDES(mu_);
  Result<IdemRecord> Fail(std::string_view key, std::string_view error) EXCLUDES(mu_);
  Result<IdemRecord> RolledBack(std::string_view key) EXCLUDES(mu_);
  Result<IdemRecord> Unblock(std::string_view key) EXCLUDES(mu_);

  // NotFound ("idem KEY: no idempotency record") when absent; InvalidArgument
  // for a key that is not 64 lowercase hex digits.
  Result<IdemRecord> Get(std::string_view key) const;
  // Every record, in key order.
  Result<std::vector<IdemEntry>> List() const;

  // Deletes the records past retention (above) in one synced batch; returns
  // how many. Writes nothing when none is. InvalidArgument for a negative
  // retention.
  Result<size_t> Trim(int64_t retention_ms) EXCLUDES(mu_);

  // JudgeIdemOwner of `owner` as seen by this store's owner.
  IdemOwnerVerdict Judge(const IdemOwner& owner) const {
    return JudgeIdemOwner(owner, me_, processes_);
  }
  const IdemOwner& me() const { return me_; }
  const IdemOptions& options() const { return options_; }

 private:
  // Reads the record at `key` for call `call`, checks it is in `expected`.
  Result<IdemRecord> ReadExpecting(std::string_view call, std::string_view key,
                                   IdemStatus expected) const REQUIRES(mu_);
  // Refuses unless `r` is owned by this daemon.
  Status CheckMine(std::string_view call, std::string_view key, const IdemRecord& r) const;
  Status Put(std::string_view call, std::string_view key, const IdemRecord& r) REQUIRES(mu_);
  Result<IdemBegin> Decide(std::string key, IdemRecord r) REQUIRES(mu_);

  StateStore* const store_;
  Clock* const clock_;
  ProcessTable* const processes_;
  const IdemOwner me_;
  const IdemOptions options_;
  Mutex mu_;
};

}  // namespace wtd

#endif  // WTD_IDEM_IDEM_STORE_H_
