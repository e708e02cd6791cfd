#include "locks/lock_owner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wtd::locks {
namespace {

LockOwner SampleOwner() {
  LockOwner o;
  o.host = "ci-1";
  o.boot_id = "3f1c0a4e-1111-2222-3333-444455556666";
  o.pid = 4242;
  o.pid_start_time = 123456;
  o.incarnation = 7;
  o.run_id = 99;
  o.token = 12;
  o.acquired_at_ms = 1'700'000'000'000;
  o.expires_at_ms = 1'700'000'060'000;
  return o;
}

TEST(LockOwnerTest, EncodingIsDeterministicAndDocumented) {
  LockOwner o = SampleOwner();
  EXPECT_EQ(EncodeOwner(o),
            "{\"version\":1,\"host\":\"ci-1\",\"boot_id\":\"3f1c0a4e-1111-2222-3333-444455556666\","
            "\"pid\":4242,\"pid_start_time\":123456,\"incarnation\":7,\"run_id\":99,\"token\":12,"
            "\"acquired_at_ms\":1700000000000,\"expires_at_ms\":1700000060000}\n");
  EXPECT_EQ(EncodeOwner(o), EncodeOwner(SampleOwner()));
  o.job_pid = 5000;
  o.job_start_time = 777;
  EXPECT_NE(EncodeOwner(o).find(",\"job_pid\":5000,\"job_start_time\":777}"), std::string::npos);
}

TEST(LockOwnerTest, RoundTripsWithAndWithoutJob) {
  LockOwner o = SampleOwner();
  Result<LockOwner> back = ParseOwner(EncodeOwner(o));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, o);
  o.job_pid = 31337;
  o.job_start_time = 99999999999ull;
  o.token = UINT64_MAX;
  o.expires_at_ms = -5;
  back = ParseOwner(EncodeOwner(o));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, o);
}

TEST(LockOwnerTest, UnknownFieldsAreIgnored) {
  std::string text = EncodeOwner(SampleOwner());
  text.insert(1, "\"future\":{\"x\":[1,2]},");
  Result<LockOwner> back = ParseOwner(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, SampleOwner());
}

TEST(LockOwnerTest, NewerVersionIsRefusedAsUnreadable) {
  std::string text = EncodeOwner(SampleOwner());
  text.replace(text.find("\"version\":1"), 11, "\"version\":2");
  Result<LockOwner> back = ParseOwner(text);
  ASSERT_FALSE(back.ok());
  EXPECT_TRUE(back.status().code() == Status::Code::kNotSupported) << back.status().ToString();
  EXPECT_NE(back.status().message().find("version 2"), std::string::npos);
}

struct BadOwner {
  std::string from, to;  // replace `from` in the sample encoding by `to`
  std::string field;     // expected in the message
};

TEST(LockOwnerTest, StrictParseNamesTheField) {
  const std::vector<BadOwner> cases = {
      {"\"version\":1,", "", "'version' is missing"},
      {"\"version\":1", "\"version\":\"1\"", "'version' is not an integer"},
      {"\"version\":1", "\"version\":0", "'version'"},
      {"\"host\":\"ci-1\"", "\"host\":\"\"", "'host' is empty"},
      {"\"host\":\"ci-1\"", "\"host\":7", "'host' is not a string"},
      {"\"boot_id\":\"3f1c0a4e-1111-2222-3333-444455556666\",", "", "'boot_id' is missing"},
      {"\"pid\":4242", "\"pid\":-1", "'pid'"},
      {"\"pid\":4242", "\"pid\":0", "'pid' is not a positive pid"},
      {"\"pid\":4242", "\"pid\":4294967296", "'pid' is out of range"},
      {"\"pid\":4242", "\"pid\":42.5", "'pid' is not an integer"},
      {"\"pid_start_time\":123456", "\"pid_start_time\":-3", "'pid_start_time' is out of range"},
      {"\"incarnation\":7,", "", "'incarnation' is missing"},
      {"\"run_id\":99", "\"run_id\":null", "'run_id' is not an integer"},
      {"\"token\":12", "\"token\":true", "'token' is not an integer"},
      {"\"acquired_at_ms\":1700000000000,", "", "'acquired_at_ms' is missing"},
      {"\"expires_at_ms\":1700000060000", "\"expires_at_ms\":[]", "'expires_at_ms'"},
      {"\"token\":12", "\"token\":12,\"job_pid\":\"x\"", "'job_pid' is not an integer"},
  };
  std::string good = EncodeOwner(SampleOwner());
  for (const BadOwner& c : cases) {
    std::string text = good;
    size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    Result<LockOwner> r = ParseOwner(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.field), std::string::npos)
        << text << " -> " << r.status().message();
  }
  for (const std::string text : {"", "garbage", "[1,2]", "{", "\"x\"", "{} {}"}) {
    EXPECT_TRUE(ParseOwner(text).status().IsCorruption()) << text;
  }
}

TEST(LockOwnerTest, BlobIdDependsOnEveryByte) {
  LockOwner o = SampleOwner();
  Result<std::string> id = BlobIdOf(o);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->size(), 40u);
  EXPECT_EQ(*BlobIdOf(SampleOwner()), *id);
  o.token++;
  EXPECT_NE(*BlobIdOf(o), *id);
}

}  // namespace
}  // namespace wtd::locks
