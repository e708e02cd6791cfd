#include "daemon/pid_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
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

}  // namespace

Result<PidFile> PidFile::Acquire(const std::string& path) {
  WTD_RETURN_IF_ERROR(MakeDirs(DirName(path), 0700));
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("open pid file " + path, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string pid = ReadAll(fd);
    close(fd);
    if (err == EWOULDBLOCK) {
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return Status::Busy("another wtd (pid " + (pid.empty() ? "unknown" : pid) +
                          ") is running with pid file " + path);
    }
    return Status::FromErrno("lock pid file " + path, err);
  }
  PidFile f(path, fd);
  WTD_RETURN_IF_ERROR(f.UpdatePid());
  return f;
}

Result<int> PidFile::ReadLive(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("no pid file " + path);
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

PidFile::PidFile(PidFile&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_) {
  other.fd_ = -1;
}

PidFile::~PidFile() {
  if (fd_ >= 0) close(fd_);
}

Status PidFile::UpdatePid() {
  std::string text = std::to_string(getpid()) + "\n";
  if (ftruncate(fd_, 0) != 0) return Status::FromErrno("truncate pid file " + path_, errno);
  if (pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return Status::FromErrno("write pid file " + path_, errno);
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
