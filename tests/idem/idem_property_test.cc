// Property test of IdemStore against an in-memory model of its contract
// (idem_store.h), over a real RocksDB store in a temp dir.
//
// Three callers share the store: this host's daemon (a new pid and store
// incarnation after every restart), a second live process of this host, and
// a daemon of another host. Random sequences of Begin, Complete, Fail,
// RolledBack, Unblock, Trim, time passing, and "the daemon dies (its pid
// gone, or reused, or the machine rebooted) and a new incarnation reopens
// the store" are applied to the store and to the model. After every step:
//   - each call's answer (decision, record, error code) is the model's;
//   - the store holds exactly the model's records;
//   - no key was given to an owner (kProceed) while another owner's attempt
//     on it was neither finished nor rolled back;
//   - no key was completed twice while its record existed.
//
// WTD_PROPERTY_CASES=N runs N cases (default 40); RC_PARAMS works as usual, but a
// failure is not shrunk unless it says noshrink=0.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "fakes/temp_dir.h"
#include "idem/idem_store.h"

namespace wtd {
namespace {

constexpr int kDefaultCases = 40;
constexpr int kKeys = 3;
constexpr int kActors = 3;  // 0 this host's daemon, 1 another process of this host, 2 another host
constexpr char kHost[] = "host-a";
const IdemOptions kOptions{2, 1'000, 4'000};

// How often each answer was seen, over all cases: a run that never reaches
// a rollback or a block proves little.
struct Coverage {
  std::map<std::string, int> seen;
};
Coverage& TestCoverage() {
  static Coverage c;
  return c;
}
void Saw(const std::string& what) { ++TestCoverage().seen[what]; }

bool SameRecords(const std::map<std::string, IdemRecord>& model,
                 const std::vector<IdemEntry>& stored) {
  if (model.size() != stored.size()) return false;
  auto it = model.begin();
  for (const IdemEntry& e : stored) {
    if (it->first != e.key || !(it->second == e.record)) return false;
    ++it;
  }
  return true;
}

class World {
 public:
  World() {
    procs_.Start(peer_.pid, peer_.pid_start_time);
    OpenStore();
  }

