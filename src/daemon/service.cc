#include "daemon/service.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#ifdef WTD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace wtd {

Service::~Service() {
  if (ready_fd_ >= 0) close(ready_fd_);
}

void Service::Notify(const std::string& state) {
#ifdef WTD_HAVE_SYSTEMD
  sd_notify(0, state.c_str());
#else
  (void)state;
#endif
}

uint64_t Service::WatchdogUsec() {
#ifdef WTD_HAVE_SYSTEMD
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) return usec;
#endif
  return 0;
}

void Service::Ready() {
  if (ready_fd_ >= 0) {
    ssize_t n = write(ready_fd_, "", 1);
    (void)n;
    close(ready_fd_);
    ready_fd_ = -1;
  }
}

void Service::StartFailed(const std::string& why) {
  Notify("STATUS=failed to start: " + why);
  if (ready_fd_ >= 0) {
    std::string msg = "x" + why;
    ssize_t n = write(ready_fd_, msg.data(), msg.size());
    (void)n;
    close(ready_fd_);
    ready_fd_ = -1;
  }
}

Status Service::Daemonize(const std::string& log_path) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  pid_t child = fork();
  if (child < 0) return Status::FromErrno("fork", errno);
  if (child > 0) {
    // The launcher: wait for one byte (ready) or a message (failed), or EOF
    // (the daemon died before it could say).
    close(fds[1]);
    waitpid(child, nullptr, 0);
    std::string msg;
    char buf[512];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
    if (msg.size() == 1 && msg[0] == '\0') _exit(0);
    if (!msg.empty() && msg[0] == 'x') {
      std::fprintf(stderr, "wtd: %s\n", msg.c_str() + 1);
    } else {
      std::fprintf(stderr, "wtd: the daemon exited during start-up; see %s\n", log_path.c_str());
    }
    _exit(1);
  }
  close(fds[0]);
  if (setsid() < 0) _exit(1);
  pid_t grandchild = fork();
  if (grandchild < 0) _exit(1);
  if (grandchild > 0) _exit(0);
  int null_fd = open("/dev/null", O_RDONLY);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (null_fd < 0 || log_fd < 0) return Status::FromErrno("open " + log_path, errno);
  dup2(null_fd, 0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  close(null_fd);
  close(log_fd);
  ready_fd_ = fds[1];
  return Status::OK();
}

void StartProgress::Phase(const std::string& status, uint64_t extra_us) {
  sink_("STATUS=" + status + "\nEXTEND_TIMEOUT_USEC=" + std::to_string(kBudgetUs + extra_us));
  last_sent_us_ = clock_->MonotonicUs();
}

void StartProgress::RunHandled() {
  ++runs_handled_;
  int64_t now = clock_->MonotonicUs();
  if (last_sent_us_ >= 0 && now - last_sent_us_ < 1'000'000) return;
  sink_("STATUS=recovering: " + std::to_string(runs_handled_) +
        " run(s) handled\nEXTEND_TIMEOUT_USEC=" + std::to_string(kBudgetUs));
  last_sent_us_ = now;
}

std::string LoopNotifier::StatusText(const LoopHeartbeat& beat) {
  std::string text = beat.stopping ? "stopping: " + std::to_string(beat.running) + " running"
                                   : std::to_string(beat.queued) + " queued, " +
                                         std::to_string(beat.running) + " running, " +
                                         std::to_string(beat.retry_wait) + " waiting to retry";
  text += beat.last_error.empty() ? "; no errors" : "; last error: " + beat.last_error;
  // One line: systemctl shows STATUS as is.
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

int64_t LoopNotifier::OnStep(const LoopHeartbeat& beat) {
  std::vector<std::string> lines;
  std::string status = StatusText(beat);
  if (!ready_.load()) {
    lines.push_back("READY=1");
  }
  if (beat.stopping && !stopping_sent_) {
    lines.push_back("STOPPING=1");
    lines.push_back("EXTEND_TIMEOUT_USEC=" +
                    std::to_string((beat.stop_budget_ms + 10'000) * int64_t{1000}));
    stopping_sent_ = true;
  }
  int64_t now = clock_->MonotonicUs();
  int64_t limit_ms = -1;
  if (watchdog_usec_ > 0) {
    int64_t w = static_cast<int64_t>(watchdog_usec_);
    if (last_ping_us_ < 0 || now - last_ping_us_ >= w / 4) {
      lines.push_back("WATCHDOG=1");
      last_ping_us_ = now;
    }
    limit_ms = std::max<int64_t>(0, (last_ping_us_ + w / 2 - now) / 1000);
  }
  if (status != last_status_) {
    lines.push_back("STATUS=" + status);
    last_status_ = status;
  }
  if (!lines.empty()) {
    std::string msg;
    for (const std::string& l : lines) msg += (msg.empty() ? "" : "\n") + l;
    sink_(msg);
  }
  if (!ready_.load()) {
    ready_.store(true);
    if (on_ready_) on_ready_();
  }
  return limit_ms;
}

}  // namespace wtd
