// WorktreeSlots over a real RocksDB store in a temp dir and real repositories
// made with the git CLI, with a fake clock and process table: taking,
// giving, keeping and removing slots; a crash (a throwing crash action) at
// every point of creation, checkout and removal, then recovery by another
// "process" (the first one gone from the fake process table); the leftovers
// recovery handles; dry runs.
#include "worktrees/slots.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "base/crash_point.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_process_table.h"
#include "git/git_fixture.h"
#include "git/worktree_ops.h"

namespace wtd {
namespace {

namespace fs = std::filesystem;

struct SimulatedCrash : std::runtime_error {
  explicit SimulatedCrash(std::string_view name) : std::runtime_error(std::string(name)) {}
};

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool HasAction(const std::vector<SlotAction>& actions, const std::string& kind,
               const std::string& name, const std::string& detail_part = "") {
  return std::any_of(actions.begin(), actions.end(), [&](const SlotAction& a) {
    return a.kind == kind && a.name == name && a.detail.find(detail_part) != std::string::npos;
  });
}

std::string Describe(const std::vector<SlotAction>& actions) {
  std::string out;
  for (const SlotAction& a : actions) out += a.kind + " [" + a.name + "] " + a.detail + "\n";
  return out;
}

class SlotsTest : public git::GitFixture {
 protected:
  void SetUp() override {
    GitFixture::SetUp();
    repo_ = InitRepo("repo");
    WriteFile(repo_ + "/.gitignore", "*.log\nbuild/\n");
    WriteFile(repo_ + "/dir/x.txt", "x\n");
    a_ = Commit(repo_, "a.txt", "one\n", "A");
    WriteFile(repo_ + "/b.txt", "b\n");
    b_ = Commit(repo_, "a.txt", "two\n", "B");
    fs::remove(repo_ + "/dir/x.txt");
    c_ = Commit(repo_, "a.txt", "three\n", "C");
    root_ = Path("state/worktrees");
    options_.root = root_;
    options_.max_slots = 2;
    options_.keep_failed = 2;
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(StoreOptions{Path("state/db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    StartProcess(100);
  }

  void TearDown() override {
    SetCrashAction(nullptr);
    DisarmCrashPoints();
  }

  // A new "process" with pid `pid` owns the IdemStore and WorktreeSlots.
  void StartProcess(int32_t pid) {
    slots_.reset();
    idem_.reset();
    pid_ = pid;
    procs_.Start(pid, static_cast<uint64_t>(pid) * 10);
    IdemOwner me{"host-a", "boot-A", pid, static_cast<uint64_t>(pid) * 10, store_->incarnation()};
    idem_ = std::make_unique<IdemStore>(store_.get(), &clock_, &procs_, me);
    slots_ = std::make_unique<WorktreeSlots>(store_.get(), idem_.get(), &clock_, options_);
  }

  // The current process died (kill -9); the next one starts.
  void Restart() {
    procs_.Exit(pid_);
    StartProcess(pid_ + 100);
  }

  // Runs `fn` with crash point `point` armed to throw; expects it to fire.
  template <typename Fn>
  void CrashAt(const std::string& point, Fn fn) {
    SetCrashAction([](std::string_view name) { throw SimulatedCrash(name); });
    ASSERT_TRUE(ArmCrashPoint(point).ok()) << point;
    bool fired = false;
    try {
      (void)fn();
    } catch (const SimulatedCrash& c) {
      fired = c.what() == point;
    }
    SetCrashAction(nullptr);
    DisarmCrashPoints();
    ASSERT_TRUE(fired) << "crash point " << point << " was not reached";
  }

  std::vector<SlotAction> Recover(const std::set<uint64_t>& running = {}, bool dry_run = false,
                                  const std::vector<std::string>& repos = {}) {
    std::vector<std::string> errors;
    std::vector<std::string> all = repos;
    all.push_back(repo_);
    Result<std::vector<SlotAction>> r = slots_->Recover(all, running, dry_run, &errors);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::string joined;
    for (const std::string& e : errors) joined += e + "\n";
    EXPECT_TRUE(errors.empty()) << joined;
    return r.ok() ? *r : std::vector<SlotAction>();
  }

  Slot MustTake(uint64_t run_id, const std::string& sha) {
    Result<Slot> s = slots_->Take(repo_, run_id, sha);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : Slot();
  }

  std::vector<Slot> Slots() {
    Result<std::vector<Slot>> all = slots_->List();
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    return all.ok() ? *all : std::vector<Slot>();
  }

  std::string Admin(const std::string& name) { return repo_ + "/.git/worktrees/" + name; }

  // Expects the slot's directory at exactly `sha`, with nothing else in it.
  void ExpectCleanAt(const Slot& slot, const std::string& sha) {
    ASSERT_TRUE(Exists(slot.path)) << slot.path;
    EXPECT_EQ(Head(slot.path), sha);
    EXPECT_EQ(Git(slot.path, {"rev-parse", "--abbrev-ref", "HEAD"}), "HEAD");  // detached
    EXPECT_EQ(Git(slot.path, {"status", "--porcelain", "--ignored"}), "");
  }

  // The worktree paths `git worktree list` shows, the main one excluded.
  std::set<std::string> GitWorktrees() {
    std::set<std::string> out;
    std::string list = Git(repo_, {"worktree", "list", "--porcelain"});
    size_t pos = 0;
    while ((pos = list.find("worktree ", pos)) != std::string::npos) {
      size_t end = list.find('\n', pos);
      std::string path = list.substr(pos + 9, end == std::string::npos ? end : end - pos - 9);
      if (path != repo_) out.insert(path);
      pos = end == std::string::npos ? list.size() : end;
    }
    return out;
  }

  std::string SlotBranches() {
    return Git(repo_, {"for-each-ref", "--format=%(refname)", "refs/heads/wtd/"});
  }

  // What recovery promises: nothing under the root, among the admin
  // entries pointing into it, their `locked` files or wtd's branches that
  // no slot owns; every slot usable; git's list and List() agree.
  void ExpectNothingUnowned() {
    std::set<std::string> names, paths;
    for (const Slot& s : Slots()) {
      EXPECT_NE(s.state, SlotState::kCreating) << s.name;
      EXPECT_NE(s.state, SlotState::kRemoving) << s.name;
      names.insert(s.name);
      paths.insert(s.path);
      Result<std::string> head = VerifyWorktree(s.repo, s.name, s.path);
      EXPECT_TRUE(head.ok()) << s.name << ": " << head.status().ToString();
    }
    std::set<std::string> dirs;
    if (Exists(root_)) {
      for (const auto& e : fs::directory_iterator(root_)) dirs.insert(e.path().filename());
    }
    EXPECT_EQ(dirs, names);
    Result<std::vector<AdminEntry>> admins = ListAdminEntries(repo_);
    ASSERT_TRUE(admins.ok()) << admins.status().ToString();
    for (const AdminEntry& a : *admins) {
      if (a.gitdir.rfind(root_ + "/", 0) != 0) continue;
      EXPECT_TRUE(names.count(a.name)) << "admin entry " << a.dir << " owned by no slot";
      EXPECT_FALSE(a.locked) << a.dir;
    }
    EXPECT_EQ(SlotBranches(), "");
    std::set<std::string> listed;
    for (const std::string& p : GitWorktrees()) {
      if (p.rfind(root_ + "/", 0) == 0) listed.insert(p);
    }
    EXPECT_EQ(listed, paths);
  }

  IdemStatus IdemStatusOf(const std::string& key) {
    Result<IdemRecord> r = idem_->Get(key);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->status : IdemStatus::kBlocked;
  }

  std::string repo_, root_, a_, b_, c_;
  SlotOptions options_;
  FakeClock clock_;
  FakeProcessTable procs_{"boot-A"};
  int32_t pid_ = 0;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<IdemStore> idem_;
  std::unique_ptr<WorktreeSlots> slots_;
};

// ---- Take, Give, keep ----

TEST_F(SlotsTest, TakeCreatesASlotAtTheRunsShaAndRecordsItBusy) {
  Slot s = MustTake(7, b_);
  EXPECT_EQ(s.state, SlotState::kBusy);
  EXPECT_EQ(s.run_id, 7u);
  EXPECT_EQ(s.sha, b_);
  EXPECT_EQ(s.path, root_ + "/" + s.name);
  ExpectCleanAt(s, b_);
  EXPECT_EQ(ReadAll(s.path + "/a.txt"), "two\n");
  Result<Slot> stored = slots_->Get(s.name);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, s);
  EXPECT_EQ(IdemStatusOf(s.idem_key), IdemStatus::kCompleted);
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, GiveFreesAndTheNextTakeReusesTheSlotCleaned) {
  Slot s = MustTake(1, a_);
  ASSERT_TRUE(slots_->Give(1, /*keep=*/false).ok());
  Result<Slot> freed = slots_->Get(s.name);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed->state, SlotState::kFree);
  EXPECT_EQ(freed->run_id, 0u);
  // A job left ignored and untracked files and a local change behind.
  WriteFile(s.path + "/out.log", "log\n");
  WriteFile(s.path + "/build/obj.o", "obj\n");
  WriteFile(s.path + "/scratch.txt", "mine\n");
  WriteFile(s.path + "/a.txt", "edited\n");
  ASSERT_NE(Git(s.path, {"status", "--porcelain", "--ignored"}), "");

  Slot again = MustTake(2, c_);
  EXPECT_EQ(again.name, s.name);
  EXPECT_EQ(again.created_at_ms, s.created_at_ms);  // moved, not recreated
  EXPECT_EQ(again.state, SlotState::kBusy);
  EXPECT_EQ(again.run_id, 2u);
  ExpectCleanAt(again, c_);
  EXPECT_FALSE(Exists(s.path + "/out.log"));
  EXPECT_FALSE(Exists(s.path + "/build"));
  EXPECT_FALSE(Exists(s.path + "/scratch.txt"));
  EXPECT_FALSE(Exists(s.path + "/dir/x.txt"));  // deleted in C
  EXPECT_TRUE(Exists(s.path + "/b.txt"));
  EXPECT_EQ(ReadAll(s.path + "/a.txt"), "three\n");
  EXPECT_EQ(Slots().size(), 1u);
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, TakePrefersTheFreeSlotAlreadyAtTheSha) {
  Slot s1 = MustTake(1, a_);
  Slot s2 = MustTake(2, b_);
  ASSERT_NE(s1.name, s2.name);
  ASSERT_TRUE(slots_->Give(1, false).ok());  // s1 the least recently used
  clock_.AdvanceMs(1000);
  ASSERT_TRUE(slots_->Give(2, false).ok());
  Slot at_b = MustTake(3, b_);
  EXPECT_EQ(at_b.name, s2.name);
  ExpectCleanAt(at_b, b_);
  Slot other = MustTake(4, c_);
  EXPECT_EQ(other.name, s1.name);
  ExpectCleanAt(other, c_);
}

TEST_F(SlotsTest, TakeOfTheLeastRecentlyUsedWhenNoneIsAtTheSha) {
  Slot s1 = MustTake(1, a_);
  Slot s2 = MustTake(2, b_);
  ASSERT_TRUE(slots_->Give(2, false).ok());
  clock_.AdvanceMs(1000);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  EXPECT_EQ(MustTake(3, c_).name, s2.name);
}

TEST_F(SlotsTest, BusyWhenEverySlotIsTakenAndKeptOrManualOnesDoNotCount) {
  EXPECT_TRUE(slots_->CanTake(repo_));
  MustTake(1, a_);
  EXPECT_TRUE(slots_->CanTake(repo_));
  MustTake(2, b_);
  EXPECT_FALSE(slots_->CanTake(repo_));
  Result<Slot> third = slots_->Take(repo_, 3, c_);
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(third.status().IsBusy()) << third.status().ToString();
  EXPECT_EQ(Slots().size(), 2u);  // nothing made

  ASSERT_TRUE(slots_->CreateManual("inspect", repo_, a_).ok());
  EXPECT_FALSE(slots_->CanTake(repo_));
  ASSERT_TRUE(slots_->Give(1, /*keep=*/true).ok());
  EXPECT_TRUE(slots_->CanTake(repo_));  // the kept one no longer counts
  Slot s3 = MustTake(3, c_);
  ExpectCleanAt(s3, c_);
  EXPECT_FALSE(slots_->CanTake(repo_));
  EXPECT_TRUE(slots_->Take(repo_, 4, c_).status().IsBusy());
  // Another repository has its own slots.
  EXPECT_TRUE(slots_->CanTake(Path("other")));
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, GiveKeepsAndOnlyTheNewestKeepFailedKeptSlotsRemain) {
  options_.max_slots = 1;
  StartProcess(pid_);
  std::vector<Slot> taken;
  for (uint64_t run = 1; run <= 4; ++run) {
    taken.push_back(MustTake(run, run % 2 ? a_ : b_));
    clock_.AdvanceMs(1000);
    ASSERT_TRUE(slots_->Give(run, /*keep=*/true).ok());
  }
  // Names are reused once free: the slots are told apart by their runs.
  std::map<uint64_t, Slot> by_run;
  for (const Slot& s : Slots()) by_run[s.run_id] = s;
  ASSERT_EQ(by_run.size(), 2u);
  for (uint64_t run : {3, 4}) {
    ASSERT_TRUE(by_run.count(run)) << run;
    EXPECT_EQ(by_run[run].state, SlotState::kKept);
    EXPECT_EQ(by_run[run].name, taken[run - 1].name);
    ExpectCleanAt(by_run[run], taken[run - 1].sha);
  }
  // The first two were removed: their creations' records too (runs 1 and 4
  // share a name but not a sha, so not a key).
  EXPECT_TRUE(idem_->Get(taken[0].idem_key).status().IsNotFound());
  EXPECT_TRUE(idem_->Get(taken[1].idem_key).status().IsNotFound());
  EXPECT_EQ(IdemStatusOf(taken[2].idem_key), IdemStatus::kCompleted);
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, GiveOfARunHoldingNoSlotIsOk) {
  EXPECT_TRUE(slots_->Give(42, false).ok());
  EXPECT_TRUE(slots_->Give(42, true).ok());
  EXPECT_TRUE(Slots().empty());
}

// ---- CreateManual, Remove ----

TEST_F(SlotsTest, CreateManualTwiceReturnsTheSameSlot) {
  Result<Slot> first = slots_->CreateManual("inspect", repo_, b_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->state, SlotState::kManual);
  EXPECT_EQ(first->path, root_ + "/inspect");
  ExpectCleanAt(*first, b_);
  clock_.AdvanceMs(1000);
  Result<Slot> second = slots_->CreateManual("inspect", repo_, b_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, *first);
  EXPECT_EQ(Slots().size(), 1u);
  // Never given to a run.
  Slot run = MustTake(1, b_);
  EXPECT_NE(run.name, "inspect");
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, CreateManualOfAnotherShaOrRepositoryIsFailedPrecondition) {
  ASSERT_TRUE(slots_->CreateManual("inspect", repo_, a_).ok());
  Result<Slot> other = slots_->CreateManual("inspect", repo_, b_);
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(other.status().IsFailedPrecondition()) << other.status().ToString();
  std::string repo2 = InitRepo("repo2");
  Commit(repo2, "f", "f\n", "first");
  EXPECT_TRUE(slots_->CreateManual("inspect", repo2, a_).status().IsFailedPrecondition());
  // A run's slot by name too.
  Slot run = MustTake(1, a_);
  EXPECT_TRUE(slots_->CreateManual(run.name, repo_, a_).status().IsFailedPrecondition());
  ExpectCleanAt(*slots_->Get("inspect"), a_);
}

TEST_F(SlotsTest, CreateManualRefusesBadNames) {
  for (const std::string& bad : {std::string(""), std::string(".hidden"), std::string("a/b"),
                                 std::string(".."), std::string("sp ace"), std::string(65, 'x')}) {
    Result<Slot> s = slots_->CreateManual(bad, repo_, a_);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << bad << ": " << s.status().ToString();
  }
  EXPECT_TRUE(slots_->CreateManual(std::string(64, 'x'), repo_, a_).ok());
  EXPECT_EQ(Slots().size(), 1u);
  EXPECT_EQ(fs::directory_iterator(root_) == fs::directory_iterator(), false);
}

TEST_F(SlotsTest, CreateManualOfAnUnknownCommitFailsAndLeavesNothing) {
  Result<Slot> s = slots_->CreateManual("inspect", repo_, std::string(40, 'e'));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Slots().empty());
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, RemoveRefusesABusySlotAndRemovesOthersEntirely) {
  Slot busy = MustTake(1, a_);
  Result<std::vector<SlotAction>> refused = slots_->Remove(busy.name);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsFailedPrecondition()) << refused.status().ToString();
  ExpectCleanAt(busy, a_);

