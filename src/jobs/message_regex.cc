// Size estimate and validation of job-file message regexes.

#include "jobs/message_regex.h"

#include <regex.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace wtd {
namespace {

constexpr uint64_t kCap = kMaxRegexElements + 1;

uint64_t SatAdd(uint64_t a, uint64_t b) { return std::min(kCap, a + b); }
uint64_t SatMul(uint64_t a, uint64_t b) { return std::min(kCap, a * std::min(b, kCap)); }

// One open group: the size of its finished items and of its last item (the
// one a following repetition operator applies to).
struct Frame {
  uint64_t total = 0;
  uint64_t last = 0;
  void Push(uint64_t item) {
    total = SatAdd(total, last);
    last = item;
  }
  uint64_t Size() const { return std::max<uint64_t>(1, SatAdd(total, last)); }
};

// Index just past the bracket expression that starts at re[i] == '['.
size_t SkipBracket(const std::string& re, size_t i) {
  ++i;
  if (i < re.size() && re[i] == '^') ++i;
  if (i < re.size() && re[i] == ']') ++i;
  while (i < re.size() && re[i] != ']') {
    if (re[i] == '[' && i + 1 < re.size() &&
        (re[i + 1] == ':' || re[i + 1] == '=' || re[i + 1] == '.')) {
      size_t close = re.find(std::string{re[i + 1], ']'}, i + 2);
      i = close == std::string::npos ? re.size() : close + 2;
    } else {
      ++i;
    }
  }
  return std::min(re.size(), i + 1);
}

// Parses "{m}", "{m,}" or "{m,n}" at re[i] == '{'. Returns the largest count
// it allows (m + 1 for "{m,}") and sets *end past it; 0 when not an interval.
uint64_t ParseInterval(const std::string& re, size_t i, size_t* end) {
  uint64_t counts[2] = {0, 0};
  int which = 0;
  bool comma = false;
  for (++i; i < re.size(); ++i) {
    char c = re[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      counts[which] = std::min<uint64_t>(kCap, counts[which] * 10 + (c - '0'));
    } else if (c == ',' && !comma) {
      comma = true;
      which = 1;
    } else if (c == '}') {
      *end = i + 1;
      uint64_t n = !comma ? counts[0] : (i > 0 && re[i - 1] == ',') ? counts[0] + 1 : counts[1];
      return std::max<uint64_t>(1, n);
    } else {
      return 0;
    }
  }
  return 0;
}

}  // namespace

uint64_t EstimateRegexElements(const std::string& re) {
  std::vector<Frame> stack(1);
  for (size_t i = 0; i < re.size();) {
    char c = re[i];
    size_t end = i + 1;
    if (c == '(') {
      stack.emplace_back();
    } else if (c == ')' && stack.size() > 1) {
      uint64_t group = stack.back().Size();
      stack.pop_back();
      stack.back().Push(group);
    } else if (c == '{') {
      uint64_t n = ParseInterval(re, i, &end);
      if (n == 0) stack.back().Push(1);
      stack.back().last = SatMul(stack.back().last, n == 0 ? 1 : n);
    } else if (c == '+') {
      stack.back().last = SatMul(stack.back().last, 2);
    } else if (c == '*' || c == '?' || c == '|' || c == '^' || c == '$') {
      // No copies; '|' joins the alternatives' sizes like a sequence does.
    } else if (c == '[') {
      end = SkipBracket(re, i);
      stack.back().Push(1);
    } else {
      if (c == '\\') end = std::min(re.size(), i + 2);
      stack.back().Push(1);
    }
    i = end;
  }
  while (stack.size() > 1) {
    uint64_t group = stack.back().Size();
    stack.pop_back();
    stack.back().Push(group);
  }
  return SatAdd(stack[0].total, stack[0].last);
}

size_t StackedRepetition(const std::string& re) {
  bool after_repetition = false;
  for (size_t i = 0; i < re.size();) {
    char c = re[i];
    size_t end = i + 1;
    bool repetition = c == '*' || c == '+' || c == '?';
    if (c == '{') repetition = ParseInterval(re, i, &end) != 0;
    if (c == '[') end = SkipBracket(re, i);
    if (c == '\\') end = std::min(re.size(), i + 2);
    if (repetition && after_repetition) return i;
    after_repetition = repetition;
    i = end;
  }
  return std::string::npos;
}

std::string MessageRegexProblem(const std::string& re) {
  if (size_t at = StackedRepetition(re); at != std::string::npos) {
    return "repetition operator '" + re.substr(at, 1) + "' at offset " + std::to_string(at) +
           " follows another repetition (write one operator, or group: (a+)*)";
  }
  if (EstimateRegexElements(re) > kMaxRegexElements) {
    return "regular expression is too large (more than " + std::to_string(kMaxRegexElements) +
           " elements once repetitions are expanded)";
  }
  regex_t compiled;
  int rc = regcomp(&compiled, re.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc == 0) {
    regfree(&compiled);
    return "";
  }
  char buf[256];
  regerror(rc, &compiled, buf, sizeof(buf));
  return std::string("invalid regular expression: ") + buf;
}

}  // namespace wtd
