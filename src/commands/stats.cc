// `stats`: per job and overall, what the runs that ended in a window came
// to (counts, success rate, duration percentiles, attempts per success, lock
// waits, the slowest and newest failing runs). Read-only: answered from the
// store when the daemon is down. It merges the hourly RunStats records
// RunStore keeps in the batch that ends each run (docs/design/stats.md), and
// never reads run history, so its cost follows the window's hours and jobs,
// not the number of runs.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <tuple>

#include "base/time_format.h"
#include "commands/defs.h"
#include "report/table.h"
#include "runs/run_stats.h"

namespace wtd {
namespace {

constexpr char kDefaultSince[] = "24h";

struct StatsArgs {
  std::string job, worktree, repo, since = kDefaultSince;
};

Result<StatsArgs> ArgsOf(const json& args) {
  StatsArgs a;
  WTD_ASSIGN_OR_RETURN(a.job, StringArg(args, "job"));
  WTD_ASSIGN_OR_RETURN(a.worktree, StringArg(args, "worktree"));
  WTD_ASSIGN_OR_RETURN(a.repo, StringArg(args, "repo"));
  WTD_ASSIGN_OR_RETURN(std::string since, StringArg(args, "since"));
  if (!since.empty()) a.since = since;
  return a;
}

Result<json> Request(const CliArgs& a) {
  if (!a.positional.empty()) return Status::InvalidArgument("stats takes no positional arguments");
  json args = json::object();
  for (const char* k : {"job", "worktree", "repo", "since"}) {
    if (a.Has(k)) args[k] = a.flags.at(k);
  }
  if (a.Has("since")) {
    // Checked here so that a bad value is a usage error; the handler
    // resolves it again against its own clock.
    Result<int64_t> since = ParseSince(a.flags.at("since"), SystemClock()->NowMs());
    if (!since.ok()) return since.status();
  }
  if (a.Has("ascii")) args["ascii"] = true;
  return args;
}

json OrNull(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

// The JSON figures of a merged record (the fields every entry shares).
json Figures(const RunStats& s) {
  const uint64_t runs = s.runs();
  json j = {
      {"runs", runs},
      {"succeeded", s.succeeded},
      {"failed", s.failed},
      {"timed_out", s.timed_out},
      {"cancelled", s.cancelled},
      {"skipped", s.skipped},
      {"success_rate", runs == 0
                           ? json(nullptr)
                           : json(static_cast<double>(s.succeeded) / static_cast<double>(runs))},
      {"attempts_per_success",
       s.succeeded == 0 ? json(nullptr)
                        : json(static_cast<double>(s.attempts) / static_cast<double>(s.succeeded))},
      {"lock_waits", s.lock_waits},
  };
  const int64_t max = s.slowest.empty() ? 0 : s.slowest.front().duration_ms;
  json d = {
      {"p50", nullptr}, {"p95", nullptr}, {"p99", nullptr}, {"max", nullptr}, {"mean", nullptr}};
  if (s.timed > 0) {
    d["p50"] = OrNull(PercentileMs(s.histogram, 0.50, max));
    d["p95"] = OrNull(PercentileMs(s.histogram, 0.95, max));
    d["p99"] = OrNull(PercentileMs(s.histogram, 0.99, max));
    d["max"] = max;
    d["mean"] = static_cast<double>(s.duration_sum_ms) / static_cast<double>(s.timed);
  }
  j["duration_ms"] = std::move(d);
  json h = json::array();
  for (size_t i = 0; i < kRunStatsBuckets; ++i) {
    h.push_back({{"le_ms", OrNull(BucketUpperMs(i))},
                 {"count", i < s.histogram.size() ? s.histogram[i] : 0}});
  }
  j["histogram"] = std::move(h);
  json slowest = json::array();
  for (const RunStatsRun& r : s.slowest) {
    slowest.push_back({{"id", r.run_id}, {"duration_ms", r.duration_ms}});
  }
  j["slowest"] = std::move(slowest);
  json failures = json::array();
  for (const RunStatsRun& r : s.failures) {
    failures.push_back(
        {{"id", r.run_id}, {"state", RunStateName(r.state)}, {"at", FormatRfc3339(r.at_ms)}});
  }
  j["recent_failures"] = std::move(failures);
  return j;
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(StatsArgs a, ArgsOf(args));
  const int64_t now = c.runs->clock()->NowMs();
  Result<int64_t> since = ParseSince(a.since, now);
  if (!since.ok()) return Status::InvalidArgument("args.since: " + since.status().message());
  RunStats overall;
  std::map<std::pair<std::string, std::string>, RunStats> jobs;  // by (repo, job)
  WTD_RETURN_IF_ERROR(c.runs->ScanRunStats(*since, [&](const RunStats& s) {
    if (!a.job.empty() && s.job != a.job) return true;
    if (!a.worktree.empty() && s.worktree != a.worktree) return true;
    if (!a.repo.empty() && s.repo != a.repo) return true;
    MergeStats(jobs[{s.repo, s.job}], s);
    MergeStats(overall, s);
    return true;
  }));
  json out = {{"since", FormatRfc3339(*since)},
              {"until", FormatRfc3339(now)},
              {"source", c.daemon != nullptr ? "daemon" : "store"}};
  out["overall"] = Figures(overall);
  json list = json::array();
  for (const auto& [key, s] : jobs) {
    json j = {{"job", key.second}, {"repo", key.first}};
    if (!a.worktree.empty()) j["worktree"] = a.worktree;
    j.update(Figures(s));
    list.push_back(std::move(j));
  }
  out["jobs"] = std::move(list);
  return out;
}

// Whether the terminal takes UTF-8: the locale variables in POSIX order of
// precedence (the first one set decides).
bool LocaleIsUtf8() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    std::string s(v);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
  }
  return false;
}

std::string Ms(const json& v) {
  if (v.is_null()) return "-";
  return FormatDurationMs(static_cast<int64_t>(v.get<double>() + 0.5));
}

std::string Ratio(const json& v, bool percent) {
  if (v.is_null()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, percent ? "%.1f%%" : "%.2f",
                v.get<double>() * (percent ? 100 : 1));
  return buf;
}

std::vector<std::string> Row(const std::string& name, const json& f) {
  const json& d = f["duration_ms"];
  return {name,
          Cell(f["runs"]),
          Cell(f["succeeded"]),
          Cell(f["failed"]),
          Cell(f["timed_out"]),
          Cell(f["cancelled"]),
          Cell(f["skipped"]),
          Ratio(f["success_rate"], true),
          Ratio(f["attempts_per_success"], false),
          Cell(f["lock_waits"]),
          Ms(d["p50"]),
          Ms(d["p95"]),
          Ms(d["p99"]),
          Ms(d["max"]),
          Ms(d["mean"])};
}

// One character per bucket in [first, last], its height scaled to the
// fullest bucket; an empty bucket is a blank.
std::string Spark(const json& histogram, size_t first, size_t last, bool ascii) {
  static const char* const kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  static constexpr std::string_view kAscii = ".:-=+*#%@";
  uint64_t top = 0;
  for (const json& b : histogram) top = std::max(top, b["count"].get<uint64_t>());
  std::string out;
  for (size_t i = first; i <= last && i < histogram.size(); ++i) {
    uint64_t n = histogram[i]["count"].get<uint64_t>();
    if (n == 0 || top == 0) {
      out += ' ';
      continue;
    }
    size_t levels = ascii ? kAscii.size() : std::size(kBlocks);
    size_t level = static_cast<size_t>((n * levels + top - 1) / top);  // 1..levels
    level = std::clamp<size_t>(level, 1, levels) - 1;
    if (ascii) {
      out += kAscii[level];
    } else {
      out += kBlocks[level];
    }
  }
  return out;
}

std::string BoundName(const json& le) {
  if (le.is_null()) return "+Inf";
  int64_t ms = le.get<int64_t>();
  return ms < 1000 ? std::to_string(ms) + "ms" : FormatDurationMs(ms);
}

std::string Human(const json& r, bool ascii) {
  std::string out = "runs that ended since " + r["since"].get<std::string>() +
                    " (the start of the first whole hour included) until " +
                    r["until"].get<std::string>() + "\n";
  if (r.value("source", "") == "store") {
    out += "read from the state store directly (no daemon answered)\n";
  }
  const json& jobs = r["jobs"];
  if (jobs.empty()) return out + "no runs ended in this window\n";
  std::vector<std::vector<std::string>> rows = {{"JOB", "RUNS", "OK", "FAILED", "TIMED_OUT",
                                                 "CANCELLED", "SKIPPED", "SUCCESS", "ATT/OK",
                                                 "LOCK_WAITS", "P50", "P95", "P99", "MAX", "MEAN"}};
  std::map<std::string, int> job_names;
  for (const json& j : jobs) ++job_names[j["job"].get<std::string>()];
  auto name_of = [&](const json& j) {
    std::string job = j["job"].get<std::string>();
    return job_names[job] > 1 ? job + " (" + j["repo"].get<std::string>() + ")" : job;
  };
  for (const json& j : jobs) rows.push_back(Row(name_of(j), j));
  rows.push_back(Row("(all)", r["overall"]));
  out += FormatTable(rows);

  // The histograms share one range of buckets: those holding any run.
  const json& all = r["overall"]["histogram"];
  size_t first = all.size(), last = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i]["count"].get<uint64_t>() == 0) continue;
    first = std::min(first, i);
    last = i;
  }
  if (first < all.size()) {
    out += "\ndurations, one column per bucket from " + BoundName(all[first]["le_ms"]) + " to " +
           BoundName(all[last]["le_ms"]) +
           " (percentiles are bucket-resolution estimates; max and mean are exact):\n";
    std::vector<std::vector<std::string>> hist;
    for (const json& j : jobs) {
      hist.push_back({name_of(j), "|" + Spark(j["histogram"], first, last, ascii) + "|"});
    }
    out += FormatTable(hist);
  }
  std::vector<std::vector<std::string>> runs;
  for (const json& j : jobs) {
    std::string slow, failing;
    for (const json& s : j["slowest"]) {
      slow += (slow.empty() ? "" : ", ") + std::string("#") + Cell(s["id"]) + " " +
              FormatDurationMs(s["duration_ms"].get<int64_t>());
    }
    for (const json& f : j["recent_failures"]) {
      failing += (failing.empty() ? "" : ", ") + std::string("#") + Cell(f["id"]) + " " +
                 Cell(f["state"]) + " " + Cell(f["at"]);
    }
    runs.push_back({name_of(j), slow.empty() ? "-" : slow, failing.empty() ? "-" : failing});
  }
  runs.insert(runs.begin(), {"JOB", "SLOWEST", "RECENT FAILURES"});
  out += "\n" + FormatTable(runs);
  return out;
}

std::string Print(const json& r) { return Human(r, !LocaleIsUtf8()); }

int RunCli(Session& session, const json& request) {
  json args = request;
  bool ascii = args.value("ascii", false) || !LocaleIsUtf8();
  args.erase("ascii");
  Result<json> r = session.Call("stats", args);
  if (!r.ok()) return session.Fail(r.status().ToString(), kExitError);
  session.Print(*r, Human(*r, ascii));
  return kExitOk;
}

}  // namespace

const CommandDef& StatsCommand() {
  static const CommandDef kDef = {
      .name = "stats",
      .usage = "stats [--job J] [--worktree W] [--repo R] [--since 1h|24h|7d|DATE] [--ascii]",
      .summary = "per-job run statistics over a window of whole hours (default --since 24h)",
      .flags =
          {{"job", true}, {"worktree", true}, {"repo", true}, {"since", true}, {"ascii", false}},
      .access = Access::kReadOnly,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .run = RunCli,
  };
  return kDef;
}

}  // namespace wtd
