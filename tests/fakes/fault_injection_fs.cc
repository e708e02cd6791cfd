#include "fakes/fault_injection_fs.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace wtd {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Normalized(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

IOStatus NoSpace(const std::string& what) {
  return IOStatus::NoSpace("fault injection: no space left for " + what);
}

// A writable file whose written and synced sizes the file system tracks.
class TrackedFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedFile(std::unique_ptr<rocksdb::FSWritableFile> target, FaultInjectionFs* fs,
              std::shared_ptr<FaultInjectionFs::FileState> state, std::mutex* mu)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), state_(std::move(state)), mu_(mu) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    return Write(
        data, [&](const Slice& part) { return target()->Append(part, options, dbg); },
        [](FaultInjectionFs::FileState* st, size_t n) { st->written += n; });
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& /*info*/, IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    return Write(
        data,
        [&](const Slice& part) { return target()->PositionedAppend(part, offset, options, dbg); },
        [offset](FaultInjectionFs::FileState* st, size_t n) {
          st->written = std::max(st->written, offset + n);
        });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& /*info*/,
                            IODebugContext* dbg) override {
    return PositionedAppend(data, offset, options, dbg);
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(*mu_);
      state_->written = size;
      state_->synced = std::min(state_->synced, size);
    }
    return s;
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    if (fs_->no_space()) return NoSpace("sync");
    IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) fs_->RecordSync(state_.get());
    return s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    if (fs_->no_space()) return NoSpace("fsync");
    IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) fs_->RecordSync(state_.get());
    return s;
  }
  // sync_file_range makes no promise about durability: not a sync here.
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    if (fs_->no_space()) return NoSpace("range sync");
    return target()->RangeSync(offset, nbytes, options, dbg);
  }

 private:
  // Checks the budget, writes what fits through `write`, and counts it with
  // `count`.
  template <typename WriteFn, typename CountFn>
  IOStatus Write(const Slice& data, const WriteFn& write, const CountFn& count) {
    size_t allowed = 0;
    IOStatus budget = fs_->CheckWrite(data.size(), &allowed);
    if (allowed > 0) {
      IOStatus s = write(Slice(data.data(), allowed));
      if (!s.ok()) return s;
      std::lock_guard<std::mutex> lock(*mu_);
      count(state_.get(), allowed);
    }
    return budget;
  }

  FaultInjectionFs* fs_;
  std::shared_ptr<FaultInjectionFs::FileState> state_;
  std::mutex* mu_;
};

// A directory whose fsyncs make its entry operations durable.
class TrackedDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  TrackedDirectory(std::unique_ptr<rocksdb::FSDirectory> target, FaultInjectionFs* fs,
                   std::string name)
      : FSDirectoryWrapper(std::move(target)), fs_(fs), name_(std::move(name)) {}

  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    if (fs_->no_space()) return NoSpace("directory fsync of " + name_);
    IOStatus s = FSDirectoryWrapper::Fsync(options, dbg);
    if (s.ok()) fs_->RecordDirSync(name_);
    return s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& options, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& dir_options) override {
    if (fs_->no_space()) return NoSpace("directory fsync of " + name_);
    IOStatus s = FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
    if (s.ok()) fs_->RecordDirSync(name_);
    return s;
  }

 private:
  FaultInjectionFs* fs_;
  std::string name_;
};

}  // namespace

FaultInjectionFs::FaultInjectionFs(std::shared_ptr<rocksdb::FileSystem> target)
    : FileSystemWrapper(target) {}

void FaultInjectionFs::SetWriteBudget(std::optional<uint64_t> bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  budget_ = bytes;
}

uint64_t FaultInjectionFs::UnsyncedBytes(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return 0;
  return it->second->written > it->second->synced ? it->second->written - it->second->synced : 0;
}

IOStatus FaultInjectionFs::CheckWrite(size_t len, size_t* allowed) {
  *allowed = 0;
  if (no_space()) return NoSpace("append");
  std::lock_guard<std::mutex> lock(mu_);
  if (budget_ && *budget_ < len) {
    *allowed = static_cast<size_t>(*budget_);
    budget_ = 0;
    return NoSpace("append (write budget spent)");
  }
  if (budget_) *budget_ -= len;
  *allowed = len;
  return IOStatus::OK();
}

void FaultInjectionFs::RecordSync(FileState* state) {
  file_syncs_.fetch_add(1);
  std::lock_guard<std::mutex> lock(mu_);
  state->synced = state->written;
}

void FaultInjectionFs::RecordDirSync(const std::string& dir) {
  dir_syncs_.fetch_add(1);
  std::lock_guard<std::mutex> lock(mu_);
  dir_ops_.erase(Normalized(dir));
}

bool FaultInjectionFs::Exists(const std::string& path) {
  return target()->FileExists(path, IOOptions(), nullptr).ok();
}

IOStatus FaultInjectionFs::OpenTracked(const std::string& fname, bool existed, bool append,
                                       std::unique_ptr<rocksdb::FSWritableFile> file,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result) {
  uint64_t size = append ? file->GetFileSize(IOOptions(), nullptr) : 0;
  std::shared_ptr<FileState> state;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<FileState>& slot = files_[fname];
    if (!append || slot == nullptr) {
      // A file reopened for append keeps what it had; an untracked one is
      // taken as durable up to its current size.
      slot = std::make_shared<FileState>(FileState{size, size});
    }
    state = slot;
    if (!existed) dir_ops_[DirOf(fname)].push_back(DirOp{DirOp::kCreate, fname, {}, {}});
  }
  *result = std::make_unique<TrackedFile>(std::move(file), this, std::move(state), &mu_);
  return IOStatus::OK();
}

