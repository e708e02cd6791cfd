#include "base/time_format.h"

#include <time.h>

#include <cstdio>

namespace wtd {

std::string FormatRfc3339(int64_t ms) {
  time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int millis = static_cast<int>(ms - int64_t{secs} * 1000);
  tm t;
  gmtime_r(&secs, &t);
  char buf[96];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1,
           t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, millis);
  return buf;
}

std::string FormatDurationMs(int64_t ms) {
  char buf[32];
  if (ms < 0) ms = 0;
  if (ms < 60000) {
    snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3600000) {
    snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60000),
             static_cast<long long>((ms / 1000) % 60));
  } else {
    snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3600000),
             static_cast<long long>((ms / 60000) % 60));
  }
  return buf;
}

}  // namespace wtd
