#include "locks/lock_refs.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "locks/lock_owner.h"
#include "locks/locks_fixture.h"

namespace wtd::locks {
namespace {

using LockRefsTest = LocksFixture;

TEST_F(LockRefsTest, CreateWritesTheOwnerBlobAndTheRef) {
  LockOwner owner = Owner(1);
  Result<std::string> blob = refs_->Create(Name(), owner);
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(*blob, *BlobIdOf(owner));
  EXPECT_EQ(CliTarget(RefOf(Name())), *blob);
  // The blob git stores is the encoding, byte for byte, and git hashes it to
  // the id BlobIdOf computed before anything was written.
  EXPECT_EQ(Git(repo_, {"cat-file", "-p", *blob}) + "\n", EncodeOwner(owner));
  EXPECT_EQ(Git(repo_, {"cat-file", "-t", *blob}), "blob");
  Result<LockEntry> e = refs_->Read(Name());
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->ref, RefOf(Name()));
  ASSERT_TRUE(e->name.has_value());
  EXPECT_EQ(*e->name, Name());
  EXPECT_EQ(e->blob, *blob);
  ASSERT_TRUE(e->owner.has_value());
  EXPECT_EQ(*e->owner, owner);
  EXPECT_TRUE(e->error.empty());
}

TEST_F(LockRefsTest, CreateOfAnExistingLockIsBusyAndLeavesItAlone) {
  Result<std::string> first = refs_->Create(Name(), Owner(1));
  ASSERT_TRUE(first.ok());
  std::unique_ptr<LockRefs> other = OpenRefs();
  Result<std::string> second = other->Create(Name(), Owner(2, 777));
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(IsHeld(second.status())) << second.status().ToString();
  EXPECT_NE(second.status().message().find("repository " + repo_), std::string::npos);
  EXPECT_NE(second.status().message().find(RefOf(Name())), std::string::npos);
  EXPECT_EQ(CliTarget(RefOf(Name())), *first);
  Result<LockEntry> holder = other->Read(Name());
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(holder->owner->pid, 4242);
}

TEST_F(LockRefsTest, ConcurrentCreatesOfOneNameHaveExactlyOneWinner) {
  std::unique_ptr<LockRefs> a = OpenRefs(), b = OpenRefs();
  constexpr int kNames = 40;
  // winner[i]: the pid whose Create of name i returned OK (0: none yet).
  std::vector<std::atomic<int>> winner(kNames);
  std::atomic<int> double_wins{0};
  auto race = [&](LockRefs* refs, int pid) {
    for (int i = 0; i < kNames; ++i) {
      Result<std::string> r = refs->Create(Name("job" + std::to_string(i)), Owner(i, pid));
      if (r.ok()) {
        if (winner[i].exchange(pid) != 0) ++double_wins;
      } else {
        // Lost: held, or the winner's ref lock file was there at that moment.
        EXPECT_TRUE(IsHeld(r.status()) || IsRefLockFilePresent(r.status()))
            << r.status().ToString();
      }
    }
  };
  std::thread ta(race, a.get(), 1), tb(race, b.get(), 2);
  ta.join();
  tb.join();
  EXPECT_EQ(double_wins.load(), 0);
  for (int i = 0; i < kNames; ++i) {
    Result<LockEntry> e = a->Read(Name("job" + std::to_string(i)));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    ASSERT_TRUE(e->readable());
    EXPECT_EQ(e->owner->pid, winner[i].load()) << "job" << i;
  }
}

TEST_F(LockRefsTest, UpdateIsACompareAndSwap) {
  Result<std::string> first = refs_->Create(Name(), Owner(1));
  ASSERT_TRUE(first.ok());
  LockOwner renewed = Owner(1);
  renewed.expires_at_ms += 60'000;
  renewed.job_pid = 5000;
  renewed.job_start_time = 2000;
  Result<std::string> second = refs_->Update(Name(), *first, renewed);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, *BlobIdOf(renewed));
  EXPECT_EQ(CliTarget(RefOf(Name())), *second);
  EXPECT_EQ(*refs_->Read(Name())->owner, renewed);

