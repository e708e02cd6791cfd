// Waker: what the scheduler loop sleeps on. It returns early when another
// thread calls Notify() (a run finished, an operator command) or when a
// watched directory changes (inotify: a ref or HEAD moved).
//
// inotify is an optimization only: polling stays the baseline, and a
// failure to watch a directory is logged and otherwise ignored.
//
// Thread-safety: Notify() may be called from any thread; everything else
// from the loop thread only.
#ifndef WTD_SCHEDULER_WAKER_H_
#define WTD_SCHEDULER_WAKER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "wtd/status.h"

namespace wtd {

class Waker {
 public:
  enum class Reason { kTimeout, kNotified, kFileChange };

  // use_inotify false: only Notify() and the timeout wake the loop.
  static Result<std::unique_ptr<Waker>> Create(bool use_inotify);
  // Turns inotify on or off (a reload of --no-inotify). Off drops every
  // watch; on watches nothing until the next Watch(). A failure to start
  // inotify is logged, and the loop polls only, as at Create.
  void SetInotify(bool use_inotify);
  ~Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // Watches exactly `dirs` from now on (adds new ones, drops the rest; one
  // that does not exist is skipped and tried again by the next call).
  // Returns how many watches it added.
  size_t Watch(const std::vector<std::string>& dirs);
  // Blocks until notified, a watched directory changes, or timeout_ms.
  // Drains all pending notifications; reports the strongest reason. A
  // watched directory deleted or moved away (IN_DELETE_SELF, IN_MOVE_SELF,
  // IN_IGNORED) is a change, and its watch is forgotten, so the next Watch()
  // watches whatever directory is at that path again.
  Reason Wait(int64_t timeout_ms);
  void Notify();

  size_t watch_count() const { return watches_.size(); }

 private:
  Waker(int event_fd, int inotify_fd) : event_fd_(event_fd), inotify_fd_(inotify_fd) {}
  // Reads every pending inotify event and forgets dead watches. True when
  // one concerns a watched directory (or events were lost).
  bool Drain();

  int event_fd_;
  int inotify_fd_;                      // -1 without inotify
  std::map<std::string, int> watches_;  // dir -> watch descriptor
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_WAKER_H_
