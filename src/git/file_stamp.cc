#include "git/file_stamp.h"

#include <sys/stat.h>
#include <time.h>

namespace wtd::git {
namespace {

int64_t Ns(const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec; }

}  // namespace

int64_t RealtimeNs() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return Ns(t);
}

FileStamp StampFile(const std::string& path) {
  struct stat st;
  FileStamp s;
  if (stat(path.c_str(), &st) != 0) return s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mode = st.st_mode;
  s.size = st.st_size;
  s.mtime_ns = Ns(st.st_mtim);
  s.ctime_ns = Ns(st.st_ctim);
  return s;
}

FileStamps::FileStamps(std::vector<std::string> paths, int64_t taken_ns)
    : paths_(std::move(paths)), taken_ns_(taken_ns) {
  stamps_.reserve(paths_.size());
  for (const std::string& p : paths_) stamps_.push_back(StampFile(p));
}

FileStamps FileStamps::Take(std::vector<std::string> paths) {
  int64_t now = RealtimeNs();
  return FileStamps(std::move(paths), now);
}

bool FileStamps::Matches(const std::vector<FileStamp>& now) const {
  if (stamps_.empty() || now.size() != stamps_.size()) return false;
  for (size_t i = 0; i < stamps_.size(); ++i) {
    if (!(now[i] == stamps_[i])) return false;
    if (stamps_[i].exists && stamps_[i].mtime_ns >= taken_ns_ - kRacyMarginNs) return false;
  }
  return true;
}

bool FileStamps::StillValid() const {
  std::vector<FileStamp> now;
  now.reserve(paths_.size());
  for (const std::string& p : paths_) now.push_back(StampFile(p));
  return Matches(now);
}

}  // namespace wtd::git
