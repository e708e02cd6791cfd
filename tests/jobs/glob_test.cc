#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "jobs/job_spec.h"

namespace wtd {
namespace {

struct GlobCase {
  const char* pattern;
  const char* text;
  bool match;
};

void ExpectTable(const std::vector<GlobCase>& cases, bool path_mode) {
  for (const GlobCase& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.text, path_mode), c.match)
        << "pattern \"" << c.pattern << "\" text \"" << c.text << "\" path_mode " << path_mode;
  }
}

TEST(GlobTest, BranchModeStarCrossesSlashes) {
  ExpectTable(
      {
          {"*", "", true},
          {"*", "main", true},
          {"*", "feature/x/y", true},
          {"main", "main", true},
          {"main", "main2", false},
          {"main", "mai", false},
          {"", "", true},
          {"", "a", false},
          {"release/*", "release/1.0", true},
          {"release/*", "release/1/2", true},
          {"release/*", "release", false},
          {"feature/**", "feature/a/b", true},
          {"*/fix", "team/a/fix", true},
          {"*-rc", "v1-rc", true},
          {"*-rc", "v1-rc2", false},
          {"a*b*c", "abc", true},
          {"a*b*c", "axxbyyc", true},
          {"a*b*c", "axxbyy", false},
          {"*aab", "aaaab", true},
          {"v?.?", "v1.2", true},
          {"v?.?", "v1.22", false},
          {"a?c", "a/c", true},
      },
      /*path_mode=*/false);
}

TEST(GlobTest, CharacterClasses) {
  ExpectTable(
      {
          {"[abc]", "b", true},    {"[abc]", "d", false},   {"[a-z]x", "qx", true},
          {"[a-z]x", "Qx", false}, {"[!a-z]", "Q", true},   {"[!a-z]", "q", false},
          {"[^0-9]", "x", true},   {"[^0-9]", "5", false},  {"[]]", "]", true},
          {"[!]]", "]", false},    {"[!]]", "a", true},     {"[a-]", "-", true},
          {"[-a]", "-", true},     {"[z-a]", "m", false},   {"[\\]]", "]", true},
          {"[a\\-z]", "-", true},  {"[a\\-z]", "m", false}, {"v[0-9].[0-9]*", "v1.23", true},
          {"[abc", "[abc", true},  // unterminated: literal
          {"[abc", "a", false},    {"[", "[", true},        {"[a/]", "/", true},
      },
      /*path_mode=*/false);
  EXPECT_FALSE(GlobMatch("[a/]", "/", /*path_mode=*/true));
  EXPECT_FALSE(GlobMatch("[!a]", "/", /*path_mode=*/true));
  EXPECT_TRUE(GlobMatch("x[!a]y", "xby", /*path_mode=*/true));
}

TEST(GlobTest, EscapesMatchLiterally) {
  ExpectTable(
      {
          {"\\*", "*", true},
          {"\\*", "a", false},
          {"a\\?", "a?", true},
          {"a\\?", "ab", false},
          {"\\[a]", "[a]", true},
          {"\\[a]", "a", false},
          {"\\\\", "\\", true},
          {"\\a", "a", true},
          {"a\\", "a\\", true},  // trailing backslash: literal
          {"*\\*", "x*", true},
          {"*\\*", "xy", false},
      },
      /*path_mode=*/false);
  EXPECT_TRUE(GlobMatch("docs/\\*\\*", "docs/**", /*path_mode=*/true));
  EXPECT_FALSE(GlobMatch("docs/\\*\\*", "docs/a", /*path_mode=*/true));
}

TEST(GlobTest, PathModeStarStaysInOneSegment) {
  ExpectTable(
      {
          {"*", "a.md", true},
          {"*", "docs/a.md", false},
          {"*.md", "README.md", true},
          {"*.md", "docs/README.md", false},
          {"docs/*", "docs/a", true},
          {"docs/*", "docs/a/b", false},
          {"docs/*", "docs", false},
          {"a?c", "abc", true},
          {"a?c", "a/c", false},
          {"src/*/x.cc", "src/a/x.cc", true},
          {"src/*/x.cc", "src/a/b/x.cc", false},
          {"src/*.cc", "src/a.cc", true},
          {"a*b*c/d", "axbxc/d", true},
          {"a*b*c/d", "axb/c/d", false},
          {"a*/b", "ax/y/b", false},
      },
      /*path_mode=*/true);
}

TEST(GlobTest, PathModeDoubleStarSpansSegments) {
  ExpectTable(
      {
          {"**", "a", true},
          {"**", "a/b/c", true},
          {"docs/**", "docs/a", true},
          {"docs/**", "docs/a/b/c.md", true},
          {"docs/**", "docs", false},
          {"docs/**", "docsx/a", false},
          {"**/*.md", "a.md", true},
          {"**/*.md", "x/y/a.md", true},
          {"**/*.md", "x/y/a.mdx", false},
          {"**/*.md", "x/y.md/z", false},
          {"src/**/x.cc", "src/x.cc", true},
          {"src/**/x.cc", "src/a/x.cc", true},
          {"src/**/x.cc", "src/a/b/c/x.cc", true},
          {"src/**/x.cc", "src/a/b/y.cc", false},
          {"src/**/x.cc", "lib/a/x.cc", false},
          {"src/**/x.cc", "src/ax.cc", false},
          {"**/test/**", "a/test/b", true},
          {"**/test/**", "test/b/c", true},
          {"**/test/**", "a/testx/b", false},
          {"**/a/**/b", "x/a/y/a/z/b", true},
          {"**/a*/b", "a1/c/a2/b", true},
          {"**/a*/b", "a1/c/a2/c", false},
          {"a/**/b/**/c", "a/b/c", true},
          {"a/**/b/**/c", "a/x/b/y/z/c", true},
          {"a/**/b/**/c", "a/x/c/y/b", false},
          {"a**", "abc", true},  // not a whole segment: one '*'
          {"a**", "ab/c", false},
          {"**.md", "a.md", true},
          {"**.md", "x/a.md", false},
      },
      /*path_mode=*/true);
}

TEST(GlobTest, PathModeEmptyPatternOrText) {
  EXPECT_TRUE(GlobMatch("", "", /*path_mode=*/true));
  EXPECT_FALSE(GlobMatch("", "a", /*path_mode=*/true));
  EXPECT_FALSE(GlobMatch("a", "", /*path_mode=*/true));
  EXPECT_TRUE(GlobMatch("**/", "", /*path_mode=*/true));
}

// A backtracking matcher takes exponential time on these; ours finishes
// promptly (bounded by pattern size times text size).
TEST(GlobTest, PathologicalPatternsFinishQuickly) {
  const std::string text(5000, 'a');
  const std::string path_text = [] {
    std::string s;
    for (int i = 0; i < 500; ++i) s += "a/";
    return s + "c";
  }();
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*b", text, /*path_mode=*/false));
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*b", text, /*path_mode=*/true));
  EXPECT_TRUE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*", text, /*path_mode=*/false));
  EXPECT_FALSE(GlobMatch("**/a/**/a/**/a/**/a/**/a/**/b", path_text, /*path_mode=*/true));
  EXPECT_TRUE(GlobMatch("**/a/**/a/**/a/**/a/**/a/**/c", path_text, /*path_mode=*/true));
  EXPECT_FALSE(GlobMatch("**/*a*a*a*a*/**/*a*a*a*b", path_text, /*path_mode=*/true));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

}  // namespace
}  // namespace wtd
