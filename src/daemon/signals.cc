#include "daemon/signals.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace wtd {

Result<std::unique_ptr<SignalWatcher>> SignalWatcher::Create(const std::vector<int>& signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  if (int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    return Status::FromErrno("block signals", rc);
  }
  int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return Status::FromErrno("signalfd", errno);
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    int err = errno;
    close(sfd);
    return Status::FromErrno("eventfd for the signal thread", err);
  }
  return std::unique_ptr<SignalWatcher>(new SignalWatcher(sfd, efd));
}

SignalWatcher::~SignalWatcher() {
  close(signal_fd_);
  close(stop_fd_);
}

void SignalWatcher::Run(const std::function<void(int)>& on_signal) {
  pthread_setname_np(pthread_self(), "wtd-signals");
  for (;;) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int rc = ppoll(fds, 2, /*timeout=*/nullptr, nullptr);
    if (rc < 0 && errno != EINTR) return;  // cannot happen with valid fds; do not spin
    if (fds[1].revents & POLLIN) return;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        on_signal(static_cast<int>(info.ssi_signo));
      }
    }
  }
}

void SignalWatcher::Stop() {
  uint64_t one = 1;
  ssize_t n = write(stop_fd_, &one, sizeof one);
  (void)n;  // EAGAIN only when the counter is full: a stop is pending anyway
}

}  // namespace wtd
