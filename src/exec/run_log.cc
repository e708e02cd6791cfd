#include "exec/run_log.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>

namespace wtd {
namespace {

constexpr size_t kHeadBytes = 512;
constexpr char kTruncationPrefix[] = "[wtd: log truncated at ";
constexpr size_t kTailBytes = 256;  // longer than any marker line

// True when the last line of `tail` (the end of a log) is a truncation marker.
bool EndsWithTruncationMarker(std::string_view tail) {
  if (tail.empty() || tail.back() != '\n') return false;
  tail.remove_suffix(1);
  size_t newline = tail.rfind('\n');
  std::string_view last = newline == std::string_view::npos ? tail : tail.substr(newline + 1);
  return last.rfind(kTruncationPrefix, 0) == 0;
}

}  // namespace

RunLog::RunLog(int fd, std::string path, uint64_t cap)
    : fd_(fd), path_(std::move(path)), cap_(cap) {}

RunLog::~RunLog() {
  if (fd_ >= 0) close(fd_);
}

Status RunLog::Open() {
  struct stat st;
  if (fstat(fd_, &st) != 0) return Status::FromErrno("stat run log " + path_, errno);
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition("run log " + path_ + " is not a regular file");
  }
  bytes_ = static_cast<uint64_t>(st.st_size);
  if (bytes_ == 0) return Status::OK();
  char buf[kTailBytes];
  size_t want = static_cast<size_t>(std::min<uint64_t>(bytes_, sizeof buf));
  ssize_t n = pread(fd_, buf, want, static_cast<off_t>(bytes_ - want));
  if (n != static_cast<ssize_t>(want)) {
    return Status::FromErrno("read the end of run log " + path_, n < 0 ? errno : EIO);
  }
  std::string_view tail(buf, want);
  ends_with_newline_ = tail.back() == '\n';
  marked_ = EndsWithTruncationMarker(tail);
  full_ = marked_;
  return Status::OK();
}

void RunLog::WriteAttemptHeader(uint32_t attempt) {
  if (attempt <= 1 || full_) return;
  std::string header = ends_with_newline_ ? "" : "\n";
  header += "[wtd: attempt " + std::to_string(attempt) + "]\n";
  if (bytes_ + header.size() > cap_) {
    // No room even for the header: this attempt's part of the log is cut
    // whole (a header without its output would mislead).
    truncated_ = true;
    full_ = true;
    return;
  }
  Write(header.data(), header.size());
}

void RunLog::Append(const char* data, size_t size) {
  if (head_.size() < kHeadBytes) head_.append(data, std::min(size, kHeadBytes - head_.size()));
  uint64_t room = full_ ? 0 : cap_ - std::min(bytes_, cap_);
  size_t keep = static_cast<size_t>(std::min<uint64_t>(room, size));
  if (keep < size) truncated_ = true;
  Write(data, keep);
}

size_t RunLog::Write(const char* data, size_t size) {
  size_t written = 0;
  while (written < size && fd_ >= 0) {
    ssize_t n = write(fd_, data + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // disk full or I/O error: the output is lost, the job is not
    written += static_cast<size_t>(n);
  }
  bytes_ += written;
  if (written > 0) ends_with_newline_ = data[written - 1] == '\n';
  return written;
}

void RunLog::Finish() {
  if (fd_ < 0) return;
  if (truncated_ && !marked_) {
    // Once per run: a later attempt finds the marker and writes nothing.
    std::string marker = ends_with_newline_ ? "" : "\n";
    marker += kTruncationPrefix + std::to_string(cap_) + " bytes]\n";
    Write(marker.data(), marker.size());  // best effort: the outcome records it anyway
  }
  fsync(fd_);
  // The file, not the count, is the truth (a write may have failed midway).
  struct stat st;
  if (fstat(fd_, &st) == 0) bytes_ = static_cast<uint64_t>(st.st_size);
  close(fd_);
  fd_ = -1;
}

}  // namespace wtd
