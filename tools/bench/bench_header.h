// The first lines every benchmark prints: its name and the time, the
// machine (host, cores, kernel) and the directory it measures in, with its
// file system, since fsync and file creation costs depend on it more than
// on anything else.
#ifndef WTD_TOOLS_BENCH_BENCH_HEADER_H_
#define WTD_TOOLS_BENCH_BENCH_HEADER_H_

#include <string>

namespace wtd {

// "ext4", "tmpfs", ... for a statfs f_type; "unknown" for others.
const char* FsName(long type);

// Prints "<name>  <UTC time>", "machine: ..." and "dir: <dir> (<fs>,
// f_type 0x...)" lines.
void PrintBenchHeader(const char* name, const std::string& dir);

}  // namespace wtd

#endif  // WTD_TOOLS_BENCH_BENCH_HEADER_H_