  void Apply(int kind, int actor, int key_index, int arg) {
    // Mostly an operator unblocks a blocked key (any key otherwise).
    if (kind == 7 && arg < 6) key_index = KeyIn(IdemStatus::kBlocked, key_index);
    std::string op = "op" + std::to_string(key_index);
    std::string params = R"({"slot":)" + std::to_string(key_index) + "}";
    std::string key = IdemKey(op, params);
    ++step_;
    // Mostly the record's owner ends an attempt (a stale caller otherwise).
    if ((kind >= 3 && kind <= 5) && arg < 6) actor = OwnerOf(key, actor);
    switch (kind) {
      case 0:
      case 1:
      case 2:
        Begin(actor, op, params, "payload " + std::to_string(step_));
        break;
      case 3:
        Complete(actor, key);
        break;
      case 4:
      case 5:
        Fail(actor, key);
        break;
      case 6:
        RolledBack(actor, key);
        break;
      case 7:
        Unblock(actor, key);
        break;
      case 8:
        Trim(int64_t{arg % 3} * 2'000);
        break;
      case 9:
      case 10:
        clock_.AdvanceMs(int64_t{arg} * 700);
        break;
      default:
        Restart(arg % 4);
        break;
    }
    Check();
  }

 private:
  // The index of a key whose record is in `status`, else `fallback`.
  int KeyIn(IdemStatus status, int fallback) const {
    for (int i = 0; i < kKeys; ++i) {
      auto it = model_.find(KeyOf(i));
      if (it != model_.end() && it->second.status == status) return i;
    }
    return fallback;
  }
  static std::string KeyOf(int i) {
    return IdemKey("op" + std::to_string(i), R"({"slot":)" + std::to_string(i) + "}");
  }

  // The caller that owns the record at `key`, if one of them does; else `actor`.
  int OwnerOf(const std::string& key, int actor) const {
    auto it = model_.find(key);
    if (it == model_.end()) return actor;
    for (int a = 0; a < kActors; ++a) {
      if (Me(a) == it->second.owner) return a;
    }
    return actor;
  }

  IdemOwner Me(int actor) const { return actor == 0 ? daemon_ : actor == 1 ? peer_ : remote_; }

  // The model's liveness: identities are never reused, so an owner is alive
  // when it is the judge, of another host, or a process still running here.
  bool Alive(const IdemOwner& owner, const IdemOwner& me) const {
    return owner == me || owner.host != me.host || live_.count(Id(owner)) > 0;
  }
  static std::tuple<std::string, int32_t, uint64_t> Id(const IdemOwner& o) {
    return {o.boot_id, o.pid, o.pid_start_time};
  }

  void Begin(int actor, const std::string& op, const std::string& params,
             const std::string& payload) {
    std::string key = IdemKey(op, params);
    Result<IdemBegin> got = stores_[actor]->Begin(op, params, payload);
    RC_ASSERT(got.ok());
    auto it = model_.find(key);
    IdemDecision want = IdemDecision::kProceed;
    if (it != model_.end()) {
      const IdemRecord& r = it->second;
      switch (r.status) {
        case IdemStatus::kCompleted:
          want = IdemDecision::kDone;
          break;
        case IdemStatus::kBlocked:
          want = IdemDecision::kBlocked;
          break;
        case IdemStatus::kFailed:
          if (clock_.NowMs() < r.next_retry_at_ms) want = IdemDecision::kWait;
          break;
        case IdemStatus::kRolledBack:
          break;
        case IdemStatus::kInProgress:
          want = Alive(r.owner, Me(actor)) ? IdemDecision::kBusy : IdemDecision::kRollBack;
          break;
      }
    }
    Saw(std::string(IdemDecisionName(want)));
    RC_ASSERT(IdemDecisionName(got->decision) == IdemDecisionName(want));
    RC_ASSERT(got->key == key);
    if (want != IdemDecision::kProceed) {
      RC_ASSERT(got->record == it->second);
      if (want == IdemDecision::kWait) RC_ASSERT(got->retry_at_ms == it->second.next_retry_at_ms);
      return;
    }
    // At most one owner at a time: nobody else's attempt is still open.
    RC_ASSERT(open_.count(key) == 0);
    open_[key] = Me(actor);
    IdemRecord r;
    if (it != model_.end()) {
      r = it->second;
    } else {
      r.op = op;
      r.params = params;
      r.first_at_ms = clock_.NowMs();
    }
    r.status = IdemStatus::kInProgress;
    r.attempts += 1;
    r.next_retry_at_ms = 0;
    r.result.clear();
    r.rollback_payload = payload;
    r.last_at_ms = clock_.NowMs();
    r.owner = Me(actor);
    RC_ASSERT(got->record == r);
    model_[key] = r;
  }

  // The model record at `key` when it is in `status` (and, if `mine`,
  // owned by `actor`); nullptr otherwise, with the error code expected.
  IdemRecord* Expect(const std::string& key, IdemStatus status, const Status& got) {
    auto it = model_.find(key);
    if (it == model_.end()) {
      RC_ASSERT(got.IsNotFound());
      return nullptr;
    }
    if (it->second.status != status) {
      RC_ASSERT(got.IsFailedPrecondition());
      return nullptr;
    }
    return &it->second;
  }

  void Complete(int actor, const std::string& key) {
    std::string result = "result " + std::to_string(step_);
    Result<IdemRecord> got = stores_[actor]->Complete(key, result);
    IdemRecord* r = Expect(key, IdemStatus::kInProgress, got.status());
    if (r == nullptr) return;
    if (!(r->owner == Me(actor))) {
      RC_ASSERT(got.status().IsFailedPrecondition());
      return;
    }
    RC_ASSERT(got.ok());
    Saw("complete");
    RC_ASSERT(++completions_[key] == 1);  // never completed twice
    open_.erase(key);
    r->status = IdemStatus::kCompleted;
    r->result = result;
    r->error.clear();
    r->last_at_ms = clock_.NowMs();
    RC_ASSERT(*got == *r);
  }

  void Fail(int actor, const std::string& key) {
    std::string error = "error " + std::to_string(step_);
    Result<IdemRecord> got = stores_[actor]->Fail(key, error);
    IdemRecord* r = Expect(key, IdemStatus::kInProgress, got.status());
    if (r == nullptr) return;
    if (!(r->owner == Me(actor))) {
      RC_ASSERT(got.status().IsFailedPrecondition());
      return;
    }
    RC_ASSERT(got.ok());
    open_.erase(key);
    r->error = error;
    r->last_at_ms = clock_.NowMs();
    if (r->attempts >= kOptions.max_attempts) {
      Saw("block");
      r->status = IdemStatus::kBlocked;
      r->next_retry_at_ms = 0;
    } else {
      Saw("fail");
      r->status = IdemStatus::kFailed;
      // base * 2^(attempts-1): attempts is 1 here (2 blocks).
      r->next_retry_at_ms = clock_.NowMs() + 1'000;
    }
    RC_ASSERT(*got == *r);
  }

  void RolledBack(int actor, const std::string& key) {
    Result<IdemRecord> got = stores_[actor]->RolledBack(key);
    IdemRecord* r = Expect(key, IdemStatus::kInProgress, got.status());
    if (r == nullptr) return;
    if (Alive(r->owner, Me(actor))) {
      RC_ASSERT(got.status().IsFailedPrecondition());
      return;
    }
    RC_ASSERT(got.ok());
    open_.erase(key);
    // The dead owner's attempt counts: the last one allowed blocks the record.
    bool exhausted = r->attempts >= kOptions.max_attempts;
    Saw(exhausted ? "rollback blocks" : "rolled_back");
    r->status = exhausted ? IdemStatus::kBlocked : IdemStatus::kRolledBack;
    r->last_at_ms = clock_.NowMs();
    RC_ASSERT(got->error.rfind("rolled back: owner ", 0) == 0);
    r->error = got->error;  // its wording is the store's
    RC_ASSERT(*got == *r);
  }

  void Unblock(int actor, const std::string& key) {
    Result<IdemRecord> got = stores_[actor]->Unblock(key);
    IdemRecord* r = Expect(key, IdemStatus::kBlocked, got.status());
    if (r == nullptr) return;
    RC_ASSERT(got.ok());
    Saw("unblock");
    r->status = IdemStatus::kFailed;
    r->attempts = 0;
    r->next_retry_at_ms = clock_.NowMs();
    r->last_at_ms = clock_.NowMs();
    RC_ASSERT(*got == *r);
  }

  void Trim(int64_t retention_ms) {
    Result<size_t> got = stores_[0]->Trim(retention_ms);
    RC_ASSERT(got.ok());
    size_t want = 0;
    for (auto it = model_.begin(); it != model_.end();) {
      IdemStatus s = it->second.status;
      bool keep = s == IdemStatus::kInProgress || s == IdemStatus::kBlocked ||
                  it->second.last_at_ms >= clock_.NowMs() - retention_ms;
      if (keep) {
        ++it;
        continue;
      }
      completions_.erase(it->first);
      it = model_.erase(it);
      ++want;
    }
    if (want > 0) Saw("trimmed");
    RC_ASSERT(*got == want);
  }

  // 0: the daemon's pid is gone; 1: its pid is reused by another process;
  // 2: the machine rebooted (every process of this host is gone); 3: the
  // other process of this host exits and another starts. In 0-2 the store is
  // closed and reopened by a new daemon.
  void Restart(int how) {
    Saw("restart " + std::to_string(how));
    if (how == 3) {
      procs_.Exit(peer_.pid);
      live_.erase(Id(peer_));
      peer_ = IdemOwner{kHost, procs_.BootId(), next_pid_++, 7, peer_.incarnation};
      procs_.Start(peer_.pid, peer_.pid_start_time);
      live_.insert(Id(peer_));
      stores_[1] = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, peer_, kOptions);
      return;
    }
    for (auto& s : stores_) s.reset();
    store_.reset();
    live_.erase(Id(daemon_));
    if (how == 0) procs_.Exit(daemon_.pid);
    if (how == 1) procs_.Start(daemon_.pid, daemon_.pid_start_time + 1);
    if (how == 2) {
      live_.clear();
      procs_.SetBootId("boot-" + std::to_string(++boots_));
      peer_ = IdemOwner{kHost, procs_.BootId(), next_pid_++, 7, peer_.incarnation};
      procs_.Start(peer_.pid, peer_.pid_start_time);
    }
    OpenStore();
  }

