// FileStamps: what stat(2) says of a few files, to tell cheaply whether any
// of them may have changed since their content was last read. The idle poll
// tick uses it so that an unchanged worktree costs a few stats, not a ref
// lookup and a worktree enumeration.
//
// Git's "racy" rule applies: file times come from a coarse clock, so a
// second write within the same timestamp tick can leave size, mtime and even
// the inode (reused) unchanged. Stamps are therefore trusted only for files
// whose mtime was already older than the moment they were taken by
// kRacyMarginNs; a file written more recently is read again each time until
// it has aged. Equality compares every field, ctime included (which any
// write, rename or chmod moves).
//
// Thread-safety: plain values.
#ifndef WTD_GIT_FILE_STAMP_H_
#define WTD_GIT_FILE_STAMP_H_

#include <cstdint>
#include <string>
#include <vector>

namespace wtd::git {

// Beyond the coarsest file time granularity a repository may live on: the
// kernel's coarse clock ticks every 1-10 ms, but ext3 and some network file
// systems keep whole seconds (FAT two). A file changed this recently costs a
// full read per tick until it is older.
inline constexpr int64_t kRacyMarginNs = 3'000'000'000;

struct FileStamp {
  bool exists = false;
  uint64_t dev = 0, ino = 0;
  uint32_t mode = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

// stat(2) of `path` (following symlinks); exists=false when it fails.
FileStamp StampFile(const std::string& path);

// CLOCK_REALTIME in ns: the clock file times are taken from.
int64_t RealtimeNs();

class FileStamps {
 public:
  FileStamps() = default;
  // Stamps `paths`; `taken_ns` is RealtimeNs() read before the stamps.
  FileStamps(std::vector<std::string> paths, int64_t taken_ns);
  // Stamps the caller took itself, each before it read that file, all after
  // `taken_ns`.
  FileStamps(std::vector<std::string> paths, std::vector<FileStamp> stamps, int64_t taken_ns)
      : paths_(std::move(paths)), stamps_(std::move(stamps)), taken_ns_(taken_ns) {}

  // Stamps `paths` now.
  static FileStamps Take(std::vector<std::string> paths);

  // Whether content read right after these stamps were taken is still
  // current: every file stamps the same now, and each was at least
  // kRacyMarginNs older than the moment the stamps were taken. False for an
  // empty set (nothing was ever read).
  bool StillValid() const;
  // The same test against stamps of the same paths taken by the caller.
  bool Matches(const std::vector<FileStamp>& now) const;

  const std::vector<std::string>& paths() const { return paths_; }

 private:
  std::vector<std::string> paths_;
  std::vector<FileStamp> stamps_;
  int64_t taken_ns_ = 0;
};

}  // namespace wtd::git

#endif  // WTD_GIT_FILE_STAMP_H_
