#include "store/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>

#include <algorithm>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/random.h"
#include "store/keys.h"

namespace wtd {
namespace {

constexpr std::string_view kFamilyNames[kFamilyCount] = {
    "meta", "runs", "run_keys", "active", "cursors", "locks", "idem", "events", "slots",
};

// RocksDB names the default family "default"; wtd keeps it empty.
constexpr char kDefaultFamily[] = "default";
constexpr char kMetaSchema[] = "schema";
constexpr char kMetaIncarnation[] = "incarnation";
constexpr char kMetaStoreId[] = "store_id";
constexpr char kMetaCleanShutdown[] = "clean_shutdown";

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return Status::Busy(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  return Status::IOError(msg);
}

// "family/key" for messages: u64 keys (runs, active, events) in decimal,
// composite keys with their NUL separators as '/', other bytes escaped.
std::string Printable(Family f, std::string_view key) {
  std::string out(FamilyName(f));
  out.push_back('/');
  if ((f == Family::kRuns || f == Family::kActive || f == Family::kEvents) && key.size() == 8) {
    Result<uint64_t> id = DecodeU64Key(key);
    if (id.ok()) return out + std::to_string(*id);
  }
  for (unsigned char c : key) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else if (c == 0) {
      out.push_back('/');
    } else {
      char buf[5];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

rocksdb::ColumnFamilyOptions FamilyOptions() {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = 4 << 20;  // small memtables: wtd's state is small
  cf.max_write_buffer_number = 2;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(8 << 20);
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

}  // namespace

std::string_view FamilyName(Family f) {
  auto i = static_cast<size_t>(f);
  return i < kFamilyCount ? kFamilyNames[i] : "invalid";
}

void WriteBatch::Put(Family f, std::string_view key, std::string_view value) {
  ops_.push_back(Op{f, false, std::string(key), std::string(value)});
}

void WriteBatch::Delete(Family f, std::string_view key) {
  ops_.push_back(Op{f, true, std::string(key), {}});
}

Result<std::unique_ptr<StateStore>> StateStore::Open(const StoreOptions& options) {
  std::unique_ptr<StateStore> store(new StateStore());
  Status s = store->Init(options);
  if (!s.ok()) return s;
  return store;
}

Status StateStore::Init(const StoreOptions& options) {
  dir_ = options.dir;
  read_only_ = options.read_only;
  if (!read_only_ && options.create_if_missing) {
    WTD_RETURN_IF_ERROR(MakeDirs(dir_, 0700).WithContext("state store"));
  }
  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = options.create_if_missing;
  db_opts.create_missing_column_families = true;
  db_opts.keep_log_file_num = 3;
  db_opts.max_log_file_size = 4 << 20;
  db_opts.max_total_wal_size = 64 << 20;
  // Open cost must not grow with history: do not read every table file's
  // stats at open (they only tune compaction), and open table files with a
  // couple of threads rather than 16 per column family on a 2-core machine.
  db_opts.skip_stats_update_on_db_open = true;
  db_opts.max_file_opening_threads = 2;
  if (options.env != nullptr) db_opts.env = options.env;

  // Read-only, a family a newer wtd added may not exist yet in a store no
  // newer daemon has opened: it is left out and reads as empty.
  std::vector<std::string> existing;
  if (read_only_) {
    rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(db_opts, dir_, &existing);
    if (!ls.ok()) return FromRocks(ls, "open state store " + dir_);
  }
  auto present = [&](std::string_view name) {
    return !read_only_ || std::find(existing.begin(), existing.end(), name) != existing.end();
  };
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(kDefaultFamily, FamilyOptions());
  for (std::string_view name : kFamilyNames) {
    if (present(name)) descs.emplace_back(std::string(name), FamilyOptions());
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status rs = read_only_
                           ? rocksdb::DB::OpenForReadOnly(db_opts, dir_, descs, &handles, &db)
                           : rocksdb::DB::Open(db_opts, dir_, descs, &handles, &db);
  if (!rs.ok()) return FromRocks(rs, "open state store " + dir_);
  db_.reset(db);
  // handles[0] is "default"; wtd's families follow in Family order, a
  // missing one (read-only) as null.
  handles_.assign(kFamilyCount, nullptr);
  size_t next = 1;
  for (int i = 0; i < kFamilyCount; ++i) {
    if (present(kFamilyNames[i])) handles_[i] = handles[next++];
  }
  db_->DestroyColumnFamilyHandle(handles[0]);

  WTD_RETURN_IF_ERROR(CheckSchema());
  if (!read_only_) WTD_RETURN_IF_ERROR(BumpIncarnation());
  if (read_only_) WTD_RETURN_IF_ERROR(LoadIncarnation());
  Result<std::string> id = Get(Family::kMeta, kMetaStoreId);
  if (!id.ok() && !id.status().IsNotFound()) return id.status();
  if (id.ok()) store_id_ = *id;
  return Status::OK();
}

Status StateStore::CheckSchema() {
  Result<std::string> v = Get(Family::kMeta, kMetaSchema);
  if (!v.ok() && !v.status().IsNotFound()) return v.status();
  if (!v.ok()) {
    if (read_only_) return Status::OK();  // fresh store, nothing written yet
    WriteBatch b;
    b.Put(Family::kMeta, kMetaSchema, EncodeU64Key(kSchemaVersion));
    return Commit(b);
  }
  Result<uint64_t> stored = DecodeU64Key(*v);
  if (!stored.ok()) return stored.status().WithContext("state store " + dir_ + ": meta/schema");
  if (*stored > kSchemaVersion) {
    return Status::NotSupported("state store " + dir_ + " has schema version " +
                                std::to_string(*stored) + ", newer than the version " +
                                std::to_string(kSchemaVersion) + " this wtd supports");
  }
  return Status::OK();
}

Status StateStore::LoadIncarnation() {
  Result<std::string> v = Get(Family::kMeta, kMetaIncarnation);
  if (!v.ok()) return v.status().IsNotFound() ? Status::OK() : v.status();
  WTD_ASSIGN_OR_RETURN(incarnation_, DecodeU64Key(*v));
  return Status::OK();
}

Status StateStore::BumpIncarnation() {
  uint64_t previous = 0;
  Result<std::string> v = Get(Family::kMeta, kMetaIncarnation);
  if (v.ok()) {
    WTD_ASSIGN_OR_RETURN(previous, DecodeU64Key(*v));
  } else if (!v.status().IsNotFound()) {
    return v.status();
  }
  Result<std::string> clean = Get(Family::kMeta, kMetaCleanShutdown);
  previous_clean_ = clean.ok() && previous > 0 && *clean == EncodeU64Key(previous);
  incarnation_ = previous + 1;
  WriteBatch b;
  b.Put(Family::kMeta, kMetaIncarnation, EncodeU64Key(incarnation_));
  b.Delete(Family::kMeta, kMetaCleanShutdown);
  Result<std::string> id = Get(Family::kMeta, kMetaStoreId);
  if (!id.ok() && !id.status().IsNotFound()) return id.status();
  if (!id.ok()) {
    // A store opened by a version before store ids gets its id now.
    WTD_ASSIGN_OR_RETURN(std::string fresh, RandomHex(16));
    b.Put(Family::kMeta, kMetaStoreId, fresh);
  }
  WTD_RETURN_IF_ERROR(Commit(b));
  WTD_CRASH_POINT("after_store_open");
  return Status::OK();
}

StateStore::~StateStore() {
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    if (h != nullptr) db_->DestroyColumnFamilyHandle(h);
  }
  db_->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* StateStore::Handle(Family f) const {
  return handles_[static_cast<size_t>(f)];
}

Status StateStore::sticky_error() const {
  MutexLock lock(&error_mu_);
  return error_;
}

Status StateStore::Commit(const WriteBatch& batch) {
  if (read_only_) return Status::FailedPrecondition("state store " + dir_ + " is open read-only");
  if (failed_.load(std::memory_order_acquire)) {
    MutexLock lock(&error_mu_);
    return Status::FailedPrecondition("state store " + dir_ +
                                      " refuses writes after a failed write (" + error_.ToString() +
                                      "); restart wtd to recover");
  }
  rocksdb::WriteBatch wb;
  for (const WriteBatch::Op& op : batch.ops_) {
    rocksdb::Status s = op.is_delete ? wb.Delete(Handle(op.family), op.key)
                                     : wb.Put(Handle(op.family), op.key, op.value);
    if (!s.ok()) return FromRocks(s, "build write batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Write(wo, &wb);
  if (s.ok()) {
    commits_.fetch_add(1, std::memory_order_relaxed);
    return Status::OK();
  }
  Status err = FromRocks(s, "synced write to state store " + dir_);
  {
    MutexLock lock(&error_mu_);
    if (error_.ok()) error_ = err;
  }
  failed_.store(true, std::memory_order_release);
  return err;
}

Result<std::string> StateStore::Get(Family f, std::string_view key) const {
  std::string value;
  rocksdb::Status s = Handle(f) == nullptr
                          ? rocksdb::Status::NotFound()
                          : db_->Get(rocksdb::ReadOptions(), Handle(f), key, &value);
  if (s.IsNotFound()) {
    return Status::NotFound(Printable(f, key) + " not found");
  }
  if (!s.ok()) return FromRocks(s, "read " + Printable(f, key));
  return value;
}

Status StateStore::Scan(Family f, std::string_view prefix, const ScanFn& fn, bool reverse) const {
  if (Handle(f) == nullptr) return Status::OK();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), Handle(f)));
  if (!reverse) {
    it->Seek(prefix);
  } else {
    // Seek to the last key with `prefix`: just past it, then step back.
    std::string upper(prefix);
    while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xFF) upper.pop_back();
    if (upper.empty()) {
      it->SeekToLast();
    } else {
      upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
      it->SeekForPrev(upper);
      if (it->Valid() && it->key() == rocksdb::Slice(upper)) it->Prev();
    }
  }
  for (; it->Valid(); reverse ? it->Prev() : it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
    if (!fn(std::string_view(k.data(), k.size()),
            std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), "scan " + std::string(FamilyName(f)));
}

Status StateStore::ScanFrom(Family f, std::string_view start, const ScanFn& fn) const {
  if (Handle(f) == nullptr) return Status::OK();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), Handle(f)));
  for (it->Seek(rocksdb::Slice(start.data(), start.size())); it->Valid(); it->Next()) {
    if (!fn(std::string_view(it->key().data(), it->key().size()),
            std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), "scan " + std::string(FamilyName(f)));
}

Result<std::string> StateStore::LastKey(Family f) const {
  if (Handle(f) == nullptr) return std::string();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), Handle(f)));
  it->SeekToLast();
  WTD_RETURN_IF_ERROR(FromRocks(it->status(), "seek " + std::string(FamilyName(f))));
  return it->Valid() ? it->key().ToString() : std::string();
}

Status StateStore::MarkCleanShutdown() {
  WriteBatch b;
  b.Put(Family::kMeta, kMetaCleanShutdown, EncodeU64Key(incarnation_));
  return Commit(b);
}

uint64_t StateStore::DiskBytes() const {
  // The database directory is flat: RocksDB keeps no subdirectories in it.
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return 0;
  uint64_t bytes = 0;
  while (struct dirent* e = readdir(d)) {
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  closedir(d);
  return bytes;
}

uint64_t StateStore::EstimateKeys(Family f) const {
  uint64_t n = 0;
  if (Handle(f) == nullptr) return 0;
  db_->GetIntProperty(Handle(f), "rocksdb.estimate-num-keys", &n);
  return n;
}

}  // namespace wtd
