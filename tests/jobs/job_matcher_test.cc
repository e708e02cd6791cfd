#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "jobs/job_spec.h"

namespace wtd {
namespace {

std::shared_ptr<const JobMatcher> MustCompile(std::string_view content) {
  Result<JobSpec> spec = ParseJobSpec("jobs/j.job", content);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  if (!spec.ok()) return nullptr;
  Result<std::shared_ptr<const JobMatcher>> m = JobMatcher::Compile(std::move(*spec));
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? *m : nullptr;
}

TEST(JobMatcherTest, DefaultsMatchEverything) {
  auto m = MustCompile("run = true\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->spec().name, "j");
  EXPECT_TRUE(m->MatchesBranch("main"));
  EXPECT_TRUE(m->MatchesBranch("feature/deep/x"));
  EXPECT_FALSE(m->NeedsPaths());
  EXPECT_TRUE(m->MatchesPaths({}));
  EXPECT_TRUE(m->MatchesPaths({"any/file"}));
  EXPECT_TRUE(m->MatchesMessage(""));
  EXPECT_TRUE(m->MatchesMessage("whatever\n\nbody"));
}

TEST(JobMatcherTest, BranchesMatchAnyListedGlob) {
  auto m = MustCompile("run = true\nbranches = main release/*\n");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->MatchesBranch("main"));
  EXPECT_TRUE(m->MatchesBranch("release/1.0"));
  EXPECT_TRUE(m->MatchesBranch("release/1/hotfix"));
  EXPECT_FALSE(m->MatchesBranch("mainline"));
  EXPECT_FALSE(m->MatchesBranch("feature/release/1"));
  EXPECT_FALSE(m->MatchesBranch(""));
}

TEST(JobMatcherTest, PathsMatchWhenAnyChangedPathMatchesAnyGlob) {
  auto m = MustCompile("run = true\npaths = docs/** *.md\n");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->NeedsPaths());
  EXPECT_TRUE(m->MatchesPaths({"src/a.cc", "docs/guide/x.txt"}));
  EXPECT_TRUE(m->MatchesPaths({"README.md"}));
  EXPECT_FALSE(m->MatchesPaths({"src/README.md"}));  // full-path matching, not base name
  EXPECT_FALSE(m->MatchesPaths({"src/a.cc", "docsx/a"}));
  EXPECT_FALSE(m->MatchesPaths({}));
}

TEST(JobMatcherTest, MessageRegexIsSearchedNotAnchored) {
  auto m = MustCompile("run = true\nmessage = (fix|feat)\\(ci\\)\n");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->MatchesMessage("fix(ci): repair"));
  EXPECT_TRUE(m->MatchesMessage("subject\n\nbody mentions feat(ci) here"));
  EXPECT_FALSE(m->MatchesMessage("fix(core): nothing"));
  EXPECT_FALSE(m->MatchesMessage(""));
}

TEST(JobMatcherTest, AnchoredMessageRegex) {
  auto m = MustCompile("run = true\nmessage = ^release: v[0-9]+$\n");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->MatchesMessage("release: v12"));
  EXPECT_FALSE(m->MatchesMessage("prep release: v12"));
  EXPECT_FALSE(m->MatchesMessage("release: v12x"));
}

TEST(JobMatcherTest, MessageSearchStopsAtNul) {
  auto m = MustCompile("run = true\nmessage = secret\n");
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->MatchesMessage(std::string("abc\0secret", 10)));
}

TEST(JobMatcherTest, CompileRejectsInvalidRegexInHandBuiltSpec) {
  JobSpec spec;
  spec.name = "j";
  spec.file = "jobs/j.job";
  spec.run = "true";
  spec.message = "a{2,1}";
  Result<std::shared_ptr<const JobMatcher>> m = JobMatcher::Compile(spec);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(m.status().IsInvalidArgument());
  EXPECT_EQ(m.status().message().rfind("jobs/j.job:0: message: ", 0), 0u) << m.status().message();
}

TEST(JobMatcherTest, SharedMatcherIsUsableFromManyThreads) {
  auto m = MustCompile("run = true\nmessage = ^fix\nbranches = main\npaths = src/**\n");
  ASSERT_TRUE(m);
  std::vector<std::thread> threads;
  std::vector<int> hits(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 500; ++n) {
        hits[i] += m->MatchesMessage("fix: x") && !m->MatchesMessage("nofix") &&
                   m->MatchesBranch("main") && m->MatchesPaths({"src/a/b.cc"});
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(hits, std::vector<int>(4, 500));
}

}  // namespace
}  // namespace wtd
