// Validation of the `message` regex of a job file (internal to src/jobs).
//
// glibc's regcomp expands bounded repetition by copying the repeated
// subexpression, so "((a{1000}){1000}){1000}" needs billions of nodes and
// seconds of CPU before it fails, and its epsilon closures grow with the
// square of the node count where subexpressions can match empty: "(x*){10000}"
// takes 775 MB, "x++++*+++++++++++" 9 s and 1.2 GB. Job files come from any
// commit, so before regcomp ever sees a regex, repetition operators stacked
// on one another (undefined in POSIX EREs) are refused and the expanded size
// is bounded: at the bound the worst measured case compiles in about 0.5 s
// and 20 MB.
//
// Thread-safety: pure functions.
#ifndef WTD_JOBS_MESSAGE_REGEX_H_
#define WTD_JOBS_MESSAGE_REGEX_H_

#include <cstdint>
#include <string>

namespace wtd {

// Upper bound on the estimated number of expanded regex elements.
inline constexpr uint64_t kMaxRegexElements = 500;

// An upper estimate of the number of elements regcomp builds for the POSIX
// extended regex `re` once each bounded repetition is expanded. Saturates at
// kMaxRegexElements + 1. Never fails: malformed input gets some estimate.
uint64_t EstimateRegexElements(const std::string& re);

// The offset of a repetition operator (* + ? or an interval) that follows
// another one directly, as in "a+*" or "a{2}+"; npos when there is none.
size_t StackedRepetition(const std::string& re);

// "" when `re` is a valid, not too large POSIX extended regex; otherwise what
// is wrong with it (without the file/line prefix).
std::string MessageRegexProblem(const std::string& re);

}  // namespace wtd

#endif  // WTD_JOBS_MESSAGE_REGEX_H_
