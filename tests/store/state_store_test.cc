// StateStore: atomic batches, reopen, incarnations, the clean-shutdown
// marker, schema checks, damaged data and read-only opens, on real RocksDB
// directories.
#include "store/state_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"
#include "runs/run_store.h"
#include "store/keys.h"
#include "store/records.h"

namespace wtd {
namespace {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xFF);
  return out;
}

class StateStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<StateStore> Open(bool read_only = false) {
    StoreOptions o;
    o.dir = dir_.Sub("db");
    o.read_only = read_only;
    Result<std::unique_ptr<StateStore>> s = StateStore::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static std::string Value(const StateStore& s, Family f, std::string_view key) {
    Result<std::string> v = s.Get(f, key);
    return v.ok() ? *v : "<" + v.status().ToString() + ">";
  }

  TempDir dir_;
};

TEST_F(StateStoreTest, BatchAcrossFamiliesIsAppliedWhole) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  WriteBatch first;
  first.Put(Family::kRuns, "r", "gone soon");
  ASSERT_TRUE(s->Commit(first).ok());

  WriteBatch b;
  b.Put(Family::kRuns, "a", "1");
  b.Put(Family::kActive, "a", "");
  b.Put(Family::kEvents, "e", "ev");
  b.Delete(Family::kRuns, "r");
  b.Put(Family::kRuns, "a", "2");  // later ops in a batch win
  ASSERT_TRUE(s->Commit(b).ok());
  EXPECT_EQ(Value(*s, Family::kRuns, "a"), "2");
  EXPECT_EQ(Value(*s, Family::kActive, "a"), "");
  EXPECT_EQ(Value(*s, Family::kEvents, "e"), "ev");
  EXPECT_TRUE(s->Get(Family::kRuns, "r").status().IsNotFound());
  // Families are separate key spaces.
  EXPECT_TRUE(s->Get(Family::kCursors, "a").status().IsNotFound());
}

TEST_F(StateStoreTest, NotFoundNamesFamilyAndKey) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  Status st = s->Get(Family::kRunKeys, std::string("repo\0job", 8)).status();
  EXPECT_TRUE(st.IsNotFound());
  EXPECT_NE(st.message().find("run_keys/repo/job"), std::string::npos) << st.ToString();
  Status run = s->Get(Family::kRuns, EncodeU64Key(5)).status();
  EXPECT_EQ(run.message(), "runs/5 not found");
}

TEST_F(StateStoreTest, ReopenKeepsDataAndBumpsIncarnation) {
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->incarnation(), 1u);
    WriteBatch b;
    for (int i = 0; i < 100; ++i) b.Put(Family::kRuns, EncodeU64Key(i), "v" + std::to_string(i));
    ASSERT_TRUE(s->Commit(b).ok());
  }
  for (uint64_t expected = 2; expected <= 4; ++expected) {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->incarnation(), expected);
    EXPECT_EQ(Value(*s, Family::kRuns, EncodeU64Key(42)), "v42");
    int n = 0;
    ASSERT_TRUE(s->Scan(Family::kRuns, "", [&](std::string_view, std::string_view) {
                   ++n;
                   return true;
                 }).ok());
    EXPECT_EQ(n, 100);
  }
}

TEST_F(StateStoreTest, PreviousShutdownCleanOnlyAfterMarkCleanShutdown) {
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    EXPECT_FALSE(s->previous_shutdown_clean());  // nothing before it
    ASSERT_TRUE(s->MarkCleanShutdown().ok());
  }
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    EXPECT_TRUE(s->previous_shutdown_clean());
    // Closed without the marker: a crash, as far as the next open knows.
  }
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->previous_shutdown_clean());
}

TEST_F(StateStoreTest, NewerSchemaIsRefusedNamingDirectoryAndVersions) {
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    WriteBatch b;
    b.Put(Family::kMeta, "schema", EncodeU64Key(kSchemaVersion + 1));
    ASSERT_TRUE(s->Commit(b).ok());
  }
  StoreOptions o{dir_.Sub("db")};
  Result<std::unique_ptr<StateStore>> s = StateStore::Open(o);
  ASSERT_FALSE(s.ok());
  const std::string& msg = s.status().message();
  EXPECT_EQ(s.status().code(), Status::Code::kNotSupported) << s.status().ToString();
  EXPECT_NE(msg.find(dir_.Sub("db")), std::string::npos) << msg;
  EXPECT_NE(msg.find("schema version " + std::to_string(kSchemaVersion + 1)), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("version " + std::to_string(kSchemaVersion) + " this wtd"), std::string::npos)
      << msg;
}

// Returns the path of the one .sst file under `dir` holding `needle`.
std::string FindSstHolding(const std::string& dir, const std::string& needle, size_t* offset) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".sst") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    size_t at = ss.str().find(needle);
    if (at != std::string::npos) {
      *offset = at;
      return entry.path();
    }
  }
  return "";
}

