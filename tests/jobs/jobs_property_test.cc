// Properties of the job-file parser and the glob matcher over random input.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>

#include "jobs/job_spec.h"

namespace wtd {
namespace {

// `text` with every glob metacharacter escaped by '\'.
std::string Escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

size_t ClassLength(std::string_view pattern, size_t p);

// A plain recursive matcher with the documented semantics: exponential, but
// obviously right, and fine for short strings.
bool Reference(std::string_view pat, size_t p, std::string_view text, size_t t, bool path_mode) {
  if (p == pat.size()) return t == text.size();
  bool seg_start = p == 0 || pat[p - 1] == '/';
  if (path_mode && seg_start && pat.substr(p, 2) == "**") {
    if (p + 2 == pat.size()) return true;
    if (pat[p + 2] == '/') {
      if (Reference(pat, p + 3, text, t, path_mode)) return true;
      size_t slash = text.find('/', t);
      return slash != std::string_view::npos && Reference(pat, p, text, slash + 1, path_mode);
    }
  }
  if (pat[p] == '*') {
    size_t q = p;
    while (q < pat.size() && pat[q] == '*') ++q;
    for (size_t k = t;; ++k) {
      if (Reference(pat, q, text, k, path_mode)) return true;
      if (k == text.size() || (path_mode && text[k] == '/')) return false;
    }
  }
  if (t == text.size()) return false;
  char c = text[t];
  size_t len = 1;
  bool ok = false;
  if (pat[p] == '?') {
    ok = !(path_mode && c == '/');
  } else if (pat[p] == '\\' && p + 1 < pat.size()) {
    ok = pat[p + 1] == c;
    len = 2;
  } else if (pat[p] == '[' && (len = ClassLength(pat, p)) != 0) {
    // Only single-character members and ranges without escapes are
    // generated in classes below, so a simple scan suffices.
    size_t i = p + 1;
    bool negate = pat[i] == '!' || pat[i] == '^';
    if (negate) ++i;
    bool in = false;
    for (size_t end = p + len - 1; i < end; ++i) {
      if (pat[i] == '\\' && i + 1 < end) ++i;
      char lo = pat[i];
      char hi = lo;
      if (i + 2 < end && pat[i + 1] == '-') {
        hi = pat[i + 2];
        if (hi == '\\' && i + 3 < end) hi = pat[i + 3], ++i;
        i += 2;
      }
      in = in || (static_cast<unsigned char>(lo) <= static_cast<unsigned char>(c) &&
                  static_cast<unsigned char>(c) <= static_cast<unsigned char>(hi));
    }
    ok = in != negate && !(path_mode && c == '/');
  } else {
    len = 1;
    ok = pat[p] == c;
  }
  return ok && Reference(pat, p + len, text, t + 1, path_mode);
}

// Length of the bracket expression at pat[p] == '[', or 0 if unterminated.
size_t ClassLength(std::string_view pat, size_t p) {
  size_t i = p + 1;
  if (i < pat.size() && (pat[i] == '!' || pat[i] == '^')) ++i;
  if (i < pat.size() && pat[i] == ']') ++i;
  while (i < pat.size() && pat[i] != ']') i += (pat[i] == '\\' && i + 1 < pat.size()) ? 2 : 1;
  return i < pat.size() ? i + 1 - p : 0;
}

rc::Gen<std::string> SmallString(const std::string& alphabet) {
  return rc::gen::resize(12, rc::gen::container<std::string>(rc::gen::elementOf(
                                 std::vector<char>(alphabet.begin(), alphabet.end()))));
}

RC_GTEST_PROP(JobsPropertyTest, GlobAgreesWithRecursiveReference, ()) {
  const std::string pattern = *SmallString("ab/*?[]!-\\");
  const std::string text = *SmallString("ab/[]!-*\\");
  const bool path_mode = *rc::gen::arbitrary<bool>();
  RC_ASSERT(GlobMatch(pattern, text, path_mode) == Reference(pattern, 0, text, 0, path_mode));
}

RC_GTEST_PROP(JobsPropertyTest, GlobAgreesWithReferenceOnPathLikeInput, ()) {
  const std::string pattern = *SmallString("ab/**");
  const std::string text = *SmallString("ab//");
  RC_ASSERT(GlobMatch(pattern, text, true) == Reference(pattern, 0, text, 0, true));
  RC_ASSERT(GlobMatch(pattern, text, false) == Reference(pattern, 0, text, 0, false));
}

// Random lines drawn from job-file fragments, so that parses get past the
// first line often enough to exercise every key.
rc::Gen<std::string> JobFileText() {
  return rc::gen::map(
      rc::gen::container<std::vector<std::string>>(rc::gen::oneOf(
          rc::gen::elementOf(std::vector<std::string>{
              "run = make", "[job]", "# c", "", "branches = main *", "paths = **/*.md",
              "message = ^fix", "message = (", "timeout_s = 10", "max_attempts = 101",
              "retry_backoff_s = x", "env.A = 1", "env.WTD_X = 1", "=", "\r"}),
          rc::gen::arbitrary<std::string>())),
      [](const std::vector<std::string>& lines) {
        std::string s;
        for (const std::string& l : lines) s += l + "\n";
        return s;
      });
}

void CheckParse(const std::string& file, const std::string& content) {
  Result<JobSpec> r = ParseJobSpec(file, content);
  if (r.ok()) {
    RC_ASSERT(!r->run.empty());
    RC_ASSERT(!r->branches.empty());
    RC_ASSERT(r->file == file);
    Result<std::shared_ptr<const JobMatcher>> m = JobMatcher::Compile(std::move(*r));
    RC_ASSERT(m.ok());
  } else {
    RC_ASSERT(r.status().IsInvalidArgument());
    RC_ASSERT(r.status().message().rfind(file + ":", 0) == 0);
  }
}

RC_GTEST_PROP(JobsPropertyTest, ParseNeverCrashesAndErrorsNameTheFile,
              (const std::string& content)) {
  CheckParse("jobs/p.job", content);
}

RC_GTEST_PROP(JobsPropertyTest, ParseOfJobLikeTextNeverCrashes, ()) {
  const std::string content = *JobFileText();
  const std::string file = *rc::gen::elementOf(
      std::vector<std::string>{"jobs/p.job", "x/.p.job", "p.txt", "jobs/a b.job"});
  CheckParse(file, content);
}

RC_GTEST_PROP(JobsPropertyTest, EscapedTextMatchesItself, (const std::string& text)) {
  RC_ASSERT(GlobMatch(Escaped(text), text, /*path_mode=*/false));
  RC_ASSERT(GlobMatch(Escaped(text), text, /*path_mode=*/true));
}

RC_GTEST_PROP(JobsPropertyTest, StarMatchesAnyBranchAndDoubleStarAnyPath,
              (const std::string& text)) {
  RC_ASSERT(GlobMatch("*", text, /*path_mode=*/false));
  RC_ASSERT(GlobMatch("**", text, /*path_mode=*/true));
}

}  // namespace
}  // namespace wtd
