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

namespace {

int StartInotify() {
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) spdlog::warn("inotify unavailable ({}); polling only", std::strerror(errno));
  return fd;
}

}  // namespace

Result<std::unique_ptr<Waker>> Waker::Create(bool use_inotify) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return Status::FromErrno("eventfd", errno);
  return std::unique_ptr<Waker>(new Waker(efd, use_inotify ? StartInotify() : -1));
}

void Waker::SetInotify(bool use_inotify) {
  if (use_inotify == (inotify_fd_ >= 0)) return;
  if (use_inotify) {
    inotify_fd_ = StartInotify();
    return;
  }
  close(inotify_fd_);  // drops its watches with it
  inotify_fd_ = -1;
  watches_.clear();
}

Waker::~Waker() {
  close(event_fd_);
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

size_t Waker::Watch(const std::vector<std::string>& dirs) {
  if (inotify_fd_ < 0) return 0;
  std::set<std::string> want(dirs.begin(), dirs.end());
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_fd_, it->second);
    it = watches_.erase(it);
  }
  // IN_DELETE_SELF and IN_MOVE_SELF: the directory itself went away (see
  // Drain); IN_IGNORED, the kernel dropping the watch, comes unasked.
  constexpr uint32_t kMask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  size_t added = 0;
  for (const std::string& dir : want) {
    if (watches_.count(dir)) continue;
    int wd = inotify_add_watch(inotify_fd_, dir.c_str(), kMask);
    if (wd < 0) {
      spdlog::debug("cannot watch {}: {}", dir, std::strerror(errno));
      continue;
    }
    watches_[dir] = wd;
    ++added;
  }
  return added;
}

bool Waker::Drain() {
  alignas(inotify_event) char buf[16384];
  bool changed = false;
  ssize_t n;
  while ((n = read(inotify_fd_, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      inotify_event event;
      std::memcpy(&event, buf + off, sizeof event);
      off += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
      if (event.mask & IN_Q_OVERFLOW) {
        changed = true;  // events were lost: poll
        continue;
      }
      const int event_wd = event.wd;
      auto watching = [event_wd](const auto& entry) { return entry.second == event_wd; };
      // Not found: e.g. the IN_IGNORED that follows Watch() dropping a watch.
      if (std::none_of(watches_.begin(), watches_.end(), watching)) continue;
      changed = true;
      if (event.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
        // The watch is dead (deleted, unmounted) or would follow the
        // directory to its new path (moved). Forget it, so that the next
        // Watch() watches the path again once a directory is there.
        if (!(event.mask & IN_IGNORED)) inotify_rm_watch(inotify_fd_, event_wd);
        for (const auto& [dir, wd] : watches_) {
          if (wd == event_wd) spdlog::debug("{} was removed or moved; watch dropped", dir);
        }
        std::erase_if(watches_, watching);
      }
    }
  }
  return changed;
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
  if (n == 2 && (fds[1].revents & POLLIN) && Drain()) reason = Reason::kFileChange;
  return reason;
}

void Waker::Notify() {
  uint64_t one = 1;
  ssize_t n = write(event_fd_, &one, sizeof one);
  (void)n;  // EAGAIN means a wake is already pending
}

}  // namespace wtd
