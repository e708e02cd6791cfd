// The arithmetic of run statistics (docs/design/stats.md): folding one
// terminal run into its hourly RunStats record, merging the records of a
// window, percentiles from the merged duration histogram, and the `--since`
// forms of `wtctl stats`.
//
// RunStore keeps one RunStats per (repo, worktree, job, hour of finish) and
// updates it in the batch that makes a run terminal; `stats` merges the
// records of its window and never reads run history.
//
// Thread-safety: plain values and pure functions.
#ifndef WTD_RUNS_RUN_STATS_H_
#define WTD_RUNS_RUN_STATS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "store/records.h"
#include "wtd/status.h"

namespace wtd {

inline constexpr int64_t kHourMs = 3'600'000;

// The start of the UTC hour holding `ms`.
int64_t HourOf(int64_t ms);

// The histogram bucket of a duration: the first whose bound is >= it, else
// the last (+Inf).
size_t BucketOf(int64_t duration_ms);
// The inclusive upper bound of bucket `i`; nullopt for +Inf.
std::optional<int64_t> BucketUpperMs(size_t i);
// The exclusive lower bound of bucket `i` (-1 for the first: it holds 0).
int64_t BucketLowerMs(size_t i);

// The duration `stats` counts for a terminal run: its final attempt's, as
// `runs` shows it; none for a run that never started.
std::optional<int64_t> CountedDurationMs(const Run& r);

// The meta key of a RunStats record, and the prefix of all of them.
// Hour first, so that a window is one range scan (hours before the epoch
// count as hour 0):
//   "run_stats\0" + EncodeU64Key(hour_ms) + repo \0 worktree \0 job
std::string RunStatsKey(int64_t hour_ms, std::string_view repo, std::string_view worktree,
                        std::string_view job);
std::string_view RunStatsPrefix();
// The first key of the records of hours >= hour_ms.
std::string RunStatsStartKey(int64_t hour_ms);

// Folds terminal run `r` into `s` (whose identity fields must be r's key and
// HourOf(r.finished_at_ms); they are set when `s` is empty).
void AddRunToStats(RunStats& s, const Run& r);
// Adds `from` into `into` (counts, sums, histogram; keeps the slowest and
// newest failures within their limits). Identity fields of `into` are kept.
void MergeStats(RunStats& into, const RunStats& from);

// The estimate of quantile q (0 < q <= 1) from the histogram: the upper bound
// of the bucket holding the nearest-rank q-th duration, capped at `max_ms`
// (exact). nullopt when the histogram is empty.
std::optional<int64_t> PercentileMs(const std::vector<uint64_t>& histogram, double q,
                                    int64_t max_ms);

// Parses a `--since` value against `now_ms`: "Nm", "Nh", "Nd" (minutes,
// hours, days ago), an RFC 3339 time, or YYYY-MM-DD (UTC midnight). Returns
// the start of the hour holding that instant (windows are whole hours).
// InvalidArgument naming the value otherwise.
Result<int64_t> ParseSince(std::string_view value, int64_t now_ms);

// An RFC 3339 time ("2026-12-03T05:00:00Z", "...05:00:00.250+01:00") in ms
// since the epoch.
Result<int64_t> ParseRfc3339(std::string_view value);

}  // namespace wtd

#endif  // WTD_RUNS_RUN_STATS_H_
