// Helpers for tests of file permissions: the mode of a path, and a umask
// set for one scope (processes started in it inherit it).
#ifndef WTD_TESTS_FAKES_FILE_MODE_H_
#define WTD_TESTS_FAKES_FILE_MODE_H_

#include <sys/stat.h>

#include <string>

namespace wtd {

// Permission bits of `path` itself (a symlink is not followed), or -1 when
// it cannot be stat'ed.
inline int ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

}  // namespace wtd

#endif  // WTD_TESTS_FAKES_FILE_MODE_H_