  ASSERT_TRUE(slots_->Give(1, /*keep=*/true).ok());
  Slot free_slot = MustTake(2, b_);
  ASSERT_TRUE(slots_->Give(2, false).ok());
  Result<Slot> manual = slots_->CreateManual("inspect", repo_, c_);
  ASSERT_TRUE(manual.ok());
  for (const Slot& s : {busy, free_slot, *manual}) {
    Result<std::vector<SlotAction>> done = slots_->Remove(s.name);
    ASSERT_TRUE(done.ok()) << s.name << ": " << done.status().ToString();
    EXPECT_TRUE(HasAction(*done, "prune_worktree", s.name, "work dir")) << Describe(*done);
    EXPECT_TRUE(HasAction(*done, "prune_worktree", s.name, "admin entry")) << Describe(*done);
    EXPECT_FALSE(Exists(s.path));
    EXPECT_FALSE(Exists(Admin(s.name)));
    EXPECT_TRUE(slots_->Get(s.name).status().IsNotFound());
    EXPECT_TRUE(idem_->Get(s.idem_key).status().IsNotFound());
  }
  EXPECT_TRUE(Slots().empty());
  EXPECT_TRUE(GitWorktrees().empty());
  EXPECT_TRUE(slots_->Remove("inspect").status().IsNotFound());
  // Made again from scratch.
  Result<Slot> again = slots_->CreateManual("inspect", repo_, c_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectCleanAt(*again, c_);
  ExpectNothingUnowned();
}

// ---- crashes during creation ----

class CreationCrashTest : public SlotsTest,
                          public ::testing::WithParamInterface<std::tuple<std::string, bool>> {
 protected:
  const std::string& point() const { return std::get<0>(GetParam()); }
  bool manual() const { return std::get<1>(GetParam()); }
  Result<Slot> Create() {
    return manual() ? slots_->CreateManual("inspect", repo_, b_) : slots_->Take(repo_, 7, b_);
  }
  void ExpectCreated(const Result<Slot>& s) {
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->state, manual() ? SlotState::kManual : SlotState::kBusy);
    EXPECT_EQ(s->run_id, manual() ? 0u : 7u);
    ExpectCleanAt(*s, b_);
    EXPECT_EQ(IdemStatusOf(s->idem_key), IdemStatus::kCompleted);
  }
};

TEST_P(CreationCrashTest, RecoverByTheNextProcessLeavesNothingUnownedThenCreateWorks) {
  // A user's worktree outside the root is never touched.
  std::string user_wt = Path("user-wt");
  Git(repo_, {"worktree", "add", "-q", "--detach", user_wt, a_});
  WriteFile(user_wt + "/notes.txt", "mine\n");

  CrashAt(point(), [&] { return Create(); });
  std::vector<Slot> left = Slots();
  ASSERT_EQ(left.size(), 1u);
  const Slot cut = left[0];
  EXPECT_EQ(cut.state, SlotState::kCreating);
  if (point() == "after_branch_create") {
    EXPECT_NE(SlotBranches(), "");
  }
  if (point() == "after_worktree_add") {
    EXPECT_TRUE(Exists(Admin(cut.name)));
  }

  Restart();
  std::vector<SlotAction> actions = Recover();
  EXPECT_FALSE(actions.empty());
  if (point() == "after_idem_complete") {
    EXPECT_TRUE(HasAction(actions, "complete_slot", cut.name)) << Describe(actions);
    Result<Slot> done = slots_->Get(cut.name);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->state, manual() ? SlotState::kManual : SlotState::kFree);
    ExpectCleanAt(*done, b_);
  } else {
    EXPECT_TRUE(HasAction(actions, "rollback_worktree", cut.name)) << Describe(actions);
    EXPECT_TRUE(slots_->Get(cut.name).status().IsNotFound());
    if (point() != "after_slot_record") {
      EXPECT_TRUE(HasAction(actions, "rollback_idempotency", cut.name)) << Describe(actions);
      EXPECT_EQ(IdemStatusOf(cut.idem_key), IdemStatus::kRolledBack);
    }
  }
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty()) << "a second pass has nothing to do";

  Result<Slot> again = Create();
  ASSERT_NO_FATAL_FAILURE(ExpectCreated(again));
  EXPECT_EQ(again->name, cut.name);
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover({7}).empty());

  EXPECT_TRUE(GitWorktrees().count(user_wt));
  EXPECT_EQ(ReadAll(user_wt + "/notes.txt"), "mine\n");
  EXPECT_EQ(Head(user_wt), a_);
}

