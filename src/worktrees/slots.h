// WorktreeSlots: the daemon-owned worktrees a run with `isolation = commit`
// runs in (docs/design/worktrees.md). Each slot is a detached worktree of one
// repository under the worktree root (<state-dir>/worktrees/<name>), with a
// record in the `slots` family; slots are reused across runs: taking one
// moves it to the run's commit with a checkout of only what changed.
//
// Creation is an idempotent operation (IdemStore, op "worktree_add"): the
// slot's record (`creating`) and then the idempotency record with its
// rollback payload {repo, admin, path, branch, base} are committed before
// anything is made on disk; the worktree is added; the record completed;
// the slot made usable. A crash anywhere is undone by Recover (or by the
// next Begin of the same creation): rollback removes what the payload names
// and only under the root, deletes the branch only while it still points at
// the base, removes the admin entry with its `locked` file.
//
// Everything under the root belongs to wtd: Recover removes there whatever
// no slot record owns, and the admin entries of the repositories whose
// `gitdir` points into the root that no slot owns. It never touches an admin
// entry pointing elsewhere, nor anything outside the root.
//
// Thread-safety: every method may be called from any thread; one mutex
// serializes them (List reads the store without it).
#ifndef WTD_WORKTREES_SLOTS_H_
#define WTD_WORKTREES_SLOTS_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "idem/idem_store.h"
#include "store/records.h"
#include "store/state_store.h"
#include "wtd/status.h"

namespace wtd {

struct SlotOptions {
  std::string root;         // absolute; created on first use
  int64_t max_slots = 1;    // --worktree-slots: per repository, busy + free + creating
  int64_t keep_failed = 3;  // --keep-failed: kept slots per repository
};

// One step of Recover (or of Remove).
struct SlotAction {
  // rollback_worktree, prune_worktree, delete_branch, rollback_idempotency,
  // rebuild_slot, release_slot, complete_slot
  std::string kind;
  std::string name;  // the slot or admin entry ("" for a directory)
  std::string detail;
};

// The idempotency operation of a slot's creation.
inline constexpr std::string_view kWorktreeAddOp = "worktree_add";

class WorktreeSlots {
 public:
  // All pointers must outlive the object.
  WorktreeSlots(StateStore* store, IdemStore* idem, Clock* clock, SlotOptions options);

  // Whether a run of `repo` could take a slot now: a free one, or room for
  // one more.
  bool CanTake(const std::string& repo) EXCLUDES(mu_);

  // Gives run `run_id` of `repo` a slot at `sha`: a free one (the one at
  // `sha` if any) recorded busy and then moved there, or a new one created
  // at `sha`. Busy when every slot is taken; the error of the
  // checkout or creation otherwise (the slot is then free again, or rolled
  // back).
  Result<Slot> Take(const std::string& repo, uint64_t run_id, const std::string& sha) EXCLUDES(mu_);

  // The run's attempt is over: its slot becomes free, or with `keep` kept
  // (and the oldest kept slots of its repository beyond keep_failed are
  // removed). OK when the run holds no slot.
  Status Give(uint64_t run_id, bool keep) EXCLUDES(mu_);

  // An operator's slot `name` of `repo` at `sha` (`wtctl worktree create`):
  // created as above, never given to a run. A second create of the same
  // name, repository and sha returns the slot; another slot of that name is
  // FailedPrecondition. Names: [A-Za-z0-9._-], 1..64, not starting with '.'.
  Result<Slot> CreateManual(const std::string& name, const std::string& repo,
                            const std::string& sha) EXCLUDES(mu_);

  // Removes the slot `name` (not while busy: FailedPrecondition): recorded
  // removing, then its directory and admin entry go, then its record and
  // its creation's idempotency record. Returns the steps done.
  Result<std::vector<SlotAction>> Remove(const std::string& name) EXCLUDES(mu_);

  // Every slot, by name.
  Result<std::vector<Slot>> List() const;
  Result<Slot> Get(const std::string& name) const;

  // The recovery of slots, after the runs' recovery: creations cut short are
  // rolled back (or completed), removals finished, busy slots whose run is
  // not in `running` freed, completed slots checked against the disk and
  // rebuilt when damaged, and what no slot owns under the root and among the
  // admin entries of `repos` (plus the slots' repositories) removed.
  // `dry_run` plans without touching anything. Errors of single steps are
  // collected in `errors`; the pass goes on.
  Result<std::vector<SlotAction>> Recover(const std::vector<std::string>& repos,
                                          const std::set<uint64_t>& running, bool dry_run,
                                          std::vector<std::string>* errors) EXCLUDES(mu_);

  // A new --worktree-slots (a reload of --concurrency when it follows it):
  // slots beyond it are not taken away, none is added until fewer work.
  void SetMaxSlots(int64_t n) EXCLUDES(mu_);
  const std::string& root() const { return root_; }
  IdemStore* idem() const { return idem_; }

 private:
  struct Payload {
    std::string repo, admin, path, branch, base;
  };
  static std::string EncodePayload(const Payload& p);
  static Result<Payload> DecodePayload(const std::string& s);

  // Creates slot `name` at `sha`, ending in `final_state` (busy for run_id,
  // free, manual).
  Result<Slot> Create(const std::string& name, const std::string& repo, const std::string& sha,
                      SlotState final_state, uint64_t run_id) REQUIRES(mu_);
  // Removes what `p` names (only under the root); appends the steps done.
  Status RollBack(const Payload& p, std::vector<SlotAction>* done) REQUIRES(mu_);
  // Removes the pieces of `slot` and its records.
  Status RemoveLocked(const Slot& slot, std::vector<SlotAction>* done) REQUIRES(mu_);
  Status Put(const Slot& slot) REQUIRES(mu_);
  // A name no slot has and no kept branch wtd/slots/<name> blocks:
  // wtd-<8 hex of sha256(store id, repo)>-<n>.
  Result<std::string> NewName(const std::string& repo) REQUIRES(mu_);
  bool UnderRoot(const std::string& path) const;
  Result<std::string> Root() const;

  StateStore* const store_;
  IdemStore* const idem_;
  Clock* const clock_;
  const std::string root_;
  const int64_t keep_failed_;
  Mutex mu_;
  int64_t max_slots_ GUARDED_BY(mu_);  // changes on a reload
};

// Whether `name` may name a slot (above).
Status CheckSlotName(const std::string& name);

// This process as the owner of the idempotency records it begins: host,
// boot id, pid and start time from `processes`, the store's incarnation.
IdemOwner ThisProcessIdemOwner(const StateStore& store, ProcessTable* processes);

// An IdemStore and WorktreeSlots over one store, for a process that has
// neither yet (wtctl's direct mode, tests).
struct SlotsOnStore {
  SlotsOnStore(StateStore* store, Clock* clock, ProcessTable* processes, SlotOptions options);
  IdemStore idem;
  WorktreeSlots slots;
};

}  // namespace wtd

#endif  // WTD_WORKTREES_SLOTS_H_
