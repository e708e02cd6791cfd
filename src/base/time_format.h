// Time formatting shared by logs, wtctl and the wire protocol.
#ifndef WTD_BASE_TIME_FORMAT_H_
#define WTD_BASE_TIME_FORMAT_H_

#include <cstdint>
#include <string>

namespace wtd {

// RFC 3339 UTC with milliseconds: "2026-11-22T13:30:54.123Z". ms since epoch.
std::string FormatRfc3339(int64_t ms_since_epoch);

// "1.2s", "3m04s", "2h05m" — for human tables.
std::string FormatDurationMs(int64_t ms);

}  // namespace wtd

#endif  // WTD_BASE_TIME_FORMAT_H_
