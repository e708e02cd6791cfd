// FaultInjectionFs: a RocksDB FileSystem that can forget what was never made
// durable, to simulate power loss, and can run out of space on demand.
//
// Modelled on LevelDB's FaultInjectionTestEnv. For every file written
// through it, it tracks how many bytes were written and how many were synced
// (Sync or Fsync; neither Close, Flush nor RangeSync makes data durable). For
// every directory it keeps the entry operations — creations and renames —
// made since the directory's last FSDirectory::Fsync (or
// FsyncWithDirOptions). DropUnsyncedData() then does what a power cut would:
//   - every tracked file is truncated to its last synced size;
//   - the entry operations not made durable are undone, newest first: a
//     created file is deleted, a renamed file goes back to its old name and
//     the file it replaced (if it was at most kMaxRenameBackup bytes) comes
//     back.
// Deletions are not undone (the deleted file stays gone), as in LevelDB.
// Files written outside this file system (RocksDB's info LOG goes through
// NewLogger, which is passed through) are not tracked.
//
// Use: auto fs = std::make_shared<FaultInjectionFs>();
//      std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
//      StoreOptions o{dir}; o.env = env.get();
//
// Thread-safety: all methods may be called concurrently, except that
// DropUnsyncedData() requires that no database using this file system is
// open.
#ifndef WTD_TESTS_FAKES_FAULT_INJECTION_FS_H_
#define WTD_TESTS_FAKES_FAULT_INJECTION_FS_H_

#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace wtd {

class FaultInjectionFs final : public rocksdb::FileSystemWrapper {
 public:
  // Renamed-over files up to this size are restored if the rename is undone.
  static constexpr uint64_t kMaxRenameBackup = 1 << 20;

  // Wraps `target` (default: the real POSIX file system).
  explicit FaultInjectionFs(
      std::shared_ptr<rocksdb::FileSystem> target = rocksdb::FileSystem::Default());

  static const char* kClassName() { return "WtdFaultInjectionFs"; }
  const char* Name() const override { return kClassName(); }

  // Simulates a power cut (see the file comment). Returns the first error met
  // while truncating, deleting or renaming, after trying every step.
  // REQUIRES: no database using this file system is open.
  rocksdb::IOStatus DropUnsyncedData();

  // While true, creating or writing a file, syncing a file or a directory,
  // and renaming fail with IOStatus::NoSpace and change nothing.
  void SetNoSpace(bool v) { no_space_.store(v); }
  bool no_space() const { return no_space_.load(); }

  // After `bytes` more bytes have been appended (over all files), an append
  // writes only the part that fits, then fails with NoSpace, and so does
  // every later write: a torn write. std::nullopt (the default) disables it.
  void SetWriteBudget(std::optional<uint64_t> bytes);

  // Successful file syncs (Sync/Fsync) and directory syncs so far.
  uint64_t file_syncs() const { return file_syncs_.load(); }
  uint64_t dir_syncs() const { return dir_syncs_.load(); }
  // Bytes written to `path` through this file system and not yet synced
  // (0 when the file is not tracked).
  uint64_t UnsyncedBytes(const std::string& path) const;

  // rocksdb::FileSystem overrides.
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

  // Shared by a tracked file and its writer (which updates it).
  struct FileState {
    uint64_t written = 0;  // file size as written through this file system
    uint64_t synced = 0;   // size at the last successful sync
  };

  // Called by the writers and directories this file system hands out.
  rocksdb::IOStatus CheckWrite(size_t len, size_t* allowed);
  void RecordSync(FileState* state);
  void RecordDirSync(const std::string& dir);

 private:
  // A directory entry operation not yet made durable.
  struct DirOp {
    enum Kind { kCreate, kRename } kind;
    std::string name;                     // kCreate: the file; kRename: the new name
    std::string from;                     // kRename: the old name
    std::optional<std::string> replaced;  // kRename: content of the file overwritten
  };

  rocksdb::IOStatus OpenTracked(const std::string& fname, bool existed, bool append,
                                std::unique_ptr<rocksdb::FSWritableFile> file,
                                std::unique_ptr<rocksdb::FSWritableFile>* result);
  bool Exists(const std::string& path);
  rocksdb::IOStatus UndoDirOps(const std::string& dir, const std::vector<DirOp>& ops);

  std::atomic<bool> no_space_{false};
  std::atomic<uint64_t> file_syncs_{0};
  std::atomic<uint64_t> dir_syncs_{0};

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<FileState>> files_;  // GUARDED_BY(mu_), by full path
  std::map<std::string, std::vector<DirOp>> dir_ops_;        // GUARDED_BY(mu_), by directory
  std::optional<uint64_t> budget_;                           // GUARDED_BY(mu_)
};

}  // namespace wtd

#endif  // WTD_TESTS_FAKES_FAULT_INJECTION_FS_H_
