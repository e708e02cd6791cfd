// Validation of the `message` regex of a job file (internal to src/jobs).
//
// glibc's regcomp expands bounded repetition by copying the repeated
// subexpression, so "((a{1000}){1000}){1000}" needs billions of nodes and
// seconds of CPU before it fails. Job files come from any commit, so the
// expanded size is estimated and bounded before regcomp ever sees it.
//
// Thread-safety: pure functions.
#ifndef WTD_JOBS_MESSAGE_REGEX_H_
#define WTD_JOBS_MESSAGE_REGEX_H_

#include <cstdint>
#include <string>

namespace wtd {

// Upper bound on the estimated number of expanded regex elements.
inline constexpr uint64_t kMaxRegexElements = 100000;

// An upper estimate of the number of elements regcomp builds for the POSIX
// extended regex `re` once each bounded repetition is expanded. Saturates at
// kMaxRegexElements + 1. Never fails: malformed input gets some estimate.
uint64_t EstimateRegexElements(const std::string& re);

// "" when `re` is a valid, not too large POSIX extended regex; otherwise what
// is wrong with it (without the file/line prefix).
std::string MessageRegexProblem(const std::string& re);

}  // namespace wtd

#endif  // WTD_JOBS_MESSAGE_REGEX_H_