TEST_P(CreationCrashTest, RetryWithoutRecoverCompletesOrRollsBackAndRetries) {
  if (!manual()) {
    // A run's creation cut short keeps its slot until Recover; the next
    // Take makes another one beside it.
    CrashAt(point(), [&] { return Create(); });
    Restart();
    Result<Slot> s = Create();
    ASSERT_NO_FATAL_FAILURE(ExpectCreated(s));
    EXPECT_EQ(Slots().size(), 2u);
    Recover({7});
    ExpectNothingUnowned();
    return;
  }
  CrashAt(point(), [&] { return Create(); });
  Restart();
  Result<Slot> s = Create();
  ASSERT_NO_FATAL_FAILURE(ExpectCreated(s));
  EXPECT_EQ(s->name, "inspect");
  EXPECT_EQ(Slots().size(), 1u);
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Points, CreationCrashTest,
    ::testing::Combine(::testing::Values("after_slot_record", "after_intent_commit",
                                         "after_branch_create", "after_worktree_add",
                                         "after_idem_complete"),
                       ::testing::Bool()),
    [](const auto& info) {
      return std::get<0>(info.param) + (std::get<1>(info.param) ? "_manual" : "_take");
    });

TEST_F(SlotsTest, ACreationInProgressByALiveProcessIsLeftAlone) {
  CrashAt("after_worktree_add", [&] { return slots_->CreateManual("inspect", repo_, a_); });
  int32_t first = pid_;
  StartProcess(pid_ + 100);  // the first process still lives
  std::vector<std::string> errors;
  Result<std::vector<SlotAction>> r = slots_->Recover({repo_}, {}, false, &errors);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("pid " + std::to_string(first)), std::string::npos) << errors[0];
  EXPECT_TRUE(Exists(root_ + "/inspect"));
  EXPECT_TRUE(Exists(Admin("inspect")));
  EXPECT_TRUE(slots_->CreateManual("inspect", repo_, a_).status().IsBusy());
}