  // Someone holding the first blob id lost: refused, the ref is untouched.
  Result<std::string> stale = refs_->Update(Name(), *first, Owner(9));
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(IsChanged(stale.status())) << stale.status().ToString();
  EXPECT_NE(stale.status().message().find(RefOf(Name())), std::string::npos);
  EXPECT_EQ(CliTarget(RefOf(Name())), *second);

  Result<std::string> missing = refs_->Update(Name("other"), *first, Owner(9));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
  EXPECT_EQ(CliTarget(RefOf(Name("other"))), "");
}

TEST_F(LockRefsTest, DeleteRefusesWhenSomeoneElseReplacedTheRef) {
  Result<std::string> mine = refs_->Create(Name(), Owner(1));
  ASSERT_TRUE(mine.ok());
  // Another daemon reaped it and took it: the ref now names its blob.
  std::string theirs =
      Git(repo_, {"hash-object", "-w", "--stdin"},
          "printf '%s\\n' " + Quote(EncodeOwner(Owner(2, 999)).substr(0, 200)) + " |");
  ASSERT_EQ(theirs.size(), 40u);
  Git(repo_, {"update-ref", RefOf(Name()), theirs, *mine});
  Status s = refs_->Delete(Name(), *mine);
  EXPECT_TRUE(IsChanged(s)) << s.ToString();
  EXPECT_NE(s.message().find(theirs), std::string::npos) << s.message();
  EXPECT_EQ(CliTarget(RefOf(Name())), theirs);
  // With the blob it really points at, it goes; a second delete is NotFound.
  EXPECT_TRUE(refs_->Delete(Name(), theirs).ok());
  EXPECT_EQ(CliTarget(RefOf(Name())), "");
  Status again = refs_->Delete(Name(), theirs);
  EXPECT_TRUE(again.IsNotFound()) << again.ToString();
  EXPECT_TRUE(refs_->Read(Name()).status().IsNotFound());
}

TEST_F(LockRefsTest, PackedLocksAreReadUpdatedAndDeletedByCas) {
  Result<std::string> a = refs_->Create(Name("a"), Owner(1));
  Result<std::string> b = refs_->Create(Name("b"), Owner(2));
  Result<std::string> c = refs_->Create(Name("c"), Owner(3));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  Git(repo_, {"pack-refs", "--all"});
  std::string loose = repo_ + "/.git/" + RefOf(Name("a"));
  ASSERT_FALSE(Exists(loose)) << "pack-refs left the loose ref";
  std::string packed = Git(repo_, {"cat-file", "-p", "HEAD:a.txt"});  // any read; packed-refs:
  std::ifstream pf(repo_ + "/.git/packed-refs");
  std::string all((std::istreambuf_iterator<char>(pf)), std::istreambuf_iterator<char>());
  ASSERT_NE(all.find(RefOf(Name("a"))), std::string::npos);

  ASSERT_EQ(refs_->Read(Name("a"))->blob, *a);
  EXPECT_TRUE(IsChanged(refs_->Delete(Name("a"), *b)));
  EXPECT_EQ(CliTarget(RefOf(Name("a"))), *a);
  EXPECT_TRUE(refs_->Delete(Name("a"), *a).ok());
  EXPECT_EQ(CliTarget(RefOf(Name("a"))), "");
  Result<std::string> b2 = refs_->Update(Name("b"), *b, Owner(20));
  ASSERT_TRUE(b2.ok()) << b2.status().ToString();
  EXPECT_EQ(CliTarget(RefOf(Name("b"))), *b2);

  // After gc (everything packed, unreachable objects pruned) the locks and
  // their blobs are still there.
  Git(repo_, {"gc", "-q", "--prune=now"});
  Result<std::vector<LockEntry>> list = refs_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].blob, *b2);
  EXPECT_EQ((*list)[0].owner->token, 20u);
  EXPECT_EQ((*list)[1].blob, *c);
  EXPECT_TRUE(refs_->Delete(Name("c"), *c).ok());
  EXPECT_TRUE(refs_->Delete(Name("b"), *b2).ok());
  EXPECT_EQ(Git(repo_, {"for-each-ref", "refs/wtd/locks"}), "");
}

