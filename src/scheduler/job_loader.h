// JobLoader: the jobs defined in one commit, read from that commit's own
// tree (never the checkout), parsed and compiled once per distinct file
// content and shared by every commit that carries the same file.
//
// A job file that does not parse is reported once per distinct content
// (logged and kept in errors()) and skipped; the commit's other jobs load.
// A symlinked job file is read through its link when the link stays inside
// the commit's tree (git::Repository::ReadTreeFiles); one that cannot be
// followed is reported the same way, once per file and reason, naming the
// file, its target and why.
//
// Thread-safety: not thread-safe; used by the poller's thread.
#ifndef WTD_SCHEDULER_JOB_LOADER_H_
#define WTD_SCHEDULER_JOB_LOADER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "git/repository.h"
#include "jobs/job_spec.h"
#include "report/daemon_status.h"
#include "wtd/status.h"

namespace wtd {

// One job file that did not load: its repository-relative path, the line
// of the first error (0 when it is not tied to one) and the message.
struct JobFileProblem {
  std::string file;
  int64_t line = 0;
  std::string message;
};

// Every job file of commit `sha` under `jobs_root`, parsed and compiled the
// way JobLoader::Load does, but uncached and keeping each failure with its
// file: what `wtctl jobs` lists and what `wtctl trigger` names when a job
// does not load. Fails only when the tree cannot be read.
struct JobFiles {
  std::vector<std::shared_ptr<const JobMatcher>> jobs;  // by name
  std::vector<JobFileProblem> problems;                 // by file
};
Result<JobFiles> ReadJobFiles(git::Repository* repo, const std::string& sha,
                              const std::string& jobs_root);

class JobLoader {
 public:
  // The jobs of commit `sha` under `jobs_root`, by name. Fails only when
  // the tree cannot be read; bad job files are skipped and reported.
  Result<std::vector<std::shared_ptr<const JobMatcher>>> Load(git::Repository* repo,
                                                              const std::string& sha,
                                                              const std::string& jobs_root);

  // The most recent job-file errors, oldest first (at most kMaxErrors).
  const std::deque<JobFileError>& errors() const { return errors_; }
  static constexpr size_t kMaxErrors = 100;

 private:
  struct Entry {
    std::shared_ptr<const JobMatcher> matcher;  // null when the file is bad
  };
  // Logs `message` and keeps it in errors_.
  void Report(const std::string& root, const std::string& sha, const std::string& message);

  // Keyed by file path + content: the same bytes always parse the same way.
  std::map<std::string, Entry> cache_;
  std::set<std::string> refused_seen_;  // root \0 message of symlinks reported
  std::deque<JobFileError> errors_;
};

}  // namespace wtd

#endif  // WTD_SCHEDULER_JOB_LOADER_H_
