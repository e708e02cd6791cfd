// Tests of the daemon's signal thread: signals reach the handler, Stop ends
// it at once, and without a watchdog it blocks with no timeout at all.
#include "daemon/signals.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace wtd {
namespace {

bool WaitFor(const std::function<bool()>& pred, int64_t limit_ms = 20000) {
  auto limit = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= limit) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// What thread `tid` of this process is blocked in: the fields of
// /proc/self/task/TID/syscall ("NR ARG1 ... ARG6 SP PC" while in a system
// call, "running" or "-1 ..." otherwise); empty when the kernel does not
// provide the file.
std::vector<std::string> SyscallOf(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

// Runs a SignalWatcher on its own thread, as the daemon does.
class SignalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sigemptyset(&set_);
    sigaddset(&set_, SIGUSR1);
    sigaddset(&set_, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, nullptr, &old_mask_);
    Result<std::unique_ptr<SignalWatcher>> w = SignalWatcher::Create({SIGUSR1, SIGUSR2});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    watcher_ = std::move(*w);
  }

  void TearDown() override {
    if (thread_.joinable()) {
      watcher_->Stop();
      thread_.join();
    }
    // Nothing may stay pending for the tests that follow.
    timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }

  void Start() {
    thread_ = std::thread([this] {
      tid_ = static_cast<pid_t>(syscall(SYS_gettid));
      watcher_->Run([this](int sig) {
        std::lock_guard<std::mutex> l(mu_);
        seen_.push_back(sig);
      });
      returned_ = true;
    });
    ASSERT_TRUE(WaitFor([&] { return tid_.load() != 0; }));
  }

  std::vector<int> Seen() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }

  // Waits until the watcher thread is blocked in ppoll; returns its fields.
  std::vector<std::string> BlockedInPpoll() {
    std::vector<std::string> fields;
    WaitFor([&] {
      fields = SyscallOf(tid_);
      return fields.empty() || fields[0] == std::to_string(SYS_ppoll);
    });
    return fields;
  }

  sigset_t set_, old_mask_;
  std::unique_ptr<SignalWatcher> watcher_;
  std::thread thread_;
  std::atomic<pid_t> tid_{0};
  std::atomic<bool> returned_{false};
  std::mutex mu_;
  std::vector<int> seen_;
};

TEST_F(SignalsTest, EachSignalReachesTheHandler) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // Sent to the watcher's thread: threads that earlier tests in this process
  // left behind (RocksDB's) do not block these signals, as the daemon's do.
  ASSERT_EQ(pthread_kill(thread_.native_handle(), SIGUSR1), 0);
  ASSERT_TRUE(WaitFor([&] { return Seen().size() == 1; })) << "SIGUSR1 never arrived";
  ASSERT_EQ(pthread_kill(thread_.native_handle(), SIGUSR2), 0);
  ASSERT_TRUE(WaitFor([&] { return Seen().size() == 2; })) << "SIGUSR2 never arrived";
  EXPECT_EQ(Seen(), (std::vector<int>{SIGUSR1, SIGUSR2}));
  EXPECT_FALSE(returned_.load()) << "a signal does not end Run";
}

TEST_F(SignalsTest, StopEndsRunWithoutASignal) {
  ASSERT_NO_FATAL_FAILURE(Start());
  BlockedInPpoll();  // asleep, as an idle daemon's signal thread is
  watcher_->Stop();
  EXPECT_TRUE(WaitFor([&] { return returned_.load(); })) << "Run did not return after Stop";
  thread_.join();
  EXPECT_TRUE(Seen().empty());
}

TEST_F(SignalsTest, StopBeforeRunMakesRunReturnAtOnce) {
  watcher_->Stop();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_TRUE(WaitFor([&] { return returned_.load(); }));
}

// Also with a systemd watchdog: the loop feeds it (LoopNotifier), never this
// thread.
TEST_F(SignalsTest, TheThreadSleepsWithNoTimeout) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::vector<std::string> fields = BlockedInPpoll();
  if (fields.empty()) GTEST_SKIP() << "this kernel has no /proc/<pid>/task/<tid>/syscall";
  ASSERT_GE(fields.size(), 4u);
  EXPECT_EQ(fields[0], std::to_string(SYS_ppoll));
  EXPECT_EQ(fields[3], "0x0") << "ppoll's timeout argument: NULL, i.e. none";
}

}  // namespace
}  // namespace wtd