TEST_F(LockRefsTest, ForEachRefAndListShowEveryLock) {
  std::vector<std::string> blobs;
  for (const char* job : {"build", "lint", "test"}) {
    Result<std::string> b = refs_->Create(Name(job), Owner(blobs.size() + 1));
    ASSERT_TRUE(b.ok());
    blobs.push_back(*b);
  }
  EXPECT_EQ(Git(repo_, {"for-each-ref", "--format=%(refname) %(objectname)", "refs/wtd/locks"}),
            RefOf(Name("build")) + " " + blobs[0] + "\n" + RefOf(Name("lint")) + " " + blobs[1] +
                "\n" + RefOf(Name("test")) + " " + blobs[2]);
  Result<std::vector<LockEntry>> list = refs_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*list)[i].blob, blobs[i]);
    ASSERT_TRUE((*list)[i].owner.has_value());
    EXPECT_EQ((*list)[i].owner->token, i + 1);
  }
  EXPECT_EQ((*list)[2].name->job, "test");
}

TEST_F(LockRefsTest, ListReportsUnreadableLocksWithoutFailing) {
  ASSERT_TRUE(refs_->Create(Name("good"), Owner(1)).ok());
  std::string garbage = Git(repo_, {"hash-object", "-w", "--stdin"}, "echo 'not json' |");
  Git(repo_, {"update-ref", RefOf(Name("garbage")), garbage});
  std::string newer = Git(repo_, {"hash-object", "-w", "--stdin"}, "echo '{\"version\":9}' |");
  Git(repo_, {"update-ref", RefOf(Name("newer")), newer});
  Git(repo_, {"update-ref", "refs/wtd/locks/main/notaname", garbage});
  Git(repo_, {"update-ref", RefOf(Name("commit")), sha_});

  Result<std::vector<LockEntry>> list = refs_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 5u);
  std::map<std::string, LockEntry> by_ref;
  for (const LockEntry& e : *list) by_ref[e.ref] = e;
  EXPECT_TRUE(by_ref[RefOf(Name("good"))].readable());
  const LockEntry& g = by_ref[RefOf(Name("garbage"))];
  EXPECT_FALSE(g.readable());
  EXPECT_EQ(g.blob, garbage);
  EXPECT_NE(g.error.find("not JSON"), std::string::npos) << g.error;
  EXPECT_NE(by_ref[RefOf(Name("newer"))].error.find("version 9"), std::string::npos);
  EXPECT_FALSE(by_ref[RefOf(Name("commit"))].readable());
  const LockEntry& bad = by_ref["refs/wtd/locks/main/notaname"];
  EXPECT_FALSE(bad.name.has_value());
  EXPECT_FALSE(bad.error.empty());
  // Read gives the same picture for one lock.
  Result<LockEntry> one = refs_->Read(Name("garbage"));
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->readable());
}

TEST_F(LockRefsTest, RefFileObjectAndDirectoriesAreOnDiskWhenCreateReturns) {
  // A power cut cannot be simulated here; what is checked is that every file
  // and directory entry Create is responsible for exists once it returns
  // (the fsyncs are documented in docs/design/locks.md).
  Result<std::string> blob = refs_->Create(Name(), Owner(1));
  ASSERT_TRUE(blob.ok());
  std::string git_dir = repo_ + "/.git/";
  std::string dir = git_dir + "refs/wtd/locks/main/build";
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  std::ifstream f(dir + "/" + sha_);
  std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, *blob + "\n");
  EXPECT_TRUE(Exists(git_dir + "objects/" + blob->substr(0, 2) + "/" + blob->substr(2)));
  EXPECT_FALSE(Exists(dir + "/" + sha_ + ".lock"));
}

