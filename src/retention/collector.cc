#include "retention/collector.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/crash_point.h"
#include "base/file_util.h"
#include "base/paths.h"
#include "locks/lock_name.h"
#include "locks/lock_refs.h"
#include "store/keys.h"
#include "worktrees/slots.h"

namespace wtd {
namespace {

// The id of "<digits><suffix>", or 0 when `name` is not that.
uint64_t IdOfFile(const std::string& name, const std::string& suffix) {
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return 0;
  }
  std::string digits = name.substr(0, name.size() - suffix.size());
  if (digits.empty() || digits.size() > 19 || digits[0] == '0') return 0;
  uint64_t id = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

int64_t MtimeMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

Result<ReapRecordEntry> ParseReapRecord(const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("at_ms") || !j["at_ms"].is_number_integer()) {
    return Status::Corruption("meta/" + key + ": not a reap record with at_ms");
  }
  ReapRecordEntry e;
  e.key = key;
  e.repo = j.value("repo", "");
  e.name = j.value("name", "");
  e.ref = j.value("ref", "");
  e.blob = j.value("blob", "");
  e.at_ms = j["at_ms"].get<int64_t>();
  return e;
}

}  // namespace

int64_t RetentionMs(double days) {
  if (!(days > 0)) return 0;
  return static_cast<int64_t>(std::llround(days * 86'400'000.0));
}

Result<bool> ReapStillPending(const ReapRecordEntry& r) {
  // The locks root is what the record's ref holds before its name.
  if (r.ref.size() <= r.name.size() + 1 ||
      r.ref.compare(r.ref.size() - r.name.size(), r.name.size(), r.name) != 0) {
    return Status::InvalidArgument("reap record " + r.key + ": ref " + r.ref + " does not end in " +
                                   r.name);
  }
  std::string root = r.ref.substr(0, r.ref.size() - r.name.size() - 1);
  struct stat st;
  if (lstat(r.repo.c_str(), &st) != 0 && errno == ENOENT) return false;  // nothing left to reap
  locks::LockRefsOptions options;
  options.locks_root = root;
  Result<std::unique_ptr<locks::LockRefs>> refs = locks::LockRefs::Open(r.repo, options);
  if (!refs.ok()) {
    if (refs.status().IsNotFound()) return false;  // no longer a repository
    return refs.status();
  }
  WTD_ASSIGN_OR_RETURN(locks::LockName name, locks::ParseLockName(root, r.name));
  Result<locks::LockEntry> now = (*refs)->Read(name);
  if (!now.ok()) {
    if (now.status().IsNotFound()) return false;
    return now.status();
  }
  return now->blob == r.blob;
}

std::function<Result<std::set<uint64_t>>()> RunsNamedBySlots(WorktreeSlots* slots) {
  return [slots]() -> Result<std::set<uint64_t>> {
    WTD_ASSIGN_OR_RETURN(std::vector<Slot> all, slots->List());
    std::set<uint64_t> named;
    for (const Slot& s : all) {
      if (s.run_id != 0) named.insert(s.run_id);
    }
    return named;
  };
}

Collector::Collector(RunStore* runs, std::string state_dir, Clock* clock, CollectorHooks hooks)
    : runs_(runs), state_dir_(std::move(state_dir)), clock_(clock), hooks_(std::move(hooks)) {
  if (!hooks_.reap_pending) hooks_.reap_pending = ReapStillPending;
}

Status Collector::CollectAll(int64_t cutoff_ms, bool dry_run, CollectReport* report, size_t limit) {
  do {
    WTD_RETURN_IF_ERROR(CollectBatch(cutoff_ms, limit, dry_run, report));
  } while (!report->caught_up);
  return Status::OK();
}

