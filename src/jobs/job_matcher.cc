// JobMatcher: a job spec with its message regex compiled once.

#include <regex.h>

#include <string>

#include "jobs/job_spec.h"
#include "jobs/message_regex.h"

namespace wtd {

struct JobMatcher::Regex {
  regex_t re;
};

JobMatcher::JobMatcher(JobSpec spec) : spec_(std::move(spec)) {}

JobMatcher::~JobMatcher() {
  if (regex_) regfree(&regex_->re);
}

Result<std::shared_ptr<const JobMatcher>> JobMatcher::Compile(JobSpec spec) {
  std::shared_ptr<JobMatcher> m(new JobMatcher(std::move(spec)));
  if (m->spec_.message.empty()) return std::shared_ptr<const JobMatcher>(std::move(m));
  const std::string& file = m->spec_.file;
  if (EstimateRegexElements(m->spec_.message) > kMaxRegexElements) {
    return Status::InvalidArgument(file + ":0: message: regular expression is too large");
  }
  auto regex = std::make_unique<Regex>();
  int rc = regcomp(&regex->re, m->spec_.message.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char buf[256];
    regerror(rc, &regex->re, buf, sizeof(buf));
    return Status::InvalidArgument(file + ":0: message: cannot compile regular expression: " + buf);
  }
  m->regex_ = std::move(regex);
  return std::shared_ptr<const JobMatcher>(std::move(m));
}

bool JobMatcher::MatchesBranch(std::string_view branch) const {
  for (const std::string& glob : spec_.branches) {
    if (GlobMatch(glob, branch, /*path_mode=*/false)) return true;
  }
  return false;
}

bool JobMatcher::MatchesPaths(const std::vector<std::string>& changed_paths) const {
  if (spec_.paths.empty()) return true;
  for (const std::string& path : changed_paths) {
    for (const std::string& glob : spec_.paths) {
      if (GlobMatch(glob, path, /*path_mode=*/true)) return true;
    }
  }
  return false;
}

bool JobMatcher::MatchesMessage(std::string_view message) const {
  if (!regex_) return true;
  const std::string text(message);  // regexec needs a NUL-terminated string
  return regexec(&regex_->re, text.c_str(), 0, nullptr, 0) == 0;
}

}  // namespace wtd