  void OpenStore() {
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{dir_.Sub("db")});
    RC_ASSERT(s.ok());
    store_ = std::move(*s);
    daemon_ = IdemOwner{kHost, procs_.BootId(), next_pid_++, 5, store_->incarnation()};
    procs_.Start(daemon_.pid, daemon_.pid_start_time);
    if (peer_.pid == 0) {
      peer_ = IdemOwner{kHost, procs_.BootId(), next_pid_++, 7, store_->incarnation()};
      procs_.Start(peer_.pid, peer_.pid_start_time);
    }
    live_.insert(Id(daemon_));
    live_.insert(Id(peer_));
    stores_[0] = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, daemon_, kOptions);
    stores_[1] = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, peer_, kOptions);
    stores_[2] = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, remote_, kOptions);
  }

  void Check() {
    Result<std::vector<IdemEntry>> stored = stores_[0]->List();
    RC_ASSERT(stored.ok());
    RC_ASSERT(SameRecords(model_, *stored));
    // Every open attempt is the owner of an in_progress record, and vice versa.
    size_t in_progress = 0;
    for (const auto& [key, r] : model_) {
      if (r.status != IdemStatus::kInProgress) continue;
      ++in_progress;
      RC_ASSERT(open_.count(key) == 1);
      RC_ASSERT(open_.at(key) == r.owner);
    }
    RC_ASSERT(open_.size() == in_progress);
  }

  TempDir dir_;
  FakeClock clock_;
  FakeProcessTable procs_{"boot-0"};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<IdemStore> stores_[kActors];
  int32_t next_pid_ = 100;
  int boots_ = 0;
  IdemOwner daemon_;
  IdemOwner peer_;
  const IdemOwner remote_{"host-b", "boot-remote", 100, 5, 1};
  std::set<std::tuple<std::string, int32_t, uint64_t>> live_;
  std::map<std::string, IdemRecord> model_;
  std::map<std::string, IdemOwner> open_;  // key -> the owner whose attempt is open
  std::map<std::string, int> completions_;
  int step_ = 0;
};

