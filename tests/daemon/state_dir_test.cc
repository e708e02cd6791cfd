#include "daemon/state_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file_util.h"
#include "fakes/file_mode.h"
#include "fakes/temp_dir.h"
#include "store/state_store.h"

namespace wtd {
namespace {

class StateDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
  }

  // Creates `part` of the state dir with exactly `mode`.
  void MakePart(const std::string& part, mode_t mode) {
    std::string path = JoinPath(dir_, part);
    ASSERT_TRUE(MakeDirs(path).ok());
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }

  Status Check() { return CheckStateDir(dir_, geteuid(), &tightened_); }

  TempDir tmp_;
  std::string dir_ = tmp_.Sub("state");
  std::vector<std::string> tightened_;
};

TEST_F(StateDirTest, APrivateDirPassesUntouched) {
  ASSERT_NO_FATAL_FAILURE(MakePart("logs/runs", 0700));
  ASSERT_NO_FATAL_FAILURE(MakePart("runs", 0700));
  Status st = Check();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(tightened_.empty());
  EXPECT_EQ(ModeOf(dir_), 0700);
}

TEST_F(StateDirTest, AGroupWritableStateDirIsRefusedNamingItsPathAndMode) {
  ASSERT_EQ(chmod(dir_.c_str(), 0775), 0);
  Status st = Check();
  ASSERT_TRUE(st.IsFailedPrecondition()) << st.ToString();
  EXPECT_NE(st.message().find("state dir " + dir_), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("0775"), std::string::npos) << st.message();
  EXPECT_EQ(ModeOf(dir_), 0775) << "a refused dir is not changed behind the operator's back";
}

TEST_F(StateDirTest, AWorldWritableLogsOrRunsSubdirIsRefused) {
  for (const char* part : {"logs", "logs/runs", "runs"}) {
    SCOPED_TRACE(part);
    std::string path = JoinPath(dir_, part);
    ASSERT_NO_FATAL_FAILURE(MakePart(part, 0703));
    Status st = Check();
    ASSERT_TRUE(st.IsFailedPrecondition()) << st.ToString();
    EXPECT_NE(st.message().find(path + " (in the state dir) has mode 0703"), std::string::npos)
        << st.message();
    ASSERT_EQ(chmod(path.c_str(), 0700), 0);
  }
  EXPECT_TRUE(Check().ok());
}

TEST_F(StateDirTest, ADirOwnedByAnotherUserIsRefused) {
  uid_t other = geteuid() + 1;
  Status st = CheckStateDir(dir_, other, &tightened_);
  ASSERT_TRUE(st.IsFailedPrecondition()) << st.ToString();
  EXPECT_NE(st.message().find("owned by uid " + std::to_string(geteuid())), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find(dir_), std::string::npos) << st.message();
  if (geteuid() == 0) {
    // As root the real thing can be built: a logs dir that belongs to uid 1.
    ASSERT_NO_FATAL_FAILURE(MakePart("logs", 0700));
    ASSERT_EQ(chown(JoinPath(dir_, "logs").c_str(), 1, 1), 0);
    Status logs = Check();
    ASSERT_TRUE(logs.IsFailedPrecondition()) << logs.ToString();
    EXPECT_NE(logs.message().find(JoinPath(dir_, "logs") + " (in the state dir) is owned by uid 1"),
              std::string::npos)
        << logs.message();
  }
}

TEST_F(StateDirTest, ReadableDirsAreTightenedToOwnerOnly) {
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(MakePart("runs", 0755));
  ASSERT_NO_FATAL_FAILURE(MakePart("logs", 0700));
  ASSERT_NO_FATAL_FAILURE(MakePart("logs/runs", 0750));
  Status st = Check();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ModeOf(dir_), 0700);
  EXPECT_EQ(ModeOf(JoinPath(dir_, "runs")), 0700);
  EXPECT_EQ(ModeOf(JoinPath(dir_, "logs/runs")), 0700);
  EXPECT_EQ(tightened_, (std::vector<std::string>{
                            dir_ + " (mode 0755, now 0700)",
                            JoinPath(dir_, "logs/runs") + " (mode 0750, now 0700)",
                            JoinPath(dir_, "runs") + " (mode 0755, now 0700)",
                        }));
}

TEST_F(StateDirTest, AFileWhereASubdirBelongsIsRefused) {
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir_, "runs"), "x").ok());
  Status st = Check();
  ASSERT_TRUE(st.IsFailedPrecondition()) << st.ToString();
  EXPECT_NE(st.message().find("is not a directory"), std::string::npos) << st.message();
}

TEST_F(StateDirTest, AMissingStateDirIsAnError) {
  Status st = CheckStateDir(tmp_.Sub("missing"), geteuid(), &tightened_);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(tmp_.Sub("missing")), std::string::npos) << st.message();
}

// The start-up line, against a real store: opened fresh, reopened after a
// stop that did not mark the store, and after one that did.
TEST(PreviousRunNoteTest, OnlyAnExistingStoreThatWasNotShutDownCleanlySaysSo) {
  TempDir tmp;
  auto open_note = [&](bool mark_clean) {
    Result<std::unique_ptr<StateStore>> store = StateStore::Open(StoreOptions{tmp.Sub("db")});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return std::string("cannot open");
    std::string note =
        PreviousRunNote((*store)->incarnation(), (*store)->previous_shutdown_clean());
    if (mark_clean) {
      EXPECT_TRUE((*store)->MarkCleanShutdown().ok());
    }
    return note;
  };
  EXPECT_EQ(open_note(/*mark_clean=*/false), " (new state store)");
  EXPECT_EQ(open_note(/*mark_clean=*/true), " (previous run did not stop cleanly)");
  EXPECT_EQ(open_note(/*mark_clean=*/false), "");
  EXPECT_EQ(open_note(/*mark_clean=*/false), " (previous run did not stop cleanly)");
}

}  // namespace
}  // namespace wtd
