// Key encodings: numeric order is byte order; composite keys round-trip and
// refuse parts that would break them.
#include "store/keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

namespace wtd {
namespace {

TEST(KeysTest, U64KeysSortBytewiseInNumericOrder) {
  std::vector<uint64_t> values = {0,
                                  1,
                                  255,
                                  256,
                                  65535,
                                  65536,
                                  1ull << 31,
                                  1ull << 32,
                                  (1ull << 56) - 1,
                                  1ull << 56,
                                  std::numeric_limits<uint64_t>::max()};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) values.push_back(rng() >> (rng() % 64));
  for (uint64_t a : values) {
    for (uint64_t b : values) {
      // std::string compares as unsigned char, as RocksDB's bytewise order does.
      EXPECT_EQ(a < b, EncodeU64Key(a) < EncodeU64Key(b)) << a << " vs " << b;
    }
    Result<uint64_t> back = DecodeU64Key(EncodeU64Key(a));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, a);
  }
}

TEST(KeysTest, U64KeyOfWrongSizeIsCorruption) {
  EXPECT_TRUE(DecodeU64Key("").status().IsCorruption());
  EXPECT_TRUE(DecodeU64Key("1234567").status().IsCorruption());
  EXPECT_TRUE(DecodeU64Key("123456789").status().IsCorruption());
}

TEST(KeysTest, RunKeyRoundTrips) {
  RunKey k{"/srv/my repo", "wt-1", "lint.yaml", std::string(40, 'e')};
  Result<RunKey> back = DecodeRunKey(EncodeRunKey(k));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, k);
}

TEST(KeysTest, RunKeyWithWrongPartCountIsCorruption) {
  EXPECT_TRUE(DecodeRunKey(std::string("a\0b\0c", 5)).status().IsCorruption());
  EXPECT_TRUE(DecodeRunKey(std::string("a\0b\0c\0d\0e", 9)).status().IsCorruption());
  EXPECT_TRUE(DecodeRunKey(std::string("a\0b\0c\0d\0"
                                       "1\0"
                                       "2",
                                       11))
                  .status()
                  .IsCorruption());
}

TEST(KeysTest, AnAttemptSeriesIsAFifthPartOnlyAboveZero) {
  RunKey k{"/srv/repo", "main", "build", std::string(40, 'a')};
  std::string four = EncodeRunKey(k);
  EXPECT_EQ(SplitKey(four).size(), 4u);  // series 0: the key every run had before series
  k.series = 12;
  std::string five = EncodeRunKey(k);
  EXPECT_EQ(five, four + std::string(1, '\0') + "12");
  Result<RunKey> back = DecodeRunKey(five);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, k);
  for (const char* bad : {"0", "012", "x", "-1", "4294967296", ""}) {
    EXPECT_TRUE(DecodeRunKey(four + std::string(1, '\0') + bad).status().IsCorruption()) << bad;
  }
  k.series = UINT32_MAX;
  EXPECT_EQ(DecodeRunKey(EncodeRunKey(k))->series, UINT32_MAX);
}

TEST(KeysTest, KeyPartWithNulOrEmptyIsRefused) {
  Status nul = CheckKeyPart("job", std::string("bu\0ild", 6));
  EXPECT_TRUE(nul.IsInvalidArgument());
  EXPECT_NE(nul.message().find("job"), std::string::npos) << nul.ToString();
  EXPECT_TRUE(CheckKeyPart("sha", "").IsInvalidArgument());
  EXPECT_TRUE(CheckKeyPart("repo", "/srv/repo").ok());
}

TEST(KeysTest, CursorPrefixMatchesOnlyItsOwnWorktree) {
  std::string prefix = CursorKeyPrefix("/r", "wt");
  std::string own = EncodeCursorKey("/r", "wt", "main");
  std::string longer_name = EncodeCursorKey("/r", "wt2", "main");
  EXPECT_EQ(own.compare(0, prefix.size(), prefix), 0);
  EXPECT_NE(longer_name.compare(0, prefix.size(), prefix), 0);
  std::vector<std::string_view> parts = SplitKey(own);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2], "main");
}

}  // namespace
}  // namespace wtd
