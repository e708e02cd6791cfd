// GlobMatch: iterative wildcard matching with at most two backtrack points
// (the last '*' and, in path mode, the last "**/"), so the running time is
// bounded by |pattern| * |text| steps of a single-character match.

#include <string_view>

#include "jobs/job_spec.h"

namespace wtd {
namespace {

constexpr size_t kNone = std::string_view::npos;

// Matches a bracket expression starting at pattern[p] == '[' against `c`.
// Sets *len to the length of the expression. Returns false with *len == 0
// when the expression is unterminated (the caller then treats '[' as a
// literal).
bool MatchClass(std::string_view pattern, size_t p, char c, bool path_mode, size_t* len) {
  size_t i = p + 1;
  bool negate = i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^');
  if (negate) ++i;
  bool matched = false;
  bool first = true;
  while (i < pattern.size() && (pattern[i] != ']' || first)) {
    first = false;
    char lo = pattern[i];
    if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
    ++i;
    char hi = lo;
    if (i + 1 < pattern.size() && pattern[i] == '-' && pattern[i + 1] != ']') {
      hi = pattern[i + 1];
      i += 2;
      if (hi == '\\' && i < pattern.size()) hi = pattern[i++];
    }
    auto uc = static_cast<unsigned char>(c);
    if (static_cast<unsigned char>(lo) <= uc && uc <= static_cast<unsigned char>(hi)) {
      matched = true;
    }
  }
  if (i >= pattern.size()) {
    *len = 0;
    return false;
  }
  *len = i + 1 - p;
  if (path_mode && c == '/') return false;
  return matched != negate;
}

// Matches the single-character element at pattern[p] (not '*') against `c`.
// Sets *len to the element's length in the pattern.
bool MatchOne(std::string_view pattern, size_t p, char c, bool path_mode, size_t* len) {
  switch (pattern[p]) {
    case '?':
      *len = 1;
      return !(path_mode && c == '/');
    case '[':
      if (MatchClass(pattern, p, c, path_mode, len)) return true;
      if (*len != 0) return false;
      *len = 1;  // unterminated: a literal '['
      return c == '[';
    case '\\':
      if (p + 1 < pattern.size()) {
        *len = 2;
        return pattern[p + 1] == c;
      }
      *len = 1;
      return c == '\\';
    default:
      *len = 1;
      return pattern[p] == c;
  }
}

bool AtSegmentStart(std::string_view pattern, size_t p) { return p == 0 || pattern[p - 1] == '/'; }

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text, bool path_mode) {
  size_t p = 0;
  size_t t = 0;
  size_t star_p = kNone;   // pattern position after the last '*'
  size_t star_t = 0;       // text position that '*' currently extends to
  size_t dstar_p = kNone;  // pattern position after the last "**/"
  size_t dstar_t = 0;      // text position (a segment start) it extends to
  while (true) {
    if (p < pattern.size()) {
      bool segment_stars = path_mode && pattern.substr(p, 2) == "**" && AtSegmentStart(pattern, p);
      if (segment_stars && p + 2 == pattern.size()) return true;  // trailing "/**"
      if (segment_stars && pattern[p + 2] == '/') {
        p += 3;
        dstar_p = p;
        dstar_t = t;
        star_p = kNone;
        continue;
      }
      if (pattern[p] == '*') {
        while (p < pattern.size() && pattern[p] == '*') ++p;
        star_p = p;
        star_t = t;
        continue;
      }
      size_t len = 0;
      if (t < text.size() && MatchOne(pattern, p, text[t], path_mode, &len)) {
        p += len;
        ++t;
        continue;
      }
    } else if (t == text.size()) {
      return true;
    }
    // Mismatch: let the last '*' take one more character, unless that would
    // cross a '/' in path mode; then let the last "**/" take one more segment.
    if (star_p != kNone && star_t < text.size() && !(path_mode && text[star_t] == '/')) {
      p = star_p;
      t = ++star_t;
      continue;
    }
    if (dstar_p != kNone) {
      size_t slash = text.find('/', dstar_t);
      if (slash == kNone) return false;
      dstar_t = slash + 1;
      p = dstar_p;
      t = dstar_t;
      star_p = kNone;
      continue;
    }
    return false;
  }
}

}  // namespace wtd