IOStatus FaultInjectionFs::NewWritableFile(const std::string& fname,
                                           const rocksdb::FileOptions& opts,
                                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                                           IODebugContext* dbg) {
  if (no_space()) return NoSpace("creating " + fname);
  bool existed = Exists(fname);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (!s.ok()) return s;
  return OpenTracked(fname, existed, /*append=*/false, std::move(file), result);
}

IOStatus FaultInjectionFs::ReopenWritableFile(const std::string& fname,
                                              const rocksdb::FileOptions& opts,
                                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                                              IODebugContext* dbg) {
  if (no_space()) return NoSpace("reopening " + fname);
  bool existed = Exists(fname);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (!s.ok()) return s;
  return OpenTracked(fname, existed, /*append=*/true, std::move(file), result);
}

IOStatus FaultInjectionFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                             const rocksdb::FileOptions& opts,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             IODebugContext* dbg) {
  // A recycled file: a rename, then a fresh file under the new name.
  IOStatus s = RenameFile(old_fname, fname, opts.io_options, dbg);
  if (!s.ok()) return s;
  return NewWritableFile(fname, opts, result, dbg);
}

IOStatus FaultInjectionFs::NewDirectory(const std::string& name, const IOOptions& io_opts,
                                        std::unique_ptr<rocksdb::FSDirectory>* result,
                                        IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  IOStatus s = target()->NewDirectory(name, io_opts, &dir, dbg);
  if (!s.ok()) return s;
  *result = std::make_unique<TrackedDirectory>(std::move(dir), this, Normalized(name));
  return IOStatus::OK();
}

IOStatus FaultInjectionFs::RenameFile(const std::string& src, const std::string& dst,
                                      const IOOptions& options, IODebugContext* dbg) {
  if (no_space()) return NoSpace("renaming " + src);
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> replaced;
  uint64_t size = 0;
  if (target()->GetFileSize(dst, options, &size, dbg).ok() && size <= kMaxRenameBackup) {
    std::string content;
    if (rocksdb::ReadFileToString(target(), dst, &content).ok()) {
      auto it = files_.find(dst);
      if (it != files_.end() && content.size() > it->second->synced) {
        content.resize(it->second->synced);
      }
      replaced = std::move(content);
    }
  }
  IOStatus s = target()->RenameFile(src, dst, options, dbg);
  if (!s.ok()) return s;
  files_.erase(dst);
  auto it = files_.find(src);
  if (it != files_.end()) {
    files_[dst] = it->second;
    files_.erase(src);
  }
  dir_ops_[DirOf(dst)].push_back(DirOp{DirOp::kRename, dst, src, std::move(replaced)});
  return IOStatus::OK();
}

IOStatus FaultInjectionFs::LinkFile(const std::string& src, const std::string& dst,
                                    const IOOptions& options, IODebugContext* dbg) {
  if (no_space()) return NoSpace("linking " + dst);
  IOStatus s = target()->LinkFile(src, dst, options, dbg);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  dir_ops_[DirOf(dst)].push_back(DirOp{DirOp::kCreate, dst, {}, {}});
  return IOStatus::OK();
}

IOStatus FaultInjectionFs::DeleteFile(const std::string& fname, const IOOptions& options,
                                      IODebugContext* dbg) {
  IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  files_.erase(fname);
  auto it = dir_ops_.find(DirOf(fname));
  if (it != dir_ops_.end()) {
    std::erase_if(it->second,
                  [&](const DirOp& op) { return op.kind == DirOp::kCreate && op.name == fname; });
  }
  return IOStatus::OK();
}

IOStatus FaultInjectionFs::UndoDirOps(const std::string& /*dir*/, const std::vector<DirOp>& ops) {
  IOStatus first;
  auto note = [&](IOStatus s) {
    if (!s.ok() && first.ok()) first = s;
  };
  for (auto op = ops.rbegin(); op != ops.rend(); ++op) {
    if (!Exists(op->name)) continue;
    if (op->kind == DirOp::kCreate) {
      note(target()->DeleteFile(op->name, IOOptions(), nullptr));
      continue;
    }
    note(target()->RenameFile(op->name, op->from, IOOptions(), nullptr));
    if (op->replaced) {
      note(rocksdb::WriteStringToFile(target(), *op->replaced, op->name, /*should_sync=*/true));
    }
  }
  return first;
}

IOStatus FaultInjectionFs::DropUnsyncedData() {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus first;
  for (const auto& [path, state] : files_) {
    uint64_t size = 0;
    if (!target()->GetFileSize(path, IOOptions(), &size, nullptr).ok()) continue;
    if (size <= state->synced) continue;
    // The POSIX FileSystem has no Truncate; the files are real, so use the OS.
    if (::truncate(path.c_str(), static_cast<off_t>(state->synced)) != 0 && first.ok()) {
      first = IOStatus::IOError("fault injection: truncate " + path + ": " + strerror(errno));
    }
  }
  for (const auto& [dir, ops] : dir_ops_) {
    IOStatus s = UndoDirOps(dir, ops);
    if (!s.ok() && first.ok()) first = s;
  }
  files_.clear();
  dir_ops_.clear();
  return first;
}

}  // namespace wtd
