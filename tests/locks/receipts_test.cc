#include "locks/receipts.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "locks/locks_fixture.h"

namespace wtd::locks {
namespace {

Receipt MakeReceipt(const std::string& job, uint64_t run_id, const std::string& worktree = "main") {
  Receipt r;
  r.worktree = worktree;
  r.job = job;
  r.state = "succeeded";
  r.exit_code = 0;
  r.attempt = 1;
  r.run_id = run_id;
  r.host = "ci-1";
  r.finished_at_ms = 1'764'676'800'123;  // 2025-12-02T12:00:00.123Z
  r.duration_ms = 1234;
  return r;
}

TEST(ReceiptFormatTest, OneJsonLineInTheDocumentedOrder) {
  EXPECT_EQ(EncodeReceipt(MakeReceipt("build", 42)),
            "{\"worktree\":\"main\",\"job\":\"build\",\"state\":\"succeeded\",\"exit_code\":0,"
            "\"attempt\":1,\"run_id\":42,\"host\":\"ci-1\","
            "\"finished_at\":\"2025-12-02T12:00:00.123Z\",\"duration_ms\":1234}");
  Receipt odd = MakeReceipt("job\nwith newline", 1);
  odd.exit_code = -1;
  std::string line = EncodeReceipt(odd);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  Result<Receipt> back = ParseReceipt(line);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, odd);
}

TEST(ReceiptFormatTest, PidAndStoreAreWrittenWhenSetAndOptionalWhenRead) {
  Receipt r = MakeReceipt("build", 42);
  r.pid = 4242;
  r.store = "0123456789abcdef0123456789abcdef";
  std::string line = EncodeReceipt(r);
  EXPECT_NE(line.find(",\"pid\":4242,\"store\":\"0123456789abcdef0123456789abcdef\"}"),
            std::string::npos)
      << line;
  Result<Receipt> back = ParseReceipt(line);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, r);
  EXPECT_EQ(DoneBy(*back), "ci-1 pid 4242 run 42");
  // A receipt without them (an older writer) reads with 0 and "".
  Result<Receipt> old = ParseReceipt(EncodeReceipt(MakeReceipt("build", 42)));
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->pid, 0);
  EXPECT_EQ(old->store, "");
  EXPECT_EQ(DoneBy(*old), "ci-1 run 42");
  std::string bad = line;
  bad.replace(bad.find("4242"), 4, "\"x\"");
  EXPECT_NE(ParseReceipt(bad).status().message().find("'pid' is not an integer"),
            std::string::npos);
}

TEST(ReceiptFormatTest, ParseNamesTheBadField) {
  std::string good = EncodeReceipt(MakeReceipt("build", 42));
  struct Bad {
    std::string from, to, field;
  };
  for (const Bad& c : std::vector<Bad>{
           {"\"job\":\"build\",", "", "'job' is missing"},
           {"\"state\":\"succeeded\"", "\"state\":\"\"", "'state' is empty"},
           {"\"exit_code\":0", "\"exit_code\":\"0\"", "'exit_code' is not an integer"},
           {"\"run_id\":42", "\"run_id\":-42", "'run_id' is out of range"},
           {"\"duration_ms\":1234", "\"duration_ms\":-1", "'duration_ms' is negative"},
           {"2025-12-02T12:00:00.123Z", "2025-12-02 12:00:00", "'finished_at'"},
           {"2025-12-02T12:00:00.123Z", "2025-02-30T12:00:00Z", "'finished_at'"},
       }) {
    std::string text = good;
    text.replace(text.find(c.from), c.from.size(), c.to);
    Result<Receipt> r = ParseReceipt(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(ParseReceipt("Reviewed-by: someone").ok());
}

TEST(ReceiptFormatTest, Rfc3339) {
  EXPECT_EQ(*ParseRfc3339Utc("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339Utc("2025-12-02T12:00:00.123Z"), 1'764'676'800'123);
  EXPECT_EQ(*ParseRfc3339Utc("2025-12-02T12:00:00.1239999Z"), 1'764'676'800'123);
  EXPECT_EQ(*ParseRfc3339Utc("2024-02-29T00:00:00.5Z"), 1'709'164'800'500);
  for (const char* bad : {"", "2025-12-02", "2025-12-02T12:00:00", "2025-12-02T12:00:00+01:00",
                          "2025-13-02T12:00:00Z", "2023-02-29T00:00:00Z", "2025-12-02T24:00:00Z",
                          "2025-12-02T12:00:00.Z", "2025-12-02T12:00:00.1234567890Z"}) {
    EXPECT_FALSE(ParseRfc3339Utc(bad).ok()) << bad;
  }
}

using ReceiptsTest = LocksFixture;

TEST_F(ReceiptsTest, FirstReceiptWinsAndMissingNotesRefIsCreated) {
  EXPECT_EQ(Git(repo_, {"for-each-ref", kDefaultNotesRef}), "");
  Result<std::optional<Receipt>> none =
      FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "build");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());

  Receipt first = MakeReceipt("build", 1);
  Result<Receipt> won = AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, first);
  ASSERT_TRUE(won.ok()) << won.status().ToString();
  EXPECT_EQ(*won, first);
  EXPECT_NE(Git(repo_, {"for-each-ref", kDefaultNotesRef}), "");

  Receipt second = MakeReceipt("build", 2);
  second.state = "failed";
  second.host = "ci-2";
  Result<Receipt> lost = AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, second);
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  EXPECT_EQ(*lost, first);
  EXPECT_EQ(Git(repo_, {"notes", "--ref=wtd", "show", sha_}), EncodeReceipt(first));
  Result<std::optional<Receipt>> found =
      FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "build");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, first);
  // Another worktree's run of the same job is a different receipt.
  EXPECT_EQ(*AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("build", 3, "wt2")),
            MakeReceipt("build", 3, "wt2"));
}