// ---- crashes during removal and checkout ----

class RemovalCrashTest : public SlotsTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(RemovalCrashTest, RecoverFinishesTheRemoval) {
  Result<Slot> s = slots_->CreateManual("inspect", repo_, a_);
  ASSERT_TRUE(s.ok());
  CrashAt(GetParam(), [&] { return slots_->Remove("inspect"); });
  Result<Slot> removing = slots_->Get("inspect");
  ASSERT_TRUE(removing.ok());
  EXPECT_EQ(removing->state, SlotState::kRemoving);
  EXPECT_TRUE(Exists(Admin("inspect")));
  Restart();
  std::vector<SlotAction> actions = Recover();
  EXPECT_TRUE(HasAction(actions, "prune_worktree", "inspect", "removal cut short"))
      << Describe(actions);
  EXPECT_TRUE(HasAction(actions, "prune_worktree", "inspect", "admin entry")) << Describe(actions);
  EXPECT_TRUE(slots_->Get("inspect").status().IsNotFound());
  EXPECT_TRUE(idem_->Get(s->idem_key).status().IsNotFound());
  EXPECT_FALSE(Exists(s->path));
  EXPECT_FALSE(Exists(Admin("inspect")));
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty());
  Result<Slot> again = slots_->CreateManual("inspect", repo_, b_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectCleanAt(*again, b_);
}