Status Collector::CollectBatch(int64_t cutoff_ms, size_t limit, bool dry_run,
                               CollectReport* report) {
  report->caught_up = false;
  if (!pass_.active || pass_.dry_run != dry_run) {
    pass_ = Pass();
    pass_.active = true;
    pass_.dry_run = dry_run;
    pass_.next_id = low_water_;
    pass_.sweep_orphans = !orphans_swept_;
  }
  size_t budget = std::max<size_t>(limit, 1);
  while (budget > 0) {
    Result<bool> done = true;
    switch (pass_.phase) {
      case Phase::kRuns:
        done = RunsStep(cutoff_ms, &budget, report);
        break;
      case Phase::kOrphans:
        done = OrphansStep(cutoff_ms, &budget, report);
        break;
      case Phase::kReaps:
        done = ReapsStep(cutoff_ms, &budget, report);
        break;
    }
    if (!done.ok()) {
      pass_.active = false;  // the next batch starts over from the mark
      return done.status();
    }
    if (!*done) continue;
    if (pass_.phase == Phase::kRuns) {
      pass_.phase = pass_.sweep_orphans ? Phase::kOrphans : Phase::kReaps;
    } else if (pass_.phase == Phase::kOrphans) {
      pass_.phase = Phase::kReaps;
    } else {
      if (!dry_run && pass_.sweep_orphans) orphans_swept_ = true;
      pass_.active = false;
      report->caught_up = true;
      return Status::OK();
    }
  }
  return Status::OK();
}

Result<bool> Collector::Collectable(const Run& r, int64_t cutoff_ms,
                                    const std::set<uint64_t>& pinned) {
  if (!IsTerminal(r.state)) return false;
  int64_t finished = r.finished_at_ms != 0 ? r.finished_at_ms : r.updated_at_ms;
  if (finished >= cutoff_ms) return false;
  if (pinned.count(r.id) > 0) return false;
  WTD_ASSIGN_OR_RETURN(std::optional<Lease> row, runs_->GetLease(r.key.repo, LockName(r.key)));
  return !row || row->run_id != r.id;
}

Result<bool> Collector::RunsStep(int64_t cutoff_ms, size_t* budget, CollectReport* report) {
  std::set<uint64_t> pinned;
  if (hooks_.pinned_runs) {
    WTD_ASSIGN_OR_RETURN(pinned, hooks_.pinned_runs());
  }
  std::vector<uint64_t> take;
  bool done = true;  // unless the budget ends the scan
  uint64_t stop_id = pass_.next_id;
  Status failed;
  auto keep = [&](uint64_t id) {
    if (pass_.first_kept == 0 || id < pass_.first_kept) pass_.first_kept = id;
  };
  WTD_RETURN_IF_ERROR(runs_->ScanRunsFrom(pass_.next_id, [&](uint64_t id, const Result<Run>& r) {
    if (*budget == 0) {
      done = false;
      pass_.next_id = id;
      return false;
    }
    --*budget;
    stop_id = id + 1;
    if (!r.ok()) {
      report->errors.push_back(r.status().ToString());
      keep(id);
      return true;
    }
    if (r->created_at_ms >= cutoff_ms) {
      // Every later run was created later still: none finished before the
      // cutoff.
      stop_id = id;
      return false;
    }
    Result<bool> go = Collectable(*r, cutoff_ms, pinned);
    if (!go.ok()) {
      failed = go.status();
      return false;
    }
    if (*go) {
      take.push_back(id);
    } else {
      keep(id);
      ++report->runs_kept;
    }
    return true;
  }));
  WTD_RETURN_IF_ERROR(failed);
  if (!take.empty() && !pass_.dry_run) {
    WTD_RETURN_IF_ERROR(runs_->DeleteTerminalRuns(take));
    WTD_CRASH_POINT("after_gc_commit");
  }
  for (uint64_t id : take) {
    report->runs.push_back(id);
    RemoveFile(RunLogPath(state_dir_, id), /*log=*/true, /*orphan=*/false, report);
    RemoveFile(RunContextPath(state_dir_, id), /*log=*/false, /*orphan=*/false, report);
    // A supervisor's files, left by a crash before the loop removed them.
    RemoveFile(RunExitPath(state_dir_, id), /*log=*/false, /*orphan=*/false, report);
    RemoveFile(RunGroupPath(state_dir_, id), /*log=*/false, /*orphan=*/false, report);
  }
  if (done) {
    pass_.next_id = stop_id;
    if (!pass_.dry_run) low_water_ = pass_.first_kept != 0 ? pass_.first_kept : stop_id;
  }
  return done;
}

