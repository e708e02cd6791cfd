// Settling a bulk-loaded store before a benchmark measures it.
#ifndef WTD_TOOLS_BENCH_SETTLE_H_
#define WTD_TOOLS_BENCH_SETTLE_H_

#include <string>

namespace wtd {

// Flushes and fully compacts every column family of the closed store at
// `dir` through RocksDB directly, so that what follows is measured on a
// settled store rather than one still compacting a bulk load that just
// happened. Returns "" or what failed.
std::string SettleStore(const std::string& dir);

}  // namespace wtd

#endif  // WTD_TOOLS_BENCH_SETTLE_H_