TEST_F(ReceiptsTest, EachAttemptSeriesHasItsOwnFirstReceipt) {
  Receipt zero = MakeReceipt("build", 1);
  ASSERT_EQ(*AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, zero), zero);
  // Series 0's receipt does not answer for series 1: it is not done yet.
  Result<std::optional<Receipt>> one =
      FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "build", 1);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_FALSE(one->has_value());
  Receipt again = MakeReceipt("build", 2);
  again.series = 1;
  std::string line = EncodeReceipt(again);
  EXPECT_NE(line.find(",\"series\":1}"), std::string::npos) << line;
  EXPECT_EQ(EncodeReceipt(zero).find("series"), std::string::npos);  // 0 is not written
  EXPECT_EQ(*AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, again), again);
  // The first of series 1 wins over a later one of series 1.
  Receipt late = MakeReceipt("build", 3);
  late.series = 1;
  EXPECT_EQ(*AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, late), again);
  one = FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "build", 1);
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_EQ(**one, again);
  EXPECT_EQ(**FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "build"), zero);
  EXPECT_EQ(ReadReceipts(*refs_, kDefaultNotesRef, sha_)->receipts.size(), 2u);
}

TEST_F(ReceiptsTest, OtherLinesOfTheNoteAreKept) {
  Git(repo_, {"notes", "--ref=wtd", "add", "-m", "Reviewed by a person\n\nsecond paragraph", sha_});
  ASSERT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("build", 1)).ok());
  ASSERT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("lint", 2)).ok());
  std::string note = Git(repo_, {"notes", "--ref=wtd", "show", sha_});
  EXPECT_EQ(note, "Reviewed by a person\n\nsecond paragraph\n" +
                      EncodeReceipt(MakeReceipt("build", 1)) + "\n" +
                      EncodeReceipt(MakeReceipt("lint", 2)));
  Result<NoteReceipts> all = ReadReceipts(*refs_, kDefaultNotesRef, sha_);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->receipts.size(), 2u);
  EXPECT_EQ(all->receipts[1].job, "lint");
  ASSERT_EQ(all->other_lines.size(), 2u);
  EXPECT_EQ(all->other_lines[0], "1: Reviewed by a person");
  EXPECT_EQ(all->other_lines[1], "3: second paragraph");
}

TEST_F(ReceiptsTest, GitLogShowsReceiptsAndTheySurviveGc) {
  std::string second = Commit(repo_, "b.txt", "b\n", "second");
  ASSERT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("build", 1)).ok());
  ASSERT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, second, MakeReceipt("build", 2)).ok());
  Git(repo_, {"gc", "-q", "--prune=now"});
  std::string log = Git(repo_, {"log", "--notes=wtd", "--format=%H%n%N"});
  EXPECT_EQ(log, second + "\n" + EncodeReceipt(MakeReceipt("build", 2)) + "\n\n" + sha_ + "\n" +
                     EncodeReceipt(MakeReceipt("build", 1)));  // Git() drops the last newline
  Result<std::optional<Receipt>> found =
      FindReceipt(*refs_, kDefaultNotesRef, second, "main", "build");
  ASSERT_TRUE(found.ok() && found->has_value()) << found.status().ToString();
  EXPECT_EQ((*found)->run_id, 2u);
}