INSTANTIATE_TEST_SUITE_P(Points, RemovalCrashTest,
                         ::testing::Values("after_slot_removing", "after_slot_dir_remove"));

class CheckoutCrashTest : public SlotsTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(CheckoutCrashTest, RecoverFreesTheSlotAndTheNextTakeWorks) {
  Slot s = MustTake(1, a_);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  WriteFile(s.path + "/out.log", "log\n");
  CrashAt(GetParam(), [&] { return slots_->Take(repo_, 2, b_); });
  Result<Slot> busy = slots_->Get(s.name);
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->state, SlotState::kBusy);
  EXPECT_EQ(busy->run_id, 2u);
  Restart();
  std::vector<SlotAction> actions = Recover(/*running=*/{});
  EXPECT_TRUE(HasAction(actions, "release_slot", s.name)) << Describe(actions);
  Result<Slot> freed = slots_->Get(s.name);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(freed->state, SlotState::kFree);
  EXPECT_EQ(freed->run_id, 0u);
  EXPECT_EQ(freed->sha, "");  // the checkout may not have happened
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty());
  Slot next = MustTake(3, c_);
  EXPECT_EQ(next.name, s.name);
  ExpectCleanAt(next, c_);
  EXPECT_EQ(Slots().size(), 1u);
}