TEST_F(StateStoreTest, DamagedBlockOnDiskIsCorruptionNamingFamilyAndKeyOthersStillRead) {
  // Values larger than a block, so each lands in its own checksummed block;
  // random, so they are stored uncompressed and can be found in the file.
  std::string damaged_value = RandomBytes(10000, 1);
  std::string intact_value = RandomBytes(10000, 2);
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    WriteBatch b;
    b.Put(Family::kRuns, "damaged", damaged_value);
    b.Put(Family::kRuns, "intact", intact_value);
    b.Put(Family::kCursors, "other", "family");
    ASSERT_TRUE(s->Commit(b).ok());
  }
  { ASSERT_NE(Open(), nullptr); }  // recovery writes the WAL's data to .sst files
  size_t offset = 0;
  std::string sst = FindSstHolding(dir_.Sub("db"), damaged_value.substr(0, 64), &offset);
  ASSERT_FALSE(sst.empty()) << "value not found in any .sst file";
  {
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset + 5000));
    f.put(static_cast<char>(damaged_value[5000] ^ 0x20));
  }
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  Result<std::string> bad = s->Get(Family::kRuns, "damaged");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsCorruption()) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("runs/damaged"), std::string::npos)
      << bad.status().ToString();
  EXPECT_EQ(Value(*s, Family::kRuns, "intact"), intact_value);
  EXPECT_EQ(Value(*s, Family::kCursors, "other"), "family");
}

TEST_F(StateStoreTest, DamagedRecordIsCorruptionNamingTheRunOthersStillRead) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  FakeClock clock;
  RunStore runs(s.get(), &clock);
  ASSERT_TRUE(runs.Init().ok());
  NewRun a, b;
  a.key = RunKey{"/r", "main", "a", std::string(40, 'a')};
  b.key = RunKey{"/r", "main", "b", std::string(40, 'b')};
  Result<std::vector<wtd::Run>> made = runs.Enqueue({a, b}, std::nullopt);
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(made->size(), 2u);
  std::string value = *s->Get(Family::kRuns, EncodeU64Key(2));
  value[value.size() / 2] ^= 0x04;
  WriteBatch w;
  w.Put(Family::kRuns, EncodeU64Key(2), value);
  ASSERT_TRUE(s->Commit(w).ok());

  Result<wtd::Run> bad = runs.Get(2);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsCorruption());
  EXPECT_NE(bad.status().message().find("runs/2"), std::string::npos) << bad.status().ToString();
  Result<wtd::Run> good = runs.Get(1);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->key.job, "a");
  // Listing refuses to skip the damaged run silently.
  EXPECT_TRUE(runs.ListActive().status().IsCorruption());
}

TEST_F(StateStoreTest, ReadOnlyOpenReadsRefusesWritesAndLeavesIncarnation) {
  std::unique_ptr<StateStore> writer = Open();
  ASSERT_NE(writer, nullptr);
  WriteBatch b;
  b.Put(Family::kCursors, "c", "x");
  ASSERT_TRUE(writer->Commit(b).ok());
  {
    // Alongside the writer, as wtctl's direct mode runs beside the daemon.
    std::unique_ptr<StateStore> ro = Open(/*read_only=*/true);
    ASSERT_NE(ro, nullptr);
    EXPECT_TRUE(ro->read_only());
    EXPECT_EQ(Value(*ro, Family::kCursors, "c"), "x");
    Status st = ro->Commit(b);
    EXPECT_TRUE(st.IsFailedPrecondition());
    EXPECT_NE(st.message().find("read-only"), std::string::npos) << st.ToString();
    EXPECT_TRUE(ro->sticky_error().ok());  // refusing is not failing
  }
  writer.reset();
  std::unique_ptr<StateStore> ro = Open(/*read_only=*/true);
  ASSERT_NE(ro, nullptr);
  EXPECT_EQ(ro->incarnation(), 1u);  // the writer's, not bumped
  ro.reset();
  std::unique_ptr<StateStore> again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->incarnation(), 2u);  // read-only opens do not count
}

