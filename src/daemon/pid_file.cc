#include "daemon/pid_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "base/file_util.h"

namespace wtd {
namespace {

std::string ReadAll(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Opens the PID file without following a symlink, and refuses anything but a
// regular file of this user with one link: writing the pid must not clobber
// some other file that was planted or linked there.
Result<int> OpenPidFile(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ELOOP) {
      return Status::FailedPrecondition("pid file " + path +
                                        " is a symbolic link; refusing to follow it (remove it "
                                        "if no wtd uses it)");
    }
    if (errno == ENOENT) return Status::NotFound("no pid file " + path);
    return Status::FromErrno("open pid file " + path, errno);
  }
  struct stat st;
  std::string refused;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::FromErrno("stat pid file " + path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    refused = "is not a regular file";
  } else if (st.st_nlink > 1) {
    refused = "has " + std::to_string(st.st_nlink) + " hard links";
  } else if (st.st_uid != geteuid()) {
    refused = "is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
              std::to_string(geteuid()) + " that wtd runs as";
  }
  if (!refused.empty()) {
    close(fd);
    return Status::FailedPrecondition("pid file " + path + " " + refused + "; refusing to use it");
  }
  return fd;
}

}  // namespace

Result<PidFile> PidFile::Acquire(const std::string& path, const std::string& holder) {
  WTD_RETURN_IF_ERROR(MakeDirs(DirName(path), 0700));
  // Not O_TRUNC: the file is only rewritten once its lock is held, so a
  // refused second wtd leaves the running one's pid in place.
  WTD_ASSIGN_OR_RETURN(int fd, OpenPidFile(path, O_RDWR | O_CREAT));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string pid = ReadAll(fd);
    close(fd);
    if (err == EWOULDBLOCK) {
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      size_t space = pid.find(' ');
      if (space != std::string::npos) {  // "PID HOLDER": not a daemon
        return Status::Busy("state dir busy: held by " + pid.substr(space + 1) + " pid " +
                            pid.substr(0, space) + " (pid file " + path + ")");
      }
      return Status::Busy("another wtd (pid " + (pid.empty() ? "unknown" : pid) +
                          ") is running with pid file " + path);
    }
    return Status::FromErrno("lock pid file " + path, err);
  }
  PidFile f(path, fd, holder);
  WTD_RETURN_IF_ERROR(f.UpdatePid());
  return f;
}

Result<int> PidFile::ReadLive(const std::string& path) {
  WTD_ASSIGN_OR_RETURN(int fd, OpenPidFile(path, O_RDONLY));
  bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  std::string text = ReadAll(fd);
  close(fd);
  if (!held) return Status::NotFound("pid file " + path + " is not held by a running wtd");
  try {
    return std::stoi(text);
  } catch (const std::exception&) {
    return Status::Corruption("pid file " + path + " does not hold a pid");
  }
}

PidFile::PidFile(PidFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), holder_(std::move(other.holder_)) {
  other.fd_ = -1;
}

PidFile::~PidFile() {
  if (fd_ >= 0) close(fd_);
}

Status PidFile::UpdatePid() {
  std::string text =
      std::to_string(getpid()) + (holder_ == "wtd" ? std::string() : " " + holder_) + "\n";
  // Written over the old content, then cut to length: the file is never
  // empty (a reader never sees no pid).
  if (pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return Status::FromErrno("write pid file " + path_, errno);
  }
  if (ftruncate(fd_, static_cast<off_t>(text.size())) != 0) {
    return Status::FromErrno("truncate pid file " + path_, errno);
  }
  return Status::OK();
}

void PidFile::Remove() {
  if (fd_ < 0) return;
  unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
}

}  // namespace wtd