TEST_P(CheckoutCrashTest, TheSameRunTakingAgainGetsItsSlotAtItsSha) {
  Slot s = MustTake(1, a_);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  CrashAt(GetParam(), [&] { return slots_->Take(repo_, 2, b_); });
  Restart();
  Slot again = MustTake(2, b_);
  EXPECT_EQ(again.name, s.name);
  ExpectCleanAt(again, b_);
  EXPECT_EQ(Slots().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Points, CheckoutCrashTest,
                         ::testing::Values("before_slot_checkout", "after_slot_checkout"));

TEST_F(SlotsTest, RecoverLeavesTheSlotOfARunningRunBusy) {
  Slot s = MustTake(1, a_);
  Restart();
  std::vector<SlotAction> actions = Recover(/*running=*/{1});
  EXPECT_FALSE(HasAction(actions, "release_slot", s.name)) << Describe(actions);
  EXPECT_EQ(slots_->Get(s.name)->state, SlotState::kBusy);
  actions = Recover(/*running=*/{});
  EXPECT_TRUE(HasAction(actions, "release_slot", s.name)) << Describe(actions);
  EXPECT_EQ(slots_->Get(s.name)->state, SlotState::kFree);
}

// ---- leftovers ----

TEST_F(SlotsTest, AnInitializingAdminEntryIntoTheRootIsRemoved) {
  Slot keep = MustTake(1, a_);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  std::string path = root_ + "/leftover";
  Git(repo_, {"worktree", "add", "-q", "--detach", path, a_});
  WriteFile(Admin("leftover") + "/locked", "initializing\n");
  Git(repo_, {"worktree", "prune"});
  ASSERT_TRUE(Exists(Admin("leftover") + "/locked"));  // git never prunes it
  std::vector<SlotAction> actions = Recover();
  EXPECT_TRUE(HasAction(actions, "prune_worktree", "leftover", "locked: initializing"))
      << Describe(actions);
  EXPECT_FALSE(Exists(Admin("leftover")));
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(GitWorktrees().count(path));
  ExpectCleanAt(*slots_->Get(keep.name), a_);
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty());
}

