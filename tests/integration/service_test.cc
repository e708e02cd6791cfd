// wtd under a service manager: the real daemon started with NOTIFY_SOCKET
// pointing at a datagram socket this test reads, as systemd would start it
// with Type=notify and WatchdogSec=. The messages must come in order (start-up
// progress, READY=1 only after recovery and the first poll), WATCHDOG=1 must
// come from the loop even when it has nothing to poll, and a loop wedged by
// the wedge point `wedge_loop` must stop the pings while the process lives on.
//
// Built without libsystemd, wtd sends nothing: the tests skip and say so.
#include <fnmatch.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

// A unix datagram socket bound to a path, as systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

  // The next message, waiting up to timeout_ms; nullopt when none came.
  std::optional<std::string> Receive(int64_t timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout_ms)) <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }
  // Every message already queued.
  std::vector<std::string> Drain() {
    std::vector<std::string> out;
    while (std::optional<std::string> m = Receive(0)) out.push_back(*m);
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Whether a line of `message` matches the glob `pattern` (fnmatch).
bool Has(const std::string& message, const std::string& pattern) {
  for (const std::string& l : Lines(message)) {
    if (fnmatch(pattern.c_str(), l.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string Join(const std::vector<std::string>& messages) {
  std::string out;
  for (const std::string& m : messages) out += "  [" + m + "]\n";
  return out;
}

class ServiceTest : public IntegrationTest {
 protected:
  void SetUp() override {
#ifndef WTD_HAVE_SYSTEMD
    GTEST_SKIP() << "wtd was built without libsystemd: it sends no sd_notify messages";
#endif
    IntegrationTest::SetUp();
    // libsystemd ignores WATCHDOG_USEC when WATCHDOG_PID names another
    // process; the daemon's pid is not known before it starts, so none is
    // given (as for a service whose main process is the one systemd started).
    unsetenv("WATCHDOG_PID");
    notify_ = std::make_unique<NotifySocket>(dir_.Sub("notify"));
    ASSERT_TRUE(notify_->ok()) << "cannot bind " << dir_.Sub("notify");
  }

  // wtd with a 1 s watchdog, polling only once a minute and without inotify:
  // only the watchdog's deadline wakes an idle loop.
  DaemonProcess* Start(const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {"--repo",    repo_.dir(), "--state-dir", state_dir_,
                                     "--poll-ms", "60000",     "--no-inotify"};
    std::vector<std::string> all_env = {"NOTIFY_SOCKET=" + notify_->path(),
                                        "WATCHDOG_USEC=1000000"};
    all_env.insert(all_env.end(), env.begin(), env.end());
    std::string log = dir_.Sub("wtd-" + std::to_string(daemons_.size() + 1) + ".log");
    daemons_.push_back(std::make_unique<DaemonProcess>(args, all_env, log));
    return daemons_.back().get();
  }

  // Receives messages until one has `line`; returns all received, that one
  // last. Fails the test if none comes in time.
  std::vector<std::string> Until(const std::string& line, int64_t timeout_ms = 60000) {
    std::vector<std::string> got;
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(ScaledMs(timeout_ms));
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<std::string> m = notify_->Receive(100);
      if (!m) continue;
      got.push_back(*m);
      if (Has(*m, line)) return got;
    }
    ADD_FAILURE() << "no message with " << line << " came; received:\n" << Join(got);
    return got;
  }

  std::unique_ptr<NotifySocket> notify_;
};

// Index of the first message with `line` in `messages`, or -1.
int IndexOf(const std::vector<std::string>& messages, const std::string& line) {
  for (size_t i = 0; i < messages.size(); ++i) {
    if (Has(messages[i], line)) return static_cast<int>(i);
  }
  return -1;
}

TEST_F(ServiceTest, ReadyComesAfterRecoveryAndTheFirstPollThenTheLoopFeedsTheWatchdog) {
  std::string sha = repo_.CommitJob("build", EffectJob());
  DaemonProcess* d = Start();
  std::vector<std::string> start = Until("READY=1");
  ASSERT_FALSE(HasFailure());
  int opening = IndexOf(start, "STATUS=opening the state store*");
  int recovering = IndexOf(start, "STATUS=recovering: *");
  int recovered = IndexOf(
      start, "STATUS=recovered: 0 active run(s) checked, 0 action(s), 0 error(s); first poll");
  int ready = IndexOf(start, "READY=1");
  EXPECT_GE(opening, 0) << Join(start);
  EXPECT_LT(opening, recovering) << Join(start);
  EXPECT_LT(recovering, recovered) << Join(start);
  EXPECT_LT(recovered, ready) << "READY=1 only after recovery:\n" << Join(start);
  EXPECT_EQ(ready + 1, static_cast<int>(start.size()));
  EXPECT_TRUE(Has(start[static_cast<size_t>(recovering)], "EXTEND_TIMEOUT_USEC=*"))
      << "recovery extends the start timeout: " << start[static_cast<size_t>(recovering)];
  EXPECT_TRUE(Has(start.back(), "STATUS=* queued, * running, * waiting to retry; no errors"))
      << start.back();
  // READY=1 came from the loop after its first step: that step had polled.
  std::optional<json> status = Status();
  ASSERT_TRUE(status.has_value());
  EXPECT_GE(status->value("ticks", 0), 1) << status->dump();

  // Idle (the next poll is a minute away), the loop still wakes and pings at
  // least every half second.
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(Until("WATCHDOG=1", 30000).empty());
  ASSERT_NO_FATAL_FAILURE(WaitSettled({sha}, "build"));

  ASSERT_EQ(Wtctl({"stop"}).exit_code, 0);
  std::vector<std::string> stop = Until("STOPPING=1");
  EXPECT_TRUE(Has(stop.back(), "EXTEND_TIMEOUT_USEC=*")) << stop.back();
  EXPECT_EQ(d->WaitExit(ScaledMs(60000)).value_or(-1), 0);
}

TEST_F(ServiceTest, AWedgedLoopStopsTheWatchdogPingsWhileTheProcessLivesOn) {
  // The loop wedges after its 6th step: with the 1 s watchdog it steps at
  // least every half second, so that is a few seconds after the start.
  DaemonProcess* d = Start({"WTD_CRASH_AT=wedge_loop:6"});
  ASSERT_FALSE(Until("READY=1").empty());
  ASSERT_FALSE(Until("WATCHDOG=1").empty());
  const std::string wedged = "wtd: wedge point wedge_loop: this thread stops here";
  ASSERT_TRUE(WaitFor([&] { return d->Log().find(wedged) != std::string::npos || !d->Running(); },
                      ScaledMs(60000)))
      << "the loop did not reach its 6th step";
  ASSERT_TRUE(d->Running()) << "wtd exited; log:\n" << d->Log();
  // What the loop sent before it wedged is queued already (a datagram is
  // queued by the send itself); after that, nothing may come for three
  // watchdog intervals, the time systemd would have long given up.
  notify_->Drain();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  std::vector<std::string> after;
  while (std::chrono::steady_clock::now() < until) {
    if (std::optional<std::string> m = notify_->Receive(100)) after.push_back(*m);
  }
  EXPECT_EQ(IndexOf(after, "WATCHDOG=1"), -1) << "pings from a wedged loop:\n" << Join(after);
  // The process is alive and its other threads work: only the watchdog can
  // tell that it is stuck.
  EXPECT_TRUE(d->Running());
  std::optional<json> status = Status();
  EXPECT_TRUE(status.has_value()) << "the control socket no longer answers";
}

}  // namespace
}  // namespace wtd::itest
