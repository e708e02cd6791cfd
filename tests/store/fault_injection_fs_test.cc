// The fault-injecting file system itself: what it keeps and what it drops.
// A power-loss test is only as good as its simulation, so each rule is
// checked here directly against the real files.
#include "fakes/fault_injection_fs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fakes/temp_dir.h"

namespace wtd {
namespace {

using rocksdb::FileOptions;
using rocksdb::IOOptions;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

class FaultInjectionFsTest : public ::testing::Test {
 protected:
  std::unique_ptr<rocksdb::FSWritableFile> Create(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    rocksdb::IOStatus s = fs_->NewWritableFile(dir_.Sub(name), FileOptions(), &f, nullptr);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return f;
  }
  void Append(rocksdb::FSWritableFile* f, const std::string& data) {
    ASSERT_TRUE(f->Append(data, IOOptions(), nullptr).ok());
  }
  void Sync(rocksdb::FSWritableFile* f) { ASSERT_TRUE(f->Sync(IOOptions(), nullptr).ok()); }
  void Close(rocksdb::FSWritableFile* f) { ASSERT_TRUE(f->Close(IOOptions(), nullptr).ok()); }
  void SyncDir() {
    std::unique_ptr<rocksdb::FSDirectory> d;
    ASSERT_TRUE(fs_->NewDirectory(dir_.path(), IOOptions(), &d, nullptr).ok());
    ASSERT_TRUE(d->Fsync(IOOptions(), nullptr).ok());
  }
  // A file whose content and directory entry are both durable.
  void MakeDurable(const std::string& name, const std::string& content) {
    std::unique_ptr<rocksdb::FSWritableFile> f = Create(name);
    Append(f.get(), content);
    Sync(f.get());
    Close(f.get());
    SyncDir();
  }
  void Drop() {
    rocksdb::IOStatus s = fs_->DropUnsyncedData();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  TempDir dir_;
  std::shared_ptr<FaultInjectionFs> fs_ = std::make_shared<FaultInjectionFs>();
};

TEST_F(FaultInjectionFsTest, DropTruncatesToLastSyncedSize) {
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("a");
  Append(f.get(), "synced|");
  Sync(f.get());
  Append(f.get(), "not synced");
  ASSERT_TRUE(f->Flush(IOOptions(), nullptr).ok());
  Close(f.get());  // closing is not syncing
  SyncDir();
  EXPECT_EQ(Slurp(dir_.Sub("a")), "synced|not synced");
  EXPECT_EQ(fs_->UnsyncedBytes(dir_.Sub("a")), 10u);
  Drop();
  EXPECT_EQ(Slurp(dir_.Sub("a")), "synced|");
  EXPECT_EQ(fs_->file_syncs(), 1u);
  EXPECT_EQ(fs_->dir_syncs(), 1u);
}

TEST_F(FaultInjectionFsTest, FileNeverSyncedLosesEverything) {
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("a");
  SyncDir();  // the entry is durable, the data is not
  Append(f.get(), "data");
  Close(f.get());
  Drop();
  ASSERT_TRUE(Exists(dir_.Sub("a")));
  EXPECT_EQ(Slurp(dir_.Sub("a")), "");
}

TEST_F(FaultInjectionFsTest, CreatedFileWithoutDirSyncIsDeleted) {
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("a");
  Append(f.get(), "data");
  Sync(f.get());
  Close(f.get());
  Drop();
  EXPECT_FALSE(Exists(dir_.Sub("a")));
}

TEST_F(FaultInjectionFsTest, FileAppendedAfterReopenKeepsItsDurablePrefix) {
  MakeDurable("a", "old|");
  std::unique_ptr<rocksdb::FSWritableFile> f;
  ASSERT_TRUE(fs_->ReopenWritableFile(dir_.Sub("a"), FileOptions(), &f, nullptr).ok());
  Append(f.get(), "new");
  Close(f.get());
  Drop();
  EXPECT_EQ(Slurp(dir_.Sub("a")), "old|");
}

TEST_F(FaultInjectionFsTest, RenameWithoutDirSyncIsUndoneAndReplacedFileRestored) {
  MakeDurable("CURRENT", "old");
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("CURRENT.tmp");
  Append(f.get(), "new");
  Sync(f.get());
  Close(f.get());
  ASSERT_TRUE(
      fs_->RenameFile(dir_.Sub("CURRENT.tmp"), dir_.Sub("CURRENT"), IOOptions(), nullptr).ok());
  EXPECT_EQ(Slurp(dir_.Sub("CURRENT")), "new");
  Drop();
  EXPECT_EQ(Slurp(dir_.Sub("CURRENT")), "old");
  EXPECT_FALSE(Exists(dir_.Sub("CURRENT.tmp")));  // its creation was not durable either
}

TEST_F(FaultInjectionFsTest, RenameFollowedByDirSyncSurvives) {
  MakeDurable("CURRENT", "old");
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("CURRENT.tmp");
  Append(f.get(), "new");
  Sync(f.get());
  Close(f.get());
  ASSERT_TRUE(
      fs_->RenameFile(dir_.Sub("CURRENT.tmp"), dir_.Sub("CURRENT"), IOOptions(), nullptr).ok());
  SyncDir();
  Drop();
  EXPECT_EQ(Slurp(dir_.Sub("CURRENT")), "new");
  EXPECT_FALSE(Exists(dir_.Sub("CURRENT.tmp")));
}

TEST_F(FaultInjectionFsTest, NoSpaceFailsWritesAndSyncsUntilCleared) {
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("a");
  Append(f.get(), "ok|");
  fs_->SetNoSpace(true);
  EXPECT_TRUE(f->Append("more", IOOptions(), nullptr).IsNoSpace());
  EXPECT_TRUE(f->Sync(IOOptions(), nullptr).IsNoSpace());
  std::unique_ptr<rocksdb::FSWritableFile> g;
  EXPECT_TRUE(fs_->NewWritableFile(dir_.Sub("b"), FileOptions(), &g, nullptr).IsNoSpace());
  EXPECT_FALSE(Exists(dir_.Sub("b")));
  fs_->SetNoSpace(false);
  Append(f.get(), "again");
  Sync(f.get());
  Close(f.get());
  EXPECT_EQ(Slurp(dir_.Sub("a")), "ok|again");
}

TEST_F(FaultInjectionFsTest, WriteBudgetTearsTheAppendThatCrossesIt) {
  std::unique_ptr<rocksdb::FSWritableFile> f = Create("a");
  fs_->SetWriteBudget(5);
  Append(f.get(), "abc");
  EXPECT_TRUE(f->Append("defgh", IOOptions(), nullptr).IsNoSpace());
  EXPECT_TRUE(f->Append("x", IOOptions(), nullptr).IsNoSpace());
  fs_->SetWriteBudget(std::nullopt);
  Close(f.get());
  EXPECT_EQ(Slurp(dir_.Sub("a")), "abcde");
}

TEST_F(FaultInjectionFsTest, DeletedFileStaysDeletedAndUntrackedFilesAreLeftAlone) {
  {
    std::ofstream out(dir_.Sub("outside"));
    out << "written without the fault fs";
  }
  MakeDurable("a", "x");
  ASSERT_TRUE(fs_->DeleteFile(dir_.Sub("a"), IOOptions(), nullptr).ok());
  Drop();
  EXPECT_FALSE(Exists(dir_.Sub("a")));
  EXPECT_EQ(Slurp(dir_.Sub("outside")), "written without the fault fs");
}

}  // namespace
}  // namespace wtd