TEST_F(SlotsTest, AnInitializingAdminEntryWithoutAWorkDirIsRemoved) {
  std::string path = root_ + "/leftover";
  fs::create_directories(Admin("leftover"));
  WriteFile(Admin("leftover") + "/locked", "initializing\n");
  WriteFile(Admin("leftover") + "/gitdir", path + "/.git\n");
  std::vector<SlotAction> actions = Recover();
  EXPECT_TRUE(HasAction(actions, "prune_worktree", "leftover", "locked: initializing"))
      << Describe(actions);
  EXPECT_FALSE(Exists(Admin("leftover")));
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, AWorkDirUnderTheRootThatNoSlotOwnsIsRemoved) {
  Slot keep = MustTake(1, a_);
  WriteFile(root_ + "/stray/file.txt", "x\n");
  std::vector<SlotAction> actions = Recover({1});
  EXPECT_TRUE(HasAction(actions, "prune_worktree", "", root_ + "/stray")) << Describe(actions);
  EXPECT_FALSE(Exists(root_ + "/stray"));
  ExpectCleanAt(keep, a_);
  EXPECT_EQ(slots_->Get(keep.name)->state, SlotState::kBusy);
  ExpectNothingUnowned();
}

TEST_F(SlotsTest, AFreeSlotWhoseWorkDirIsGoneIsRebuilt) {
  Slot s = MustTake(1, b_);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  fs::remove_all(s.path);
  ASSERT_TRUE(Exists(Admin(s.name)));
  std::vector<SlotAction> actions = Recover();
  EXPECT_TRUE(HasAction(actions, "rebuild_slot", s.name, "missing")) << Describe(actions);
  Result<Slot> rebuilt = slots_->Get(s.name);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(rebuilt->state, SlotState::kFree);
  ExpectCleanAt(*rebuilt, b_);
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty());
  Slot next = MustTake(2, c_);
  EXPECT_EQ(next.name, s.name);
  ExpectCleanAt(next, c_);
}

TEST_F(SlotsTest, AStaleHeadLockInAFreeSlotDoesNotStopTheNextTake) {
  Slot s = MustTake(1, a_);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  WriteFile(Admin(s.name) + "/HEAD.lock", "");
  WriteFile(Admin(s.name) + "/index.lock", "");
  // The locks stop a plain checkout.
  ASSERT_FALSE(CheckoutDetached(s.path, b_).ok());
  clock_.AdvanceMs(1000);
  Slot next = MustTake(2, b_);
  EXPECT_EQ(next.name, s.name);
  EXPECT_EQ(next.created_at_ms, s.created_at_ms);  // moved, not rebuilt
  EXPECT_EQ(IdemStatusOf(s.idem_key), IdemStatus::kCompleted);
  EXPECT_FALSE(Exists(Admin(s.name) + "/HEAD.lock"));
  EXPECT_FALSE(Exists(Admin(s.name) + "/index.lock"));
  ExpectCleanAt(next, b_);
}

TEST_F(SlotsTest, ABranchThatMovedOnDuringACutShortCreationIsKept) {
  CrashAt("after_branch_create", [&] { return slots_->Take(repo_, 1, a_); });
  std::vector<Slot> left = Slots();
  ASSERT_EQ(left.size(), 1u);
  std::string branch = left[0].branch;
  ASSERT_EQ(SlotBranches(), "refs/heads/" + branch);
  Git(repo_, {"branch", "-f", branch, c_});  // someone built on it
  Restart();
  std::vector<SlotAction> actions = Recover();
  EXPECT_TRUE(HasAction(actions, "delete_branch", left[0].name, "moved on")) << Describe(actions);
  EXPECT_EQ(Git(repo_, {"rev-parse", "refs/heads/" + branch}), c_);
  EXPECT_TRUE(Slots().empty());
  EXPECT_FALSE(Exists(left[0].path));
  // Runs still get slots.
  Slot s = MustTake(2, b_);
  ExpectCleanAt(s, b_);
  EXPECT_EQ(Git(repo_, {"rev-parse", "refs/heads/" + branch}), c_);
}

