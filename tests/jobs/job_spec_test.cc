#include "jobs/job_spec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace wtd {
namespace {

using Env = std::vector<std::pair<std::string, std::string>>;
using Words = std::vector<std::string>;

JobSpec MustParse(std::string_view content, const std::string& file = "jobs/build.job") {
  Result<JobSpec> r = ParseJobSpec(file, content);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : JobSpec{};
}

// The error message of a parse that must fail with InvalidArgument.
std::string ErrorOf(std::string_view content, const std::string& file = "jobs/build.job") {
  Result<JobSpec> r = ParseJobSpec(file, content);
  if (r.ok()) return "<parsed>";
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  return r.status().message();
}

TEST(JobSpecTest, OnlyRunGivesDefaults) {
  JobSpec s = MustParse("run = make\n");
  EXPECT_EQ(s.name, "build");
  EXPECT_EQ(s.file, "jobs/build.job");
  EXPECT_EQ(s.run, "make");
  EXPECT_EQ(s.branches, Words{"*"});
  EXPECT_TRUE(s.paths.empty());
  EXPECT_EQ(s.message, "");
  EXPECT_EQ(s.timeout_s, 3600);
  EXPECT_EQ(s.max_attempts, 3u);
  EXPECT_EQ(s.retry_backoff_s, 10);
  EXPECT_TRUE(s.env.empty());
}

TEST(JobSpecTest, ReadsEveryKey) {
  JobSpec s = MustParse(
      "run = make test && echo 'a = b'\n"
      "branches = main  release/*\tfeature/**\n"
      "paths = src/** docs/*.md\n"
      "message = ^(fix|feat): #[0-9]+\n"
      "timeout_s = 120\n"
      "max_attempts = 5\n"
      "retry_backoff_s = 0\n"
      "env.CC = clang-14\n"
      "env.EMPTY =\n");
  EXPECT_EQ(s.run, "make test && echo 'a = b'");
  EXPECT_EQ(s.branches, (Words{"main", "release/*", "feature/**"}));
  EXPECT_EQ(s.paths, (Words{"src/**", "docs/*.md"}));
  EXPECT_EQ(s.message, "^(fix|feat): #[0-9]+");
  EXPECT_EQ(s.timeout_s, 120);
  EXPECT_EQ(s.max_attempts, 5u);
  EXPECT_EQ(s.retry_backoff_s, 0);
  EXPECT_EQ(s.env, (Env{{"CC", "clang-14"}, {"EMPTY", ""}}));
}

TEST(JobSpecTest, HeaderExampleParses) {
  JobSpec s = MustParse(
      "# Runs the tests on main and release branches when code changes.\n"
      "[job]\n"
      "run = make test\n"
      "branches = main release/*\n"
      "paths = src/** **/*.md\n"
      "message = ^(fix|feat)\n"
      "timeout_s = 600\n"
      "max_attempts = 2\n"
      "retry_backoff_s = 30\n"
      "env.CC = clang\n");
  EXPECT_EQ(s.run, "make test");
  EXPECT_EQ(s.paths, (Words{"src/**", "**/*.md"}));
  EXPECT_EQ(s.timeout_s, 600);
  EXPECT_EQ(s.max_attempts, 2u);
  EXPECT_EQ(s.retry_backoff_s, 30);
  EXPECT_EQ(s.env, (Env{{"CC", "clang"}}));
}

TEST(JobSpecTest, ReadmeExampleParsesAsDocumented) {
  std::ifstream in(WTD_README);
  ASSERT_TRUE(in) << WTD_README;
  std::string readme((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t start = readme.find("```ini\n");
  ASSERT_NE(start, std::string::npos) << "README.md has no ```ini job example";
  start += 7;
  size_t end = readme.find("```", start);
  JobSpec s = MustParse(readme.substr(start, end - start));
  EXPECT_EQ(s.run, "make test");
  EXPECT_EQ(s.branches, (Words{"main", "release/*"}));
  EXPECT_EQ(s.paths, (Words{"src/**", "docs/*.md"}));
  EXPECT_EQ(s.message, "^(feat|fix)");
  EXPECT_EQ(s.timeout_s, 600);
  EXPECT_EQ(s.max_attempts, 2);
  EXPECT_EQ(s.retry_backoff_s, 30);
  EXPECT_EQ(s.env, (Env{{"MAKEFLAGS", "-j2"}}));
}

TEST(JobSpecTest, NameIsBaseNameWithoutExtension) {
  EXPECT_EQ(MustParse("run = x", "ci/jobs/lint-v2.0_a.job").name, "lint-v2.0_a");
  EXPECT_EQ(MustParse("run = x", "top.job").name, "top");
}

TEST(JobSpecTest, SkipsCommentsBlankLinesAndLeadingSection) {
  JobSpec s = MustParse(
      "# a comment\n"
      "\n"
      "; another = comment\n"
      "[job]\n"
      "   \t\n"
      "  # indented comment\n"
      "run = make # not a comment\n");
  EXPECT_EQ(s.run, "make # not a comment");
}

TEST(JobSpecTest, AcceptsCrlfLineEndingsAndBom) {
  JobSpec s = MustParse("\xEF\xBB\xBF[job]\r\nrun = make\r\nbranches = main dev\r\n");
  EXPECT_EQ(s.run, "make");
  EXPECT_EQ(s.branches, (Words{"main", "dev"}));
}

TEST(JobSpecTest, AcceptsLastLineWithoutNewline) {
  EXPECT_EQ(MustParse("timeout_s = 7\nrun = true").run, "true");
}

TEST(JobSpecTest, KeepsEnvInFileOrder) {
  JobSpec s = MustParse("env.Z = 1\nrun = x\nenv.A = 2\nenv._m9 = a=b\n");
  EXPECT_EQ(s.env, (Env{{"Z", "1"}, {"A", "2"}, {"_m9", "a=b"}}));
}

TEST(JobSpecTest, IntegersAtBoundsParse) {
  JobSpec lo = MustParse("run = x\ntimeout_s = 1\nmax_attempts = 1\nretry_backoff_s = 0\n");
  EXPECT_EQ(lo.timeout_s, 1);
  EXPECT_EQ(lo.max_attempts, 1u);
  EXPECT_EQ(lo.retry_backoff_s, 0);
  JobSpec hi =
      MustParse("run = x\ntimeout_s = 604800\nmax_attempts = 100\nretry_backoff_s = 86400\n");
  EXPECT_EQ(hi.timeout_s, 604800);
  EXPECT_EQ(hi.max_attempts, 100u);
  EXPECT_EQ(hi.retry_backoff_s, 86400);
}

TEST(JobSpecTest, IntegersJustOutsideBoundsFail) {
  EXPECT_EQ(ErrorOf("run = x\ntimeout_s = 0\n"),
            "jobs/build.job:2: timeout_s: \"0\" is out of range [1, 604800]");
  EXPECT_EQ(ErrorOf("run = x\ntimeout_s = 604801\n"),
            "jobs/build.job:2: timeout_s: \"604801\" is out of range [1, 604800]");
  EXPECT_EQ(ErrorOf("max_attempts = 0\nrun = x\n"),
            "jobs/build.job:1: max_attempts: \"0\" is out of range [1, 100]");
  EXPECT_EQ(ErrorOf("max_attempts = 101\n"),
            "jobs/build.job:1: max_attempts: \"101\" is out of range [1, 100]");
  EXPECT_EQ(ErrorOf("retry_backoff_s = -1\n"),
            "jobs/build.job:1: retry_backoff_s: \"-1\" is out of range [0, 86400]");
  EXPECT_EQ(ErrorOf("retry_backoff_s = 86401\n"),
            "jobs/build.job:1: retry_backoff_s: \"86401\" is out of range [0, 86400]");
  EXPECT_EQ(ErrorOf("timeout_s = 99999999999999999999999\n"),
            "jobs/build.job:1: timeout_s: \"99999999999999999999999\" is out of range "
            "[1, 604800]");
}

TEST(JobSpecTest, MalformedIntegersFail) {
  EXPECT_EQ(ErrorOf("run = x\ntimeout_s = soon\n"),
            "jobs/build.job:2: timeout_s: \"soon\" is not an integer");
  EXPECT_EQ(ErrorOf("timeout_s =\n"), "jobs/build.job:1: timeout_s: \"\" is not an integer");
  EXPECT_EQ(ErrorOf("timeout_s = +5\n"), "jobs/build.job:1: timeout_s: \"+5\" is not an integer");
  EXPECT_EQ(ErrorOf("timeout_s = 10s\n"),
            "jobs/build.job:1: timeout_s: \"10s\" has trailing characters after the integer");
  EXPECT_EQ(ErrorOf("max_attempts = 3 4\n"),
            "jobs/build.job:1: max_attempts: \"3 4\" has trailing characters after the integer");
  EXPECT_EQ(ErrorOf("retry_backoff_s = 0x10\n"),
            "jobs/build.job:1: retry_backoff_s: \"0x10\" has trailing characters after the "
            "integer");
}

TEST(JobSpecTest, MissingRunIsNotLineSpecific) {
  EXPECT_EQ(ErrorOf(""), "jobs/build.job:0: run: required key missing");
  EXPECT_EQ(ErrorOf("# only a comment\nbranches = main\n"),
            "jobs/build.job:0: run: required key missing");
  EXPECT_EQ(ErrorOf("run =   \n"), "jobs/build.job:1: run: must not be empty");
}

TEST(JobSpecTest, UnknownAndDuplicateKeysFail) {
  EXPECT_EQ(ErrorOf("run = x\ncmd = make\n"), "jobs/build.job:2: cmd: unknown key");
  EXPECT_EQ(ErrorOf("Run = x\n"), "jobs/build.job:1: Run: unknown key");
  EXPECT_EQ(ErrorOf("run = x\n\nrun = y\n"),
            "jobs/build.job:3: run: duplicate key (first set on line 1)");
  EXPECT_EQ(ErrorOf("run = x\nenv.A = 1\nenv.A = 2\n"),
            "jobs/build.job:3: env.A: duplicate key (first set on line 2)");
}

TEST(JobSpecTest, LinesWithoutKeyValueFail) {
  EXPECT_EQ(ErrorOf("run = x\nmake all\n"),
            "jobs/build.job:2: -: expected \"key = value\", got \"make all\"");
  EXPECT_EQ(ErrorOf("= x\n"), "jobs/build.job:1: -: empty key before '='");
}

TEST(JobSpecTest, OnlyOneLeadingJobSectionIsAllowed) {
  EXPECT_EQ(ErrorOf("[jobs]\nrun = x\n"),
            "jobs/build.job:1: -: unknown section [jobs] (only [job])");
  EXPECT_EQ(ErrorOf("run = x\n[job]\n"),
            "jobs/build.job:2: -: section [job] may appear only once, before any key");
  EXPECT_EQ(ErrorOf("[job]\n[job]\nrun = x\n"),
            "jobs/build.job:2: -: section [job] may appear only once, before any key");
  EXPECT_EQ(ErrorOf("[job\nrun = x\n"), "jobs/build.job:1: -: unterminated section header");
}

TEST(JobSpecTest, EmptyPatternListsFail) {
  EXPECT_EQ(ErrorOf("run = x\nbranches =\n"),
            "jobs/build.job:2: branches: needs at least one pattern");
  EXPECT_EQ(ErrorOf("run = x\npaths = \t \n"),
            "jobs/build.job:2: paths: needs at least one pattern");
}

TEST(JobSpecTest, InvalidRegexFails) {
  std::string e = ErrorOf("run = x\nmessage = (unclosed\n");
  EXPECT_EQ(e.rfind("jobs/build.job:2: message: invalid regular expression: ", 0), 0u) << e;
  EXPECT_EQ(MustParse("run = x\nmessage =\n").message, "");
}

TEST(JobSpecTest, HugeRepetitionRegexFailsWithoutCompiling) {
  // "too large" is decided before regcomp, which would take minutes here.
  EXPECT_EQ(ErrorOf("run = x\nmessage = ((a{1000}){1000}){1000}\n"),
            "jobs/build.job:2: message: regular expression is too large (more than 500 "
            "elements once repetitions are expanded)");
  EXPECT_EQ(ErrorOf("run = x\nmessage = ^fix++\n"),
            "jobs/build.job:2: message: repetition operator '+' at offset 5 follows another "
            "repetition (write one operator, or group: (a+)*)");
  EXPECT_EQ(MustParse("run = x\nmessage = ^[0-9]{4}-[0-9]{2}-[0-9]{2}$\n").run, "x");
}

TEST(JobSpecTest, BadEnvNamesFail) {
  const std::string what = "environment variable name must match [A-Za-z_][A-Za-z0-9_]*";
  EXPECT_EQ(ErrorOf("env.1X = a\n"), "jobs/build.job:1: env.1X: " + what);
  EXPECT_EQ(ErrorOf("env. = a\n"), "jobs/build.job:1: env.: " + what);
  EXPECT_EQ(ErrorOf("env.A-B = a\n"), "jobs/build.job:1: env.A-B: " + what);
  EXPECT_EQ(ErrorOf("run = x\nenv.WTD_SHA = a\n"),
            "jobs/build.job:2: env.WTD_SHA: the WTD_ prefix is reserved for variables wtd sets");
  EXPECT_EQ(MustParse("run = x\nenv.wtd_x = a\nenv.WTDX = b\n").env.size(), 2u);
}

TEST(JobSpecTest, BadJobFileNamesFail) {
  EXPECT_EQ(ErrorOf("run = x", "jobs/.hidden.job"),
            "jobs/.hidden.job:0: -: job name \".hidden\" must match [A-Za-z0-9._-]+ and not "
            "start with '.'");
  EXPECT_EQ(ErrorOf("run = x", "jobs/.job"),
            "jobs/.job:0: -: job name \"\" must match [A-Za-z0-9._-]+ and not start with '.'");
  EXPECT_EQ(ErrorOf("run = x", "jobs/a b.job"),
            "jobs/a b.job:0: -: job name \"a b\" must match [A-Za-z0-9._-]+ and not start "
            "with '.'");
  EXPECT_EQ(ErrorOf("run = x", "jobs/build.yml"),
            "jobs/build.yml:0: -: job file name \"build.yml\" does not end in \".job\"");
}

TEST(JobSpecTest, OversizedFileFails) {
  std::string big = "run = x\n" + std::string(kMaxJobFileBytes, '#');
  EXPECT_EQ(ErrorOf(big), "jobs/build.job:0: -: file is 65544 bytes, more than the limit of 65536");
  std::string fits = "run = x\n#" + std::string(kMaxJobFileBytes - 9, '#');
  EXPECT_EQ(MustParse(fits).run, "x");
}

TEST(JobSpecTest, NulByteFails) {
  EXPECT_EQ(ErrorOf(std::string("run = x\nenv.A = a\0b\n", 20)),
            "jobs/build.job:2: -: line contains a NUL byte");
}

TEST(JobSpecTest, FirstErrorWins) {
  EXPECT_EQ(ErrorOf("bogus = 1\ntimeout_s = 0\n"), "jobs/build.job:1: bogus: unknown key");
  EXPECT_EQ(ErrorOf("bogus = 1", "jobs/.x.job").rfind("jobs/.x.job:0: -: job name", 0), 0u);
}

TEST(JobSpecTest, ControlBytesInValuesAreEscapedInMessages) {
  EXPECT_EQ(ErrorOf("timeout_s = 1\x01\n"),
            "jobs/build.job:1: timeout_s: \"1\\x01\" has trailing characters after the integer");
}

TEST(JobSpecTest, ControlBytesAndLongKeysAreEscapedInMessages) {
  EXPECT_EQ(ErrorOf("run = x\n\x1b[31m = 1\n"), "jobs/build.job:2: \\x1b[31m: unknown key");
  EXPECT_EQ(ErrorOf(std::string(100, 'k') + " = 1\n"),
            "jobs/build.job:1: " + std::string(64, 'k') + "...: unknown key");
  EXPECT_EQ(ErrorOf("run = x\n", "jobs/\n.job"),
            "jobs/\\x0a.job:0: -: job name \"\\x0a\" must match [A-Za-z0-9._-]+ and not start with "
            "'.'");
}

}  // namespace
}  // namespace wtd
