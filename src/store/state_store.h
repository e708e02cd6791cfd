// StateStore: wtd's durable state, a RocksDB database with one column family
// per kind of record (docs/design/store.md).
//
// Every mutation is one WriteBatch committed with sync=true: when Commit
// returns OK the batch survives kill -9 and power loss; when it returns an
// error nothing of it is visible. The store knows nothing of git or
// processes; typed access lives in the modules above (runs, locks, ...).
//
// Sticky failure: after a failed synced write (disk full, I/O error) the store
// refuses every further Commit with FailedPrecondition naming the original
// error, until it is reopened (restart + recovery). Reads keep working.
//
// Thread-safety: all methods may be called concurrently. Concurrent Commits
// are group-committed by RocksDB (one WAL sync for several batches); the
// store adds no lock of its own around writes.
#ifndef WTD_STORE_STATE_STORE_H_
#define WTD_STORE_STATE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "wtd/status.h"

namespace rocksdb {
class DB;
class Env;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace wtd {

enum class Family : uint8_t {
  kMeta = 0,
  kRuns,
  kRunKeys,
  kActive,
  kCursors,
  kLocks,  // not written yet: reserved for lock leases (created so the layout is fixed)
  kIdem,   // idempotency records (IdemStore, src/idem)
  kEvents,
  kSlots,  // daemon-owned worktrees (WorktreeSlots, src/worktrees)
};
inline constexpr int kFamilyCount = 9;
std::string_view FamilyName(Family f);

// The on-disk schema this build writes. A store with a newer schema is
// refused; an older one would be migrated at open (none exists yet).
inline constexpr uint32_t kSchemaVersion = 1;

struct StoreOptions {
  std::string dir;         // the database directory; created if missing
  bool read_only = false;  // no writes; may run while a daemon holds the store
  bool create_if_missing = true;
  rocksdb::Env* env = nullptr;  // for fault injection in tests; not owned
};

// A set of mutations applied atomically by StateStore::Commit.
class WriteBatch {
 public:
  void Put(Family f, std::string_view key, std::string_view value);
  void Delete(Family f, std::string_view key);
  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void Clear() { ops_.clear(); }

 private:
  friend class StateStore;
  struct Op {
    Family family;
    bool is_delete;
    std::string key;
    std::string value;
  };
  std::vector<Op> ops_;
};

class StateStore {
 public:
  // Opens (creating if allowed) the store at options.dir. Unless read-only,
  // durably bumps the incarnation counter and clears the clean-shutdown
  // marker before returning. Errors name the directory; a store written by a
  // newer schema is refused naming both versions.
  static Result<std::unique_ptr<StateStore>> Open(const StoreOptions& options);

  // Closes without marking a clean shutdown (MarkCleanShutdown does that).
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Applies `batch` atomically with a synced WAL write.
  Status Commit(const WriteBatch& batch) EXCLUDES(error_mu_);

  // The value at key; NotFound (naming family and key) when absent.
  Result<std::string> Get(Family f, std::string_view key) const;

  // Calls fn(key, value) for each key starting with `prefix`, in key order
  // (reverse order when `reverse`), until fn returns false.
  using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;
  Status Scan(Family f, std::string_view prefix, const ScanFn& fn, bool reverse = false) const;

  // Calls fn(key, value) for each key >= `start`, in key order, until fn
  // returns false.
  Status ScanFrom(Family f, std::string_view start, const ScanFn& fn) const;

  // The greatest key in the family, or "" when it is empty.
  Result<std::string> LastKey(Family f) const;

  // Durably records that this incarnation shut down cleanly.
  Status MarkCleanShutdown();

  // This open's incarnation; read-only, the last read-write open's (0 for a
  // store never opened read-write).
  uint64_t incarnation() const { return incarnation_; }
  // This store's identity: 32 hex digits drawn when it was first opened
  // read-write, never changed (meta/store_id). Receipts carry it so that a
  // daemon tells its own receipt from another store's with the same run id.
  // Empty only for a store opened read-only before any read-write open.
  const std::string& store_id() const { return store_id_; }
  // Whether the incarnation before this one marked a clean shutdown.
  bool previous_shutdown_clean() const { return previous_clean_; }
  bool read_only() const { return read_only_; }
  const std::string& dir() const { return dir_; }
  // OK, or the error that made the store refuse writes.
  Status sticky_error() const EXCLUDES(error_mu_);

  // Batches committed through this handle since it was opened (the
  // incarnation bump at Open included).
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }

  // The bytes of the store's files on disk (tables, WAL, manifest); 0 when
  // its directory cannot be listed.
  uint64_t DiskBytes() const;

  // Approximate number of keys in a family (RocksDB estimate).
  uint64_t EstimateKeys(Family f) const;

 private:
  StateStore() = default;
  Status Init(const StoreOptions& options);
  Status CheckSchema();
  Status BumpIncarnation();
  Status LoadIncarnation();  // read-only: the last read-write open's
  rocksdb::ColumnFamilyHandle* Handle(Family f) const;

  std::string dir_;
  bool read_only_ = false;
  uint64_t incarnation_ = 0;
  std::string store_id_;
  bool previous_clean_ = false;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // indexed by Family

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> commits_{0};
  mutable Mutex error_mu_;
  Status error_ GUARDED_BY(error_mu_);
};

}  // namespace wtd

#endif  // WTD_STORE_STATE_STORE_H_
