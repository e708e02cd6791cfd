// The files a supervisor leaves: the exit record and the job group.
#include "exec/exit_record.h"

#include "base/file_util.h"
#include "fakes/temp_dir.h"
#include "gtest/gtest.h"

namespace wtd {
namespace {

ExitRecord Sample() {
  ExitRecord r;
  r.run_id = 42;
  r.attempt = 3;
  r.outcome.exit_code = -1;
  r.outcome.term_signal = 9;
  r.outcome.timed_out = true;
  r.outcome.log_bytes = 1234;
  r.outcome.log_truncated = true;
  r.outcome.duration_ms = 5000;
  r.outcome.error = "a \"quoted\"\nmessage";
  r.started_at_ms = 1'700'000'000'000;
  r.ended_at_ms = 1'700'000'005'000;
  return r;
}

void ExpectSame(const ExitRecord& a, const ExitRecord& b) {
  EXPECT_EQ(a.run_id, b.run_id);
  EXPECT_EQ(a.attempt, b.attempt);
  EXPECT_EQ(a.outcome.exit_code, b.outcome.exit_code);
  EXPECT_EQ(a.outcome.term_signal, b.outcome.term_signal);
  EXPECT_EQ(a.outcome.timed_out, b.outcome.timed_out);
  EXPECT_EQ(a.outcome.stopped, b.outcome.stopped);
  EXPECT_EQ(a.outcome.log_bytes, b.outcome.log_bytes);
  EXPECT_EQ(a.outcome.log_truncated, b.outcome.log_truncated);
  EXPECT_EQ(a.outcome.duration_ms, b.outcome.duration_ms);
  EXPECT_EQ(a.outcome.error, b.outcome.error);
  EXPECT_EQ(a.started_at_ms, b.started_at_ms);
  EXPECT_EQ(a.ended_at_ms, b.ended_at_ms);
}

TEST(ExitRecordTest, RoundTripsAsOneLine) {
  std::string text = EncodeExitRecord(Sample());
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  EXPECT_EQ(text.rfind("{\"format\":\"wtd-exit\",\"version\":1,", 0), 0u) << text;
  Result<ExitRecord> back = DecodeExitRecord(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(*back, Sample());
}

TEST(ExitRecordTest, EveryCutOfTheFileIsRefused) {
  std::string text = EncodeExitRecord(Sample());
  for (size_t n = 0; n + 1 < text.size(); ++n) {
    Result<ExitRecord> cut = DecodeExitRecord(text.substr(0, n));
    EXPECT_FALSE(cut.ok()) << n;
    EXPECT_TRUE(cut.status().IsCorruption()) << n << ": " << cut.status().ToString();
  }
}

TEST(ExitRecordTest, GarbageAndWrongFieldsAreNamed) {
  EXPECT_TRUE(DecodeExitRecord("\x01\x02garbage").status().IsCorruption());
  EXPECT_TRUE(DecodeExitRecord("[1,2]").status().IsCorruption());
  EXPECT_NE(DecodeExitRecord("{\"format\":\"other\",\"version\":1}")
                .status()
                .message()
                .find("format 'other'"),
            std::string::npos);
  EXPECT_EQ(DecodeExitRecord("{\"format\":\"wtd-exit\",\"version\":9}").status().code(),
            Status::Code::kNotSupported);
  std::string text = EncodeExitRecord(Sample());
  std::string wrong = text;
  wrong.replace(wrong.find("\"exit_code\":-1"), 14, "\"exit_code\":\"x\"");
  Result<ExitRecord> r = DecodeExitRecord(wrong);
  EXPECT_NE(r.status().message().find("'exit_code'"), std::string::npos) << r.status().ToString();
  std::string missing = text;
  missing.replace(missing.find("\"stopped\":false,"), 16, "");
  r = DecodeExitRecord(missing);
  EXPECT_NE(r.status().message().find("missing field 'stopped'"), std::string::npos)
      << r.status().ToString();
}

TEST(ExitRecordTest, ReadNamesAMissingFileAsNoneAndAForeignOneAsCorrupt) {
  TempDir dir;
  std::string path = dir.Sub("42.exit");
  Result<std::optional<ExitRecord>> none = ReadExitRecord(path, 42, 3);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(WriteExitRecord(path, Sample()).ok());
  Result<std::optional<ExitRecord>> got = ReadExitRecord(path, 42, 3);
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status().ToString();
  ExpectSame(**got, Sample());
  // An earlier attempt's file is not this attempt's outcome.
  Result<std::optional<ExitRecord>> stale = ReadExitRecord(path, 42, 4);
  EXPECT_TRUE(stale.status().IsCorruption());
  EXPECT_NE(stale.status().message().find("attempt 3, not of run 42 attempt 4"), std::string::npos)
      << stale.status().ToString();
  ASSERT_TRUE(WriteFileAtomic(path, "{\"format\":\"wtd-ex").ok());  // torn
  Result<std::optional<ExitRecord>> torn = ReadExitRecord(path, 42, 3);
  EXPECT_TRUE(torn.status().IsCorruption());
  EXPECT_NE(torn.status().message().find(path), std::string::npos);
}

TEST(ExitRecordTest, JobGroupRoundTripsAndRefusesGarbage) {
  JobGroup g{4242, 987654321};
  Result<JobGroup> back = DecodeJobGroup(EncodeJobGroup(g));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->pgid, 4242);
  EXPECT_EQ(back->start_time, 987654321u);
  for (const char* bad : {"", "4242", "4242 ", "4242 1", "x 1\n", "1 5\n", "-5 1\n", "42 1\nmore",
                          "848 03625\n", "0848 3625\n"}) {
    EXPECT_TRUE(DecodeJobGroup(bad).status().IsCorruption()) << bad;
  }
  TempDir dir;
  Result<std::optional<JobGroup>> none = ReadJobGroup(dir.Sub("1.pgid"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

}  // namespace
}  // namespace wtd
