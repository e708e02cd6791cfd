// PidFile: the single-instance guard. The file holds the daemon's pid and is
// kept locked with flock(LOCK_EX) for the daemon's life; the lock, not the
// file's existence, is what counts, so a file left by a killed daemon is
// simply taken over. It is opened with O_NOFOLLOW and must be a regular file
// of this user with a single link (0600 when created), and it is rewritten
// only under the lock, so a symlink or hard link planted there cannot make wtd
// clobber another file.
//
// Thread-safety: not thread-safe; owned by the daemon's main.
#ifndef WTD_DAEMON_PID_FILE_H_
#define WTD_DAEMON_PID_FILE_H_

#include <string>

#include "wtd/status.h"

namespace wtd {

class PidFile {
 public:
  // Locks `path` (creating it) and writes the calling process's pid, then
  // `holder` when it is not "wtd" ("4242 wtctl": wtctl holds the state dir
  // while it works on the store with no daemon). Busy when another process
  // holds it: "another wtd (pid N) is running with pid file P", or "state dir
  // busy: held by wtctl pid N (pid file P)"; FailedPrecondition naming the
  // path when it is a symlink, not a regular file, hard-linked or another
  // user's.
  static Result<PidFile> Acquire(const std::string& path, const std::string& holder = "wtd");
  // Reads the pid in a PID file held by a live daemon; NotFound when the file
  // is absent or not locked (FailedPrecondition, as above, for a symlink).
  static Result<int> ReadLive(const std::string& path);

  PidFile(PidFile&& other) noexcept;
  PidFile& operator=(PidFile&&) = delete;
  ~PidFile();  // unlocks; does not remove (Remove does)

  // Rewrites the pid (after daemonizing forks).
  Status UpdatePid();
  // The PID file of `state_dir` when --pid-file is not given.
  static std::string DefaultPath(const std::string& state_dir) { return state_dir + "/wtd.pid"; }
  // Removes the file, then releases the lock.
  void Remove();

 private:
  PidFile(std::string path, int fd, std::string holder)
      : path_(std::move(path)), fd_(fd), holder_(std::move(holder)) {}
  std::string path_;
  int fd_ = -1;
  std::string holder_;
};

}  // namespace wtd

#endif  // WTD_DAEMON_PID_FILE_H_