TEST_F(LockRefsTest, AStrayRefLockFileIsReportedNotOverwritten) {
  std::filesystem::create_directories(repo_ + "/.git/refs/wtd/locks/main/build");
  std::string lock_file = repo_ + "/.git/" + RefOf(Name()) + ".lock";
  std::ofstream(lock_file) << "left by a crash\n";
  Result<std::string> r = refs_->Create(Name(), Owner(1));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsRefLockFilePresent(r.status())) << r.status().ToString();
  EXPECT_NE(r.status().message().find(RefOf(Name())), std::string::npos);
  EXPECT_EQ(CliTarget(RefOf(Name())), "");
  std::filesystem::remove(lock_file);
  EXPECT_TRUE(refs_->Create(Name(), Owner(1)).ok());
}

// Sets `path`'s modification time `age_s` seconds back.
void Age(const std::string& path, int64_t age_s) {
  auto t = std::filesystem::last_write_time(path) - std::chrono::seconds(age_s);
  std::filesystem::last_write_time(path, t);
}

TEST_F(LockRefsTest, ARefLockFileOlderThanTheThresholdIsRemovedAndTheWriteGoesThrough) {
  std::filesystem::create_directories(repo_ + "/.git/refs/wtd/locks/main/build");
  std::string lock_file = repo_ + "/.git/" + RefOf(Name()) + ".lock";
  std::ofstream(lock_file) << "left by a writer killed mid-write\n";
  Age(lock_file, 61);
  Result<std::string> created = refs_->Create(Name(), Owner(1));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_FALSE(Exists(lock_file));
  // The same for Update and Delete.
  std::ofstream(lock_file) << "again\n";
  Age(lock_file, 61);
  Result<std::string> updated = refs_->Update(Name(), *created, Owner(2));
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  std::ofstream(lock_file) << "and again\n";
  Age(lock_file, 61);
  EXPECT_TRUE(refs_->Delete(Name(), *updated).ok());
  EXPECT_EQ(CliTarget(RefOf(Name())), "");
  // With removal turned off it stays, however old.
  std::unique_ptr<LockRefs> never = OpenRefs(LockRefsOptions{kDefaultLocksRoot, 0});
  std::ofstream(lock_file) << "kept\n";
  Age(lock_file, 3600);
  EXPECT_TRUE(IsRefLockFilePresent(never->Create(Name(), Owner(3)).status()));
  EXPECT_TRUE(Exists(lock_file));
}

TEST_F(LockRefsTest, InvalidNamesWriteNothing) {
  for (const LockName& n : {LockName{"a/b", "build", sha_}, LockName{"main", "..", sha_},
                            LockName{"main", "build", "HEAD"}}) {
    Result<std::string> r = refs_->Create(n, Owner(1));
    EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
    EXPECT_TRUE(refs_->Delete(n, std::string(40, 'a')).IsInvalidArgument());
    EXPECT_TRUE(refs_->Update(n, std::string(40, 'a'), Owner(1)).status().IsInvalidArgument());
  }
  EXPECT_EQ(Git(repo_, {"for-each-ref", "refs/wtd"}), "");
  EXPECT_TRUE(refs_->Delete(Name(), "xyz").IsInvalidArgument());
}

TEST_F(LockRefsTest, ConfiguredRootAndLinkedWorktreeShareTheCommonDir) {
  std::string wt = Path("wt2");
  Git(repo_, {"worktree", "add", "-q", "-b", "side", wt});
  Result<std::unique_ptr<LockRefs>> in_wt = LockRefs::Open(wt, {"refs/ci/locks"});
  ASSERT_TRUE(in_wt.ok()) << in_wt.status().ToString();
  LockName n{"wt2", "build", sha_};
  Result<std::string> blob = (*in_wt)->Create(n, Owner(1));
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_EQ(CliTarget("refs/ci/locks/" + n.ToString()), *blob);
  EXPECT_TRUE(Exists(repo_ + "/.git/refs/ci/locks/wt2/build/" + sha_));
  EXPECT_TRUE(refs_->List()->empty());  // another root
}

TEST_F(LockRefsTest, OpenOutsideARepositoryIsNotFound) {
  Result<std::unique_ptr<LockRefs>> r = LockRefs::Open(Path("nowhere"));
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(Path("nowhere")), std::string::npos);
  EXPECT_TRUE(LockRefs::Open(repo_, {"refs"}).status().IsInvalidArgument());
}

}  // namespace
}  // namespace wtd::locks