TEST_F(ReceiptsTest, ConcurrentAppendersLoseNoLine) {
  constexpr int kPerWriter = 12;
  // Two LockRefs objects (as two daemons) and a third thread sharing the
  // first object: all append to the note of one commit at once.
  std::unique_ptr<LockRefs> other = OpenRefs();
  auto writer = [&](LockRefs* refs, const std::string& prefix) {
    for (int i = 0; i < kPerWriter; ++i) {
      Receipt r = MakeReceipt(prefix + std::to_string(i), static_cast<uint64_t>(i));
      Result<Receipt> got = AppendReceiptIfFirst(*refs, kDefaultNotesRef, sha_, r);
      EXPECT_TRUE(got.ok()) << got.status().ToString();
      if (got.ok()) {
        EXPECT_EQ(*got, r);
      }
    }
  };
  std::thread a(writer, refs_.get(), "a"), b(writer, other.get(), "b"), c(writer, refs_.get(), "c");
  a.join();
  b.join();
  c.join();
  Result<NoteReceipts> all = ReadReceipts(*other, kDefaultNotesRef, sha_);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->receipts.size(), 3u * kPerWriter);
  EXPECT_TRUE(all->other_lines.empty());
  // Each writer's lines are there in the order it appended them.
  for (const std::string prefix : {"a", "b", "c"}) {
    int next = 0;
    for (const Receipt& r : all->receipts) {
      if (r.job.rfind(prefix, 0) == 0) {
        EXPECT_EQ(r.job, prefix + std::to_string(next++));
      }
    }
    EXPECT_EQ(next, kPerWriter) << prefix;
  }
  EXPECT_EQ(Git(repo_, {"notes", "--ref=wtd", "list"}).size(), 81u);  // one note: "<blob> <sha>"
}

TEST_F(ReceiptsTest, AStrayNotesRefLockFileIsReportedAfterTheRetries) {
  ASSERT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("build", 1)).ok());
  std::string before = CliTarget(kDefaultNotesRef);
  std::string lock_file = repo_ + "/.git/refs/notes/wtd.lock";
  WriteFile(lock_file, "left by a crash\n");
  Result<Receipt> r = AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("lint", 2));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsRefLockFilePresent(r.status())) << r.status().ToString();
  EXPECT_NE(r.status().message().find("refs/notes/wtd"), std::string::npos);
  EXPECT_NE(r.status().message().find("repository " + repo_), std::string::npos);
  EXPECT_EQ(CliTarget(kDefaultNotesRef), before);
  // Reading needs no lock; once the file is gone the append goes through.
  EXPECT_TRUE(FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "build")->has_value());
  std::filesystem::remove(lock_file);
  EXPECT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("lint", 2)).ok());
}

TEST_F(ReceiptsTest, ANotesRefLockFileOlderThanTheThresholdIsRemoved) {
  ASSERT_TRUE(AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("build", 1)).ok());
  std::string lock_file = repo_ + "/.git/refs/notes/wtd.lock";
  WriteFile(lock_file, "left by a writer killed mid-write\n");
  std::filesystem::last_write_time(
      lock_file, std::filesystem::last_write_time(lock_file) - std::chrono::seconds(61));
  Result<Receipt> r = AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, MakeReceipt("lint", 2));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(lock_file));
  EXPECT_TRUE(FindReceipt(*refs_, kDefaultNotesRef, sha_, "main", "lint")->has_value());
}

TEST_F(ReceiptsTest, BadArgumentsAreRefused) {
  Receipt r = MakeReceipt("build", 1);
  EXPECT_TRUE(AppendReceiptIfFirst(*refs_, "refs/wtd/notes", sha_, r).status().IsInvalidArgument());
  EXPECT_TRUE(
      AppendReceiptIfFirst(*refs_, kDefaultNotesRef, "HEAD", r).status().IsInvalidArgument());
  r.job = "";
  Result<Receipt> empty = AppendReceiptIfFirst(*refs_, kDefaultNotesRef, sha_, r);
  EXPECT_TRUE(empty.status().IsInvalidArgument()) << empty.status().ToString();
  EXPECT_NE(empty.status().message().find("'job' is empty"), std::string::npos);
  EXPECT_EQ(Git(repo_, {"for-each-ref", "refs/notes"}), "");
}

}  // namespace
}  // namespace wtd::locks