// A store written before the `slots` family existed, as an older wtd left
// it: read-only (wtctl beside no daemon) it opens and reads the family as
// empty; read-write (the next daemon) it gains the family.
TEST_F(StateStoreTest, AStoreWithoutANewerFamilyOpensReadOnlyAndGainsItReadWrite) {
  {
    std::unique_ptr<StateStore> writer = Open();
    ASSERT_NE(writer, nullptr);
    WriteBatch b;
    b.Put(Family::kCursors, "c", "x");
    ASSERT_TRUE(writer->Commit(b).ok());
  }
  {
    // Drop the family with RocksDB itself.
    rocksdb::DBOptions db_opts;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(db_opts, dir_.Sub("db"), &names).ok());
    ASSERT_NE(std::find(names.begin(), names.end(), "slots"), names.end());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const std::string& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(db_opts, dir_.Sub("db"), descs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "slots") {
        ASSERT_TRUE(db->DropColumnFamily(handles[i]).ok());
      }
    }
    for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h);
    ASSERT_TRUE(db->Close().ok());
  }
  {
    std::unique_ptr<StateStore> ro = Open(/*read_only=*/true);
    ASSERT_NE(ro, nullptr);
    EXPECT_EQ(Value(*ro, Family::kCursors, "c"), "x");
    Result<std::string> slot = ro->Get(Family::kSlots, "wtd-1");
    EXPECT_TRUE(slot.status().IsNotFound()) << slot.status().ToString();
    int seen = 0;
    EXPECT_TRUE(ro->Scan(Family::kSlots, "", [&](std::string_view, std::string_view) {
                    ++seen;
                    return true;
                  }).ok());
    EXPECT_EQ(seen, 0);
    Result<std::string> last = ro->LastKey(Family::kSlots);
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    EXPECT_EQ(*last, "");
    EXPECT_EQ(ro->EstimateKeys(Family::kSlots), 0u);
  }
  std::unique_ptr<StateStore> rw = Open();
  ASSERT_NE(rw, nullptr);
  WriteBatch b;
  b.Put(Family::kSlots, "wtd-1", "s");
  ASSERT_TRUE(rw->Commit(b).ok());
  EXPECT_EQ(Value(*rw, Family::kSlots, "wtd-1"), "s");
  EXPECT_EQ(Value(*rw, Family::kCursors, "c"), "x");
}

TEST_F(StateStoreTest, TheStoreIdIsDrawnOnceAndKeptAcrossOpens) {
  std::string id;
  {
    std::unique_ptr<StateStore> s = Open();
    ASSERT_NE(s, nullptr);
    id = s->store_id();
  }
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_EQ(Open()->store_id(), id);
  EXPECT_EQ(Open(/*read_only=*/true)->store_id(), id);
  // A store from before ids gets one at its next read-write open.
  {
    std::unique_ptr<StateStore> s = Open();
    WriteBatch b;
    b.Delete(Family::kMeta, "store_id");
    ASSERT_TRUE(s->Commit(b).ok());
  }
  EXPECT_EQ(Open(/*read_only=*/true)->store_id(), "");
  std::string fresh = Open()->store_id();
  EXPECT_EQ(fresh.size(), 32u);
  EXPECT_NE(fresh, id);
  EXPECT_EQ(Open()->store_id(), fresh);
}

TEST_F(StateStoreTest, ReadOnlyOpenOfMissingStoreFailsNamingIt) {
  StoreOptions o{dir_.Sub("nowhere")};
  o.read_only = true;
  o.create_if_missing = false;
  Result<std::unique_ptr<StateStore>> s = StateStore::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(dir_.Sub("nowhere")), std::string::npos)
      << s.status().ToString();
}

TEST_F(StateStoreTest, ScanHonoursPrefixAndDirectionAndLastKey) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s->LastKey(Family::kEvents), "");
  WriteBatch b;
  for (std::string k : std::vector<std::string>{"a/1", "a/2", "a/3", "b/1", "a\xff", "a"}) {
    b.Put(Family::kEvents, k, k);
  }
  ASSERT_TRUE(s->Commit(b).ok());
  auto collect = [&](std::string_view prefix, bool reverse) {
    std::vector<std::string> keys;
    EXPECT_TRUE(s->Scan(
                     Family::kEvents, prefix,
                     [&](std::string_view k, std::string_view) {
                       keys.emplace_back(k);
                       return true;
                     },
                     reverse)
                    .ok());
    return keys;
  };
  EXPECT_EQ(collect("a/", false), (std::vector<std::string>{"a/1", "a/2", "a/3"}));
  EXPECT_EQ(collect("a/", true), (std::vector<std::string>{"a/3", "a/2", "a/1"}));
  EXPECT_EQ(collect(std::string("a\xff", 2), true), (std::vector<std::string>{"a\xff"}));
  EXPECT_EQ(*s->LastKey(Family::kEvents), "b/1");
}

TEST_F(StateStoreTest, ConcurrentCommitsAllLand) {
  std::unique_ptr<StateStore> s = Open();
  ASSERT_NE(s, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        WriteBatch b;
        b.Put(Family::kRuns, EncodeU64Key(t * 100 + i), "x");
        EXPECT_TRUE(s->Commit(b).ok());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int n = 0;
  ASSERT_TRUE(s->Scan(Family::kRuns, "", [&](std::string_view, std::string_view) {
                 ++n;
                 return true;
               }).ok());
  EXPECT_EQ(n, 100);
}

}  // namespace
}  // namespace wtd
