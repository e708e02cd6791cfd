#include "settle.h"

#include <rocksdb/db.h>

#include <memory>
#include <vector>

namespace wtd {

std::string SettleStore(const std::string& dir) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names);
  if (!s.ok()) return "list families of " + dir + ": " + s.ToString();
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::Open(rocksdb::DBOptions(), dir, descs, &handles, &raw);
  if (!s.ok()) return "open " + dir + ": " + s.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string error;
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    s = db->Flush(rocksdb::FlushOptions(), h);
    if (s.ok()) s = db->CompactRange(rocksdb::CompactRangeOptions(), h, nullptr, nullptr);
    if (!s.ok() && error.empty()) error = "settle " + dir + ": " + s.ToString();
    db->DestroyColumnFamilyHandle(h);
  }
  return error;
}

}  // namespace wtd