void Collector::RemoveFile(const std::string& path, bool log, bool orphan, CollectReport* report) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) report->errors.push_back(path + ": " + strerror(errno));
    return;
  }
  if (!pass_.dry_run && unlink(path.c_str()) != 0) {
    if (errno != ENOENT) report->errors.push_back("remove " + path + ": " + strerror(errno));
    return;
  }
  ++(log ? report->log_files : report->context_files);
  if (orphan) ++report->orphan_files;
  report->bytes_freed += static_cast<uint64_t>(st.st_size);
}

void Collector::ListOrphans() {
  pass_.orphans.clear();
  struct Where {
    std::string dir;
    std::string suffix;
    bool log;
  };
  for (const Where& w : {Where{JoinPath(state_dir_, "logs/runs"), ".log", true},
                         Where{JoinPath(state_dir_, "runs"), ".json", false},
                         Where{JoinPath(state_dir_, "runs"), ".exit", false},
                         Where{JoinPath(state_dir_, "runs"), ".pgid", false}}) {
    DIR* d = opendir(w.dir.c_str());
    if (d == nullptr) continue;  // none yet
    while (struct dirent* e = readdir(d)) {
      std::string name = e->d_name;
      uint64_t id = IdOfFile(name, w.suffix);
      if (id != 0) pass_.orphans.push_back(OrphanFile{id, JoinPath(w.dir, name), w.log});
    }
    closedir(d);
  }
  std::sort(pass_.orphans.begin(), pass_.orphans.end(),
            [](const OrphanFile& a, const OrphanFile& b) {
              return a.id != b.id ? a.id < b.id : a.log > b.log;
            });
  pass_.orphans_listed = true;
}

Result<bool> Collector::OrphansStep(int64_t cutoff_ms, size_t* budget, CollectReport* report) {
  if (!pass_.orphans_listed) ListOrphans();
  while (pass_.next_orphan < pass_.orphans.size()) {
    if (*budget == 0) return false;
    --*budget;
    const OrphanFile& f = pass_.orphans[pass_.next_orphan++];
    Result<Run> run = runs_->Get(f.id);
    if (run.ok() || !run.status().IsNotFound()) continue;  // its run's, or unreadable: kept
    struct stat st;
    if (lstat(f.path.c_str(), &st) != 0 || MtimeMs(st) >= cutoff_ms) continue;
    RemoveFile(f.path, f.log, /*orphan=*/true, report);
  }
  pass_.orphans.clear();
  return true;
}

Result<bool> Collector::ReapsStep(int64_t cutoff_ms, size_t* budget, CollectReport* report) {
  WTD_ASSIGN_OR_RETURN(auto records, runs_->ListReapRecords(pass_.reap_after, *budget));
  bool done = records.size() < *budget;
  *budget -= records.size();
  std::vector<std::string> gone;
  for (const auto& [key, value] : records) {
    pass_.reap_after = key;
    Result<ReapRecordEntry> e = ParseReapRecord(key, value);
    if (!e.ok()) {
      report->errors.push_back(e.status().ToString());
      continue;
    }
    if (e->at_ms >= cutoff_ms) continue;
    Result<bool> pending = hooks_.reap_pending(*e);
    if (!pending.ok()) {
      report->errors.push_back("reap record of " + e->name + " in " + e->repo + ": " +
                               pending.status().ToString());
      continue;
    }
    if (!*pending) gone.push_back(key);
  }
  if (!pass_.dry_run) WTD_RETURN_IF_ERROR(runs_->DeleteReapRecords(gone));
  report->reap_records += gone.size();
  return done;
}

}  // namespace wtd
