// Small, durable file-system helpers. Every file wtd writes outside RocksDB
// goes through WriteFileAtomic: temp file, fsync, rename, fsync of the
// directory. Nothing is truncated in place. What wtd keeps is private to its
// user: directories default to 0700 and files to 0600.
//
// Thread-safety: functions are safe to call concurrently on different paths.
#ifndef WTD_BASE_FILE_UTIL_H_
#define WTD_BASE_FILE_UTIL_H_

#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd {

// Creates `path` and missing parents with `mode` (less the umask); OK if it
// already exists as a directory (its mode is left as it is).
Status MakeDirs(const std::string& path, int mode = 0700);

// Writes `data` to `path` atomically and durably (see above). The file is
// created afresh with `mode` (less the umask), whatever a temp file left by an
// earlier crash had.
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0600);

// fsyncs the directory `dir` so that entries created or renamed in it persist.
Status SyncDir(const std::string& dir);

// Reads a whole file. NotFound when it does not exist.
Result<std::string> ReadFile(const std::string& path);

// The directory part of `path` ("." when it has none).
std::string DirName(const std::string& path);

// Joins two path pieces with exactly one '/'.
std::string JoinPath(std::string_view a, std::string_view b);

// Removes a file or an empty directory; OK when it does not exist.
Status RemoveIfExists(const std::string& path);

// Removes `path` and, for a directory, everything under it; symbolic links
// are removed, never followed. OK when it does not exist.
Status RemoveTree(const std::string& path);

}  // namespace wtd

#endif  // WTD_BASE_FILE_UTIL_H_
