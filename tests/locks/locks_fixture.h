// LocksFixture: a real repository made with the git CLI, with one commit,
// and helpers to make lock owners, for the locks module's tests.
#ifndef WTD_TESTS_LOCKS_LOCKS_FIXTURE_H_
#define WTD_TESTS_LOCKS_LOCKS_FIXTURE_H_

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "git/git_fixture.h"
#include "locks/lock_refs.h"

namespace wtd::locks {

class LocksFixture : public git::GitFixture {
 protected:
  void SetUp() override {
    GitFixture::SetUp();
    repo_ = InitRepo("repo");
    sha_ = Commit(repo_, "a.txt", "a\n", "first");
    refs_ = OpenRefs();
  }

  std::unique_ptr<LockRefs> OpenRefs(LockRefsOptions options = {}) {
    Result<std::unique_ptr<LockRefs>> r = LockRefs::Open(repo_, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }

  static LockOwner Owner(uint64_t token, int32_t pid = 4242) {
    LockOwner o;
    o.host = "ci-1";
    o.boot_id = "boot-A";
    o.pid = pid;
    o.pid_start_time = 1000;
    o.incarnation = 3;
    o.run_id = 100 + token;
    o.token = token;
    o.acquired_at_ms = 1'700'000'000'000;
    o.expires_at_ms = 1'700'000'060'000;
    return o;
  }

  LockName Name(const std::string& job = "build") const { return {"main", job, sha_}; }
  std::string RefOf(const LockName& n) const { return "refs/wtd/locks/" + n.ToString(); }

  // What the ref points at per the git CLI ("" when it does not exist).
  std::string CliTarget(const std::string& ref) {
    return Git(repo_, {"for-each-ref", "--format=%(objectname)", ref});
  }

  static bool Exists(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0;
  }

  std::string repo_;
  std::string sha_;
  std::unique_ptr<LockRefs> refs_;
};

}  // namespace wtd::locks

#endif  // WTD_TESTS_LOCKS_LOCKS_FIXTURE_H_
