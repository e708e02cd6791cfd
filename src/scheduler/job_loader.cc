#include "scheduler/job_loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace wtd {

Result<std::vector<std::shared_ptr<const JobMatcher>>> JobLoader::Load(
    git::Repository* repo, const std::string& sha, const std::string& jobs_root) {
  std::map<std::string, std::string> refused;
  WTD_ASSIGN_OR_RETURN(auto files, repo->ReadTreeFiles(sha, jobs_root, ".job", &refused));
  for (const auto& [name, why] : refused) {
    std::string message = jobs_root + "/" + name + ": " + why;
    // Once per file and reason, like a bad file once per content.
    if (!refused_seen_.insert(repo->root() + '\0' + message).second) continue;
    if (refused_seen_.size() > 4096) refused_seen_.clear();  // bound memory
    Report(repo->root(), sha, message);
  }
  std::vector<std::shared_ptr<const JobMatcher>> jobs;
  for (const auto& [name, content] : files) {
    std::string file = jobs_root + "/" + name;
    std::string cache_key = file;
    cache_key.push_back('\0');
    cache_key += content;
    auto it = cache_.find(cache_key);
    if (it == cache_.end()) {
      Entry e;
      Result<JobSpec> spec = ParseJobSpec(file, content);
      Status st = spec.status();
      if (spec.ok()) {
        Result<std::shared_ptr<const JobMatcher>> m = JobMatcher::Compile(std::move(*spec));
        if (m.ok()) e.matcher = *m;
        st = m.status();
      }
      if (!st.ok()) Report(repo->root(), sha, st.message());
      if (cache_.size() > 4096) cache_.clear();  // bound memory on long histories
      it = cache_.emplace(std::move(cache_key), std::move(e)).first;
    }
    if (it->second.matcher) jobs.push_back(it->second.matcher);
  }
  return jobs;
}

namespace {

// The line of a parse error "<file>:<line>: <key>: ...", 0 when absent.
int64_t ErrorLine(const std::string& file, const std::string& message) {
  if (message.compare(0, file.size() + 1, file + ":") != 0) return 0;
  int64_t line = 0;
  for (size_t i = file.size() + 1; i < message.size() && message[i] >= '0' && message[i] <= '9';
       ++i) {
    line = line * 10 + (message[i] - '0');
    if (line > 1'000'000'000) return 0;
  }
  return line;
}

}  // namespace

Result<JobFiles> ReadJobFiles(git::Repository* repo, const std::string& sha,
                              const std::string& jobs_root) {
  std::map<std::string, std::string> refused;
  WTD_ASSIGN_OR_RETURN(auto files, repo->ReadTreeFiles(sha, jobs_root, ".job", &refused));
  JobFiles out;
  for (const auto& [name, why] : refused) {
    out.problems.push_back({jobs_root + "/" + name, 0, jobs_root + "/" + name + ": " + why});
  }
  for (const auto& [name, content] : files) {
    std::string file = jobs_root + "/" + name;
    Result<JobSpec> spec = ParseJobSpec(file, content);
    Status st = spec.status();
    if (spec.ok()) {
      Result<std::shared_ptr<const JobMatcher>> m = JobMatcher::Compile(std::move(*spec));
      if (m.ok()) out.jobs.push_back(*m);
      st = m.status();
    }
    if (!st.ok()) out.problems.push_back({file, ErrorLine(file, st.message()), st.message()});
  }
  std::sort(out.problems.begin(), out.problems.end(),
            [](const JobFileProblem& a, const JobFileProblem& b) { return a.file < b.file; });
  return out;
}

void JobLoader::Report(const std::string& root, const std::string& sha,
                       const std::string& message) {
  spdlog::error("bad job file in {} at {}: {}", root, sha.substr(0, 12), message);
  errors_.push_back(JobFileError{root, sha, message});
  if (errors_.size() > kMaxErrors) errors_.pop_front();
}

}  // namespace wtd