void IdemProperty() {
  // rapidcheck scales inRange by the size: the elements get the full size so
  // that every kind of step can be drawn, the list a length of up to 60.
  auto step = rc::gen::resize(rc::kNominalSize,
                              rc::gen::tuple(rc::gen::inRange(0, 12), rc::gen::inRange(0, kActors),
                                             rc::gen::inRange(0, kKeys), rc::gen::inRange(0, 8)));
  auto ops =
      *rc::gen::resize(60, rc::gen::container<std::vector<std::tuple<int, int, int, int>>>(step));
  World world;
  for (const auto& [kind, actor, key, arg] : ops) world.Apply(kind, actor, key, arg);
}

int CaseCount() {
  const char* cases = std::getenv("WTD_PROPERTY_CASES");
  if (cases != nullptr && std::atoi(cases) > 0) return std::atoi(cases);
  return kDefaultCases;
}

constexpr const char* kMustHappen[] = {
    "proceed",         "done",      "busy",      "roll_back",   "wait",     "blocked",
    "complete",        "fail",      "block",     "rolled_back", "unblock",  "trimmed",
    "rollback blocks", "restart 0", "restart 1", "restart 2",   "restart 3"};

// What in kMustHappen has not happened yet, "" when everything has.
std::string Missing() {
  std::string missing;
  for (const char* what : kMustHappen) {
    if (TestCoverage().seen[what] == 0) missing += std::string(missing.empty() ? "" : ", ") + what;
  }
  return missing;
}

// Runs the property on `cases` cases; while some answer or transition has
// never happened, on further batches of as many cases with the next seeds
// (at most 10 batches): a run whose steps never reach a rollback or a block
// would prove little, and a rare one must not fail by chance.
TEST(IdemPropertyTest, TheStoreFollowsTheModelAndNoKeyHasTwoOwnersOrTwoCompletions) {
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  const char* rc_params = std::getenv("RC_PARAMS");
  if (rc_params == nullptr || std::string(rc_params).find("max_success") == std::string::npos) {
    params.maxSuccess = CaseCount();
  }
  // Every step of a shrink candidate replays on a fresh RocksDB with synced
  // writes: shrinking a failure takes many minutes, longer than the test's
  // timeout. Off unless RC_PARAMS asks (noshrink=0).
  if (rc_params == nullptr || std::string(rc_params).find("noshrink") == std::string::npos) {
    params.disableShrinking = true;
  }
  rc::detail::TestMetadata metadata;
  metadata.id = "IdemPropertyTest/TheStoreFollowsTheModel";
  metadata.description = "idempotency records against their model";
  int batches = 0;
  do {
    rc::detail::TestResult result = rc::detail::checkTestable(&IdemProperty, metadata, params);
    std::ostringstream message;
    rc::detail::printResultMessage(result, message);
    ASSERT_TRUE(result.template is<rc::detail::SuccessResult>()) << message.str();
    ++params.seed;
  } while (++batches < 10 && !Missing().empty());

  std::ostringstream seen;
  for (const auto& [what, n] : TestCoverage().seen) seen << what << ": " << n << "; ";
  std::cout << batches << " x " << params.maxSuccess << " cases: " << seen.str() << "\n";
  EXPECT_EQ(Missing(), "") << "never happened; " << seen.str();
}

}  // namespace
}  // namespace wtd
