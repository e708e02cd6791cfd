// Job definitions: parsing `<jobs-root>/<name>.job` files and matching a
// parsed job against a commit (branch, changed paths, message).
//
// A job file is a small line-based INI file, read from the tree of the commit
// being processed (this module does no I/O and does not touch git):
//
//   # Runs the tests on main and release branches when code changes.
//   [job]
//   run = make test
//   branches = main release/*
//   paths = src/** **/*.md
//   message = ^(fix|feat)
//   timeout_s = 600
//   max_attempts = 2
//   retry_backoff_s = 30
//   env.CC = clang
//
// Keys: `run` (required; run later by /bin/sh -c), `branches` (globs, default
// "*"), `paths` (globs, default: any path), `message` (POSIX extended regex
// searched in the full commit message, default: any), `timeout_s` (1..604800,
// default 3600), `max_attempts` (1..100, default 3), `retry_backoff_s`
// (0..86400, default 10), `env.NAME` (extra environment, in file order; NAME
// matches [A-Za-z_][A-Za-z0-9_]* and does not start with WTD_), `isolation`
// (`commit`, the default: the job runs in a daemon-owned worktree at exactly
// its commit; `inplace`: in the watched worktree as it is), `keep_worktree`
// (`never`, the default, or `on_failure`: a failed run's worktree is kept). Glob lists are
// separated by blanks. An optional `[job]` header may appear once, before any
// key; any other section is an error.
//
// Lines are trimmed of blanks (space, tab, CR, FF, VT; so CRLF files parse).
// A line whose first non-blank character is '#' or ';' is a comment; a '#'
// later in a line is part of the value. `key = value` splits at the first
// '='. A UTF-8 byte-order mark at the start is skipped. Files are at most
// 64 KiB and contain no NUL byte.
//
// Path globs are matched against the full repository-relative path (unlike
// .gitignore, a pattern without '/' does NOT match a base name at any depth):
// "*.md" matches only top-level Markdown files, "**/*.md" matches all.
//
// Every parse error is InvalidArgument with the message
// "<file>:<line>: <key>: <what is wrong>" (line 0 and key "-" when the error
// is not tied to one line). The first error in the file is reported. Control
// bytes in the file name and key are shown as \xNN; keys are cut at 64 bytes.
// A `message` regex whose bounded repetitions ("a{100}") would expand to more
// than 100000 elements is rejected (see message_regex.h).
//
// Thread-safety: ParseJobSpec and GlobMatch are pure functions. A JobMatcher
// is immutable after Compile; its const methods may be called concurrently.
#ifndef WTD_JOBS_JOB_SPEC_H_
#define WTD_JOBS_JOB_SPEC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wtd/status.h"

namespace wtd {

struct JobSpec {
  std::string name;                        // file stem, e.g. "build"
  std::string file;                        // repo-relative path it came from, e.g. "jobs/build.job"
  std::string run;                         // never empty after a successful parse
  std::vector<std::string> branches{"*"};  // never empty
  std::vector<std::string> paths;          // empty: any path
  std::string message;                     // empty: any message
  int64_t timeout_s = 3600;
  uint32_t max_attempts = 3;
  int64_t retry_backoff_s = 10;
  std::vector<std::pair<std::string, std::string>> env;  // in file order, names unique
  bool inplace = false;                                  // isolation = inplace (default commit)
  bool keep_on_failure = false;  // keep_worktree = on_failure (default never)
};

// Limits and bounds of the job-file format.
inline constexpr size_t kMaxJobFileBytes = 64 * 1024;
inline constexpr int64_t kMinTimeoutS = 1;
inline constexpr int64_t kMaxTimeoutS = 604800;  // one week
inline constexpr int64_t kMinAttempts = 1;
inline constexpr int64_t kMaxAttempts = 100;
inline constexpr int64_t kMinBackoffS = 0;
inline constexpr int64_t kMaxBackoffS = 86400;  // one day

// Parses one job file. `file` is used in error messages and stored in the
// spec; the job name is its base name minus ".job" (the base name must end in
// ".job", and the name must match [A-Za-z0-9._-]+ and not start with '.').
// Validates the `message` regex by compiling and freeing it.
// Never throws or aborts on any input.
Result<JobSpec> ParseJobSpec(const std::string& file, std::string_view content);

// Whether `pattern` matches all of `text`. Supports '*', '?', '[abc]',
// '[a-z]', '[!x]' (also '[^x]'), and '\' escaping the next character.
// An unterminated '[' and a trailing '\' match themselves literally.
//
// path_mode false (branch names): '*' matches any run of characters,
// including '/'.
// path_mode true (repository paths): '*', '?' and classes never match '/';
// a whole segment "**" matches any number of segments: "**/" matches zero or
// more leading directories ("**/*.md" matches "a.md" and "x/y/a.md",
// "src/**/x.cc" matches "src/x.cc"), and a trailing "/**" matches everything
// below ("docs/**" matches "docs/a/b" but not "docs"). Stars that are not a
// whole segment act as one '*'.
//
// Runs in O(|pattern| * |text|) time; no exponential backtracking.
bool GlobMatch(std::string_view pattern, std::string_view text, bool path_mode);

// A parsed spec with its message regex compiled; immutable after Compile,
// safe to share across threads.
class JobMatcher {
 public:
  // Compiles the spec's message regex. `spec` should come from ParseJobSpec;
  // an invalid regex still gives InvalidArgument in the usual message form.
  static Result<std::shared_ptr<const JobMatcher>> Compile(JobSpec spec);

  JobMatcher(const JobMatcher&) = delete;
  JobMatcher& operator=(const JobMatcher&) = delete;
  ~JobMatcher();  // regfree

  const JobSpec& spec() const { return spec_; }

  // Whether any `branches` glob matches the short branch name ("feature/x").
  bool MatchesBranch(std::string_view branch) const;

  // Whether the paths filter needs the changed-path list at all (false when
  // `paths` is empty).
  bool NeedsPaths() const { return !spec_.paths.empty(); }

  // Whether any changed path matches any `paths` glob; true when `paths` is
  // empty. An empty change list matches only a job without `paths`.
  bool MatchesPaths(const std::vector<std::string>& changed_paths) const;

  // Whether the regex matches somewhere in `message` (true when `message` in
  // the spec is empty). A NUL byte in `message` ends the searched text.
  bool MatchesMessage(std::string_view message) const;

 private:
  struct Regex;  // wraps regex_t so this header does not include <regex.h>

  explicit JobMatcher(JobSpec spec);

  JobSpec spec_;
  std::unique_ptr<Regex> regex_;  // null when spec_.message is empty
};

}  // namespace wtd

#endif  // WTD_JOBS_JOB_SPEC_H_
