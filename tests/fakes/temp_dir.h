// TempDir: a fresh directory /tmp/wtd-test-XXXXXX, removed with its contents
// when the object dies. Always under /tmp, not $TMPDIR: the daemon tests put
// unix sockets in it, and a short path keeps them far below the 108-byte
// sun_path limit.
#ifndef WTD_TESTS_FAKES_TEMP_DIR_H_
#define WTD_TESTS_FAKES_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace wtd {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/wtd-test-XXXXXX";
    char* made = mkdtemp(tmpl);
    path_ = made ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty when the directory could not be made.
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace wtd

#endif  // WTD_TESTS_FAKES_TEMP_DIR_H_
