#include "locks/lock_name.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wtd::locks {
namespace {

const std::string kSha = "0123456789abcdef0123456789abcdef01234567";

TEST(LockNameTest, ValidNameMapsToRefUnderRootAndBack) {
  LockName name{"main", "build", kSha};
  Result<std::string> ref = LockRefName(kDefaultLocksRoot, name);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(*ref, "refs/wtd/locks/main/build/" + kSha);
  Result<LockName> back = ParseLockRef(kDefaultLocksRoot, *ref);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, name);
  Result<LockName> text = ParseLockName(kDefaultLocksRoot, name.ToString());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, name);
}

TEST(LockNameTest, OtherRootsWork) {
  Result<std::string> ref = LockRefName("refs/ci/locks", {"wt-2", "test.unit", kSha});
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(*ref, "refs/ci/locks/wt-2/test.unit/" + kSha);
}

struct BadName {
  LockName name;
  std::string expect;  // a piece of the message
};

TEST(LockNameTest, InvalidNamesAreRefusedNeverRewritten) {
  const std::vector<BadName> cases = {
      {{"", "build", kSha}, "worktree id is empty"},
      {{"main", "", kSha}, "job is empty"},
      {{".", "build", kSha}, "dot part"},
      {{"..", "build", kSha}, "dot part"},
      {{"main", "..", kSha}, "dot part"},
      {{"a/b", "build", kSha}, "worktree id 'a/b' contains '/'"},
      {{"main", "x/../../heads/main", kSha}, "contains '/'"},
      {{"main", "bu ild", kSha}, "job 'bu ild'"},
      {{"main", "a~1", kSha}, "job 'a~1'"},
      {{"main", "a^", kSha}, "job 'a^'"},
      {{"main", "a:b", kSha}, "job 'a:b'"},
      {{"main", "a?", kSha}, "job 'a?'"},
      {{"main", "a*", kSha}, "job 'a*'"},
      {{"main", "a[", kSha}, "job 'a['"},
      {{"main", "a\\b", kSha}, "job 'a\\b'"},
      {{"main", "a\tb", kSha}, "job"},
      {{"main", ".hidden", kSha}, "job '.hidden'"},
      {{"main", "x.lock", kSha}, "job 'x.lock'"},
      {{"main", "a..b", kSha}, "job 'a..b'"},
      {{"main", "a@{1}", kSha}, "job 'a@{1}'"},
      {{"main", "end.", kSha}, "job 'end.'"},
      {{"wt.lock", "build", kSha}, "worktree id 'wt.lock'"},
      {{"main", "build", "0123"}, "sha"},
      {{"main", "build", "0123456789ABCDEF0123456789ABCDEF01234567"}, "sha"},
      {{"main", "build", kSha + "0"}, "sha"},
      {{"main", "build", "g123456789abcdef0123456789abcdef01234567"}, "sha"},
  };
  for (const BadName& c : cases) {
    Result<std::string> ref = LockRefName(kDefaultLocksRoot, c.name);
    ASSERT_FALSE(ref.ok()) << c.name.ToString() << " gave " << ref.value_or("");
    EXPECT_TRUE(ref.status().IsInvalidArgument()) << ref.status().ToString();
    EXPECT_NE(ref.status().message().find(c.expect), std::string::npos)
        << c.name.ToString() << ": " << ref.status().message();
  }
}

TEST(LockNameTest, InvalidRootsAreRefused) {
  for (const std::string root : {"", "refs", "refs/", "refs/wtd/", "heads/x", "refs//x", "refs/./x",
                                 "refs/../x", "refs/a b", "refs/x.lock", "/refs/x"}) {
    Status s = ValidateLocksRoot(root);
    EXPECT_TRUE(s.IsInvalidArgument()) << "'" << root << "': " << s.ToString();
    EXPECT_FALSE(LockRefName(root, {"main", "build", kSha}).ok()) << root;
  }
  EXPECT_TRUE(ValidateLocksRoot("refs/wtd/locks").ok());
}

TEST(LockNameTest, NotesRefMustBeUnderRefsNotes) {
  EXPECT_TRUE(ValidateNotesRef(kDefaultNotesRef).ok());
  EXPECT_TRUE(ValidateNotesRef("refs/notes/ci/wtd").ok());
  for (const std::string ref : {"refs/wtd/notes", "refs/notes", "refs/notes/", "wtd",
                                "refs/notes/a b", "refs/notes/x.lock"}) {
    EXPECT_TRUE(ValidateNotesRef(ref).IsInvalidArgument()) << ref;
  }
}

TEST(LockNameTest, ParseRejectsRefsThatAreNotLockNames) {
  for (const std::string& ref : std::vector<std::string>{
           "refs/heads/main", "refs/wtd/locks/main/build", "refs/wtd/locks/main/a/b/" + kSha,
           "refs/wtd/locksmith/main/build/" + kSha, "refs/wtd/locks/main/build/notasha"}) {
    Result<LockName> n = ParseLockRef(kDefaultLocksRoot, ref);
    EXPECT_FALSE(n.ok()) << ref;
    EXPECT_TRUE(n.status().IsInvalidArgument()) << ref;
  }
  EXPECT_FALSE(ParseLockName(kDefaultLocksRoot, "main/build").ok());
  EXPECT_FALSE(ParseLockName(kDefaultLocksRoot, "main//" + kSha).ok());
}

}  // namespace
}  // namespace wtd::locks
