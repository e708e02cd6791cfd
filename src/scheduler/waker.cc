#include "scheduler/waker.h"

#include <errno.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace wtd {

Result<std::unique_ptr<Waker>> Waker::Create(bool use_inotify) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return Status::FromErrno("eventfd", errno);
  int ifd = -1;
  if (use_inotify) {
    ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd < 0) {
      spdlog::warn("inotify unavailable ({}); polling only", std::strerror(errno));
    }
  }
  return std::unique_ptr<Waker>(new Waker(efd, ifd));
}

Waker::~Waker() {
  close(event_fd_);
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

void Waker::Watch(const std::vector<std::string>& dirs) {
  if (inotify_fd_ < 0) return;
  std::set<std::string> want(dirs.begin(), dirs.end());
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_fd_, it->second);
    it = watches_.erase(it);
  }
  constexpr uint32_t kMask =
      IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR;
  for (const std::string& dir : want) {
    if (watches_.count(dir)) continue;
    int wd = inotify_add_watch(inotify_fd_, dir.c_str(), kMask);
    if (wd < 0) {
      spdlog::debug("cannot watch {}: {}", dir, std::strerror(errno));
      continue;
    }
    watches_[dir] = wd;
  }
}

Waker::Reason Waker::Wait(int64_t timeout_ms) {
  pollfd fds[2] = {{event_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
  nfds_t n = inotify_fd_ >= 0 ? 2 : 1;
  int timeout = static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, 3'600'000));
  int rc = poll(fds, n, timeout);
  if (rc <= 0) return Reason::kTimeout;  // EINTR counts as a timeout: the loop re-checks
  Reason reason = Reason::kTimeout;
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    while (read(event_fd_, &v, sizeof v) > 0) {
    }
    reason = Reason::kNotified;
  }
  if (n == 2 && (fds[1].revents & POLLIN)) {
    alignas(inotify_event) char buf[16384];
    while (read(inotify_fd_, buf, sizeof buf) > 0) {
    }
    reason = Reason::kFileChange;
  }
  return reason;
}

void Waker::Notify() {
  uint64_t one = 1;
  ssize_t n = write(event_fd_, &one, sizeof one);
  (void)n;  // EAGAIN means a wake is already pending
}

}  // namespace wtd
