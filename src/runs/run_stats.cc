#include "runs/run_stats.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

#include "store/keys.h"

namespace wtd {
namespace {

constexpr std::string_view kPrefix("run_stats\0", 10);

// Longest first; among equals the lower id.
bool Slower(const RunStatsRun& a, const RunStatsRun& b) {
  return a.duration_ms != b.duration_ms ? a.duration_ms > b.duration_ms : a.run_id < b.run_id;
}

// Newest first; among equals the higher id.
bool Newer(const RunStatsRun& a, const RunStatsRun& b) {
  return a.at_ms != b.at_ms ? a.at_ms > b.at_ms : a.run_id > b.run_id;
}

template <typename Less>
void InsertBounded(std::vector<RunStatsRun>& v, const RunStatsRun& r, size_t limit, Less less) {
  v.insert(std::upper_bound(v.begin(), v.end(), r, less), r);
  if (v.size() > limit) v.resize(limit);
}

void AddHistogram(std::vector<uint64_t>& into, const std::vector<uint64_t>& from) {
  if (from.empty()) return;
  if (into.empty()) into.assign(kRunStatsBuckets, 0);
  for (size_t i = 0; i < kRunStatsBuckets && i < from.size(); ++i) into[i] += from[i];
}

Status BadSince(std::string_view value, std::string_view why) {
  return Status::InvalidArgument("--since=" + std::string(value) + ": " + std::string(why) +
                                 " (expected Nm, Nh, Nd, an RFC 3339 time or YYYY-MM-DD)");
}

// Reads exactly `n` digits at `*p`, advancing it.
bool Digits(std::string_view s, size_t* p, size_t n, int* out) {
  if (*p + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[*p + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *out = v;
  return true;
}

bool Expect(std::string_view s, size_t* p, char c) {
  if (*p >= s.size() || s[*p] != c) return false;
  ++*p;
  return true;
}

// Days since the epoch of a proleptic Gregorian date (no time zone needed).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool ValidDate(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

// YYYY-MM-DD at `*p`; ms of its UTC midnight.
bool ParseDate(std::string_view s, size_t* p, int64_t* ms) {
  int y = 0, m = 0, d = 0;
  if (!Digits(s, p, 4, &y) || !Expect(s, p, '-') || !Digits(s, p, 2, &m) || !Expect(s, p, '-') ||
      !Digits(s, p, 2, &d) || !ValidDate(y, m, d)) {
    return false;
  }
  *ms = DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d)) * 86'400'000;
  return true;
}

}  // namespace

int64_t HourOf(int64_t ms) {
  int64_t h = ms / kHourMs * kHourMs;
  return h > ms ? h - kHourMs : h;
}

size_t BucketOf(int64_t duration_ms) {
  const auto* end = std::end(kRunStatsBucketBounds);
  return static_cast<size_t>(std::lower_bound(std::begin(kRunStatsBucketBounds), end, duration_ms) -
                             std::begin(kRunStatsBucketBounds));
}

std::optional<int64_t> BucketUpperMs(size_t i) {
  if (i >= std::size(kRunStatsBucketBounds)) return std::nullopt;
  return kRunStatsBucketBounds[i];
}

int64_t BucketLowerMs(size_t i) {
  return i == 0 ? -1 : kRunStatsBucketBounds[std::min(i, std::size(kRunStatsBucketBounds)) - 1];
}

std::optional<int64_t> CountedDurationMs(const Run& r) {
  if (r.started_at_ms <= 0) return std::nullopt;
  return std::max<int64_t>(0, r.duration_ms);
}

std::string_view RunStatsPrefix() { return kPrefix; }

std::string RunStatsStartKey(int64_t hour_ms) {
  std::string key(kPrefix);
  key += EncodeU64Key(static_cast<uint64_t>(std::max<int64_t>(0, hour_ms)));
  return key;
}

std::string RunStatsKey(int64_t hour_ms, std::string_view repo, std::string_view worktree,
                        std::string_view job) {
  std::string key = RunStatsStartKey(hour_ms);
  key.append(repo).push_back('\0');
  key.append(worktree).push_back('\0');
  key.append(job);
  return key;
}

void AddRunToStats(RunStats& s, const Run& r) {
  if (s.runs() == 0 && s.repo.empty()) {
    s.repo = r.key.repo;
    s.worktree = r.key.worktree;
    s.job = r.key.job;
    s.hour_ms = HourOf(r.finished_at_ms);
  }
  switch (r.state) {
    case RunState::kSucceeded:
      ++s.succeeded;
      break;
    case RunState::kFailed:
      ++s.failed;
      break;
    case RunState::kTimedOut:
      ++s.timed_out;
      break;
    case RunState::kCancelled:
      ++s.cancelled;
      break;
    case RunState::kSkipped:
      ++s.skipped;
      break;
    default:
      return;  // not terminal: nothing to count
  }
  s.attempts += r.attempt;
  s.lock_waits += r.lock_waits;
  std::optional<int64_t> d = CountedDurationMs(r);
  if (d) {
    ++s.timed;
    s.duration_sum_ms += *d;
    if (s.histogram.empty()) s.histogram.assign(kRunStatsBuckets, 0);
    ++s.histogram[BucketOf(*d)];
    InsertBounded(s.slowest, RunStatsRun{r.id, *d, r.state, r.finished_at_ms}, kRunStatsSlowest,
                  Slower);
  }
  if (r.state == RunState::kFailed || r.state == RunState::kTimedOut) {
    InsertBounded(s.failures, RunStatsRun{r.id, d.value_or(0), r.state, r.finished_at_ms},
                  kRunStatsFailures, Newer);
  }
}

void MergeStats(RunStats& into, const RunStats& from) {
  into.succeeded += from.succeeded;
  into.failed += from.failed;
  into.timed_out += from.timed_out;
  into.cancelled += from.cancelled;
  into.skipped += from.skipped;
  into.attempts += from.attempts;
  into.timed += from.timed;
  into.duration_sum_ms += from.duration_sum_ms;
  into.lock_waits += from.lock_waits;
  AddHistogram(into.histogram, from.histogram);
  for (const RunStatsRun& r : from.slowest)
    InsertBounded(into.slowest, r, kRunStatsSlowest, Slower);
  for (const RunStatsRun& r : from.failures)
    InsertBounded(into.failures, r, kRunStatsFailures, Newer);
}

std::optional<int64_t> PercentileMs(const std::vector<uint64_t>& histogram, double q,
                                    int64_t max_ms) {
  uint64_t n = 0;
  for (uint64_t c : histogram) n += c;
  if (n == 0) return std::nullopt;
  // Nearest rank: the smallest duration with at least q of all at or below.
  auto rank = static_cast<uint64_t>(q * static_cast<double>(n));
  if (static_cast<double>(rank) < q * static_cast<double>(n)) ++rank;
  rank = std::clamp<uint64_t>(rank, 1, n);
  uint64_t seen = 0;
  for (size_t i = 0; i < histogram.size(); ++i) {
    seen += histogram[i];
    if (seen >= rank) {
      std::optional<int64_t> upper = BucketUpperMs(i);
      return upper ? std::min(*upper, max_ms) : max_ms;
    }
  }
  return max_ms;
}

Result<int64_t> ParseRfc3339(std::string_view s) {
  size_t p = 0;
  int64_t ms = 0;
  int hh = 0, mm = 0, ss = 0;
  if (!ParseDate(s, &p, &ms)) return Status::InvalidArgument("not an RFC 3339 date");
  if (p >= s.size() || (s[p] != 'T' && s[p] != 't' && s[p] != ' ')) {
    return Status::InvalidArgument("no time after the date");
  }
  ++p;
  if (!Digits(s, &p, 2, &hh) || !Expect(s, &p, ':') || !Digits(s, &p, 2, &mm) ||
      !Expect(s, &p, ':') || !Digits(s, &p, 2, &ss) || hh > 23 || mm > 59 || ss > 60) {
    return Status::InvalidArgument("bad time of day");
  }
  ms += (int64_t{hh} * 3600 + mm * 60 + ss) * 1000;
  if (p < s.size() && s[p] == '.') {
    ++p;
    int64_t scale = 100;
    size_t start = p;
    while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) {
      ms += (s[p] - '0') * scale;
      scale /= 10;
      ++p;
    }
    if (p == start) return Status::InvalidArgument("empty fraction of a second");
  }
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    int sign = s[p] == '+' ? 1 : -1;
    ++p;
    int oh = 0, om = 0;
    if (!Digits(s, &p, 2, &oh) || !Expect(s, &p, ':') || !Digits(s, &p, 2, &om) || oh > 23 ||
        om > 59) {
      return Status::InvalidArgument("bad UTC offset");
    }
    ms -= sign * (int64_t{oh} * 3600 + om * 60) * 1000;
  } else {
    return Status::InvalidArgument("no UTC offset (Z or +HH:MM)");
  }
  if (p != s.size()) return Status::InvalidArgument("trailing characters");
  return ms;
}

Result<int64_t> ParseSince(std::string_view value, int64_t now_ms) {
  if (value.empty()) return BadSince(value, "empty");
  char unit = value.back();
  if (unit == 'm' || unit == 'h' || unit == 'd') {
    std::string_view digits = value.substr(0, value.size() - 1);
    int64_t n = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || n < 1) {
      return BadSince(value, "expected a whole number >= 1 before the unit");
    }
    const int64_t unit_ms = unit == 'm' ? 60'000 : unit == 'h' ? kHourMs : 24 * kHourMs;
    if (n > (int64_t{1} << 42) / unit_ms) return BadSince(value, "too far back");
    return HourOf(now_ms - n * unit_ms);
  }
  if (value.size() == 10) {
    size_t p = 0;
    int64_t ms = 0;
    if (!ParseDate(value, &p, &ms)) return BadSince(value, "not a valid date");
    return ms;
  }
  Result<int64_t> t = ParseRfc3339(value);
  if (!t.ok()) return BadSince(value, t.status().message());
  return HourOf(*t);
}

}  // namespace wtd