TEST_F(SlotsTest, AUsersWorktreeOutsideTheRootIsNeverTouched) {
  std::string user_wt = Path("elsewhere/inspect");
  Git(repo_, {"worktree", "add", "-q", "--detach", user_wt, a_});
  Git(repo_, {"worktree", "lock", "--reason", "initializing", user_wt});
  WriteFile(user_wt + "/notes.txt", "mine\n");
  // A slot of the same name cannot be made over it, and its failed
  // creation's rollback leaves the user's entry alone.
  Result<Slot> clash = slots_->CreateManual("inspect", repo_, b_);
  EXPECT_FALSE(clash.ok());
  EXPECT_TRUE(Slots().empty());
  Slot s = MustTake(1, b_);
  ASSERT_TRUE(slots_->Give(1, false).ok());
  CrashAt("after_worktree_add", [&] { return slots_->CreateManual("mine", repo_, c_); });
  Restart();
  Recover();
  Recover(/*running=*/{}, /*dry_run=*/false);
  EXPECT_TRUE(GitWorktrees().count(user_wt));
  EXPECT_EQ(ReadAll(user_wt + "/notes.txt"), "mine\n");
  EXPECT_NE(ReadAll(Admin("inspect") + "/locked").find("initializing"), std::string::npos);
  EXPECT_EQ(Head(user_wt), a_);
  ASSERT_TRUE(slots_->Remove(s.name).ok());
  EXPECT_TRUE(GitWorktrees().count(user_wt));
  ExpectNothingUnowned();
}

// ---- dry run ----

// Every file and directory under the test's temp dir except the store: its
// path, and for a file its size and modification time.
std::map<std::string, std::string> Listing(const std::string& base) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(base); it != fs::recursive_directory_iterator();
       ++it) {
    std::string p = it->path();
    if (p == base + "/state/db") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) continue;
    out[p] = S_ISREG(st.st_mode)
                 ? std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
                       std::to_string(st.st_mtim.tv_nsec)
                 : "dir";
  }
  return out;
}

TEST_F(SlotsTest, DryRunPlansTheActionsAndChangesNothing) {
  options_.max_slots = 3;
  StartProcess(pid_);
  Slot busy = MustTake(5, a_);     // its run is gone
  Slot damaged = MustTake(6, b_);  // free, work dir lost
  ASSERT_TRUE(slots_->Give(6, false).ok());
  fs::remove_all(damaged.path);
  WriteFile(root_ + "/stray/f", "x\n");
  Git(repo_, {"worktree", "add", "-q", "--detach", root_ + "/leftover", a_});
  WriteFile(Admin("leftover") + "/locked", "initializing\n");
  CrashAt("after_worktree_add", [&] { return slots_->CreateManual("half", repo_, c_); });
  ASSERT_TRUE(slots_->CreateManual("done", repo_, a_).ok());
  CrashAt("after_slot_removing", [&] { return slots_->Remove("done"); });
  Restart();

  std::map<std::string, std::string> before = Listing(base_);
  std::vector<Slot> slots_before = Slots();
  Result<std::vector<IdemEntry>> idem_before = idem_->List();
  ASSERT_TRUE(idem_before.ok());
  std::vector<SlotAction> plan = Recover({}, /*dry_run=*/true);
  EXPECT_EQ(Listing(base_), before);
  EXPECT_EQ(Slots(), slots_before);
  Result<std::vector<IdemEntry>> idem_after = idem_->List();
  ASSERT_TRUE(idem_after.ok());
  ASSERT_EQ(idem_after->size(), idem_before->size());
  for (size_t i = 0; i < idem_before->size(); ++i) {
    EXPECT_EQ((*idem_after)[i].key, (*idem_before)[i].key);
    EXPECT_EQ((*idem_after)[i].record, (*idem_before)[i].record);
  }
  EXPECT_TRUE(HasAction(plan, "release_slot", busy.name)) << Describe(plan);
  EXPECT_TRUE(HasAction(plan, "rebuild_slot", damaged.name)) << Describe(plan);
  EXPECT_TRUE(HasAction(plan, "rollback_worktree", "half")) << Describe(plan);
  EXPECT_TRUE(HasAction(plan, "rollback_idempotency", "half")) << Describe(plan);
  EXPECT_TRUE(HasAction(plan, "prune_worktree", "done", "removal cut short")) << Describe(plan);
  EXPECT_TRUE(HasAction(plan, "prune_worktree", "", root_ + "/stray")) << Describe(plan);
  EXPECT_TRUE(HasAction(plan, "prune_worktree", "leftover")) << Describe(plan);
  // A second dry run plans the same.
  std::vector<SlotAction> plan2 = Recover({}, /*dry_run=*/true);
  ASSERT_EQ(plan2.size(), plan.size());

  std::vector<SlotAction> done = Recover();
  for (const SlotAction& a : plan) {
    EXPECT_TRUE(HasAction(done, a.kind, a.name, a.detail))
        << "planned, not done: " << a.kind << " [" << a.name << "] " << a.detail << "\n"
        << Describe(done);
  }
  ExpectNothingUnowned();
  EXPECT_TRUE(Recover().empty());
  EXPECT_TRUE(Recover({}, /*dry_run=*/true).empty());
}

}  // namespace
}  // namespace wtd
