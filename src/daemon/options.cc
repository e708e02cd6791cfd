#include "daemon/options.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "base/paths.h"
#include "locks/lock_name.h"
#include "metrics/http_server.h"

namespace wtd {
namespace {

std::string Absolute(const std::string& path, const std::string& cwd) {
  if (path.empty() || path[0] == '/') return path;
  std::string p = path;
  while (p.size() > 2 && p.compare(0, 2, "./") == 0) p.erase(0, 2);
  if (p == ".") return cwd;
  return cwd + "/" + p;
}

std::string DefaultShim() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "wtd-exec";
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.find_last_of('/') + 1) + "wtd-exec";
}

std::string Join(const std::vector<std::string>& items, const std::string& sep,
                 const std::string& last_sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? last_sep : sep;
    out += items[i];
  }
  return out;
}

Status Bad(const std::string& option, const std::string& value, const std::string& why) {
  return Status::InvalidArgument("--" + option + "=" + value + ": " + why);
}

// A decimal integer, all of `text`, with an optional sign.
bool ParseInt(const std::string& text, int64_t* out) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && ptr == end && begin != end;
}

// The field of a module struct that an option sets: config.*group.*member.
template <typename Group, typename T>
struct Field {
  Group Config::*group;
  T Group::*member;
  T& operator()(Config& c) const { return (c.*group).*member; }
  const T& operator()(const Config& c) const { return (c.*group).*member; }
};

template <typename Group, typename T>
OptionDef Bound(std::string name, OptionKind kind, Reload reload, std::string help,
                Field<Group, T> field) {
  OptionDef o;
  o.name = std::move(name);
  o.kind = kind;
  o.reload = reload;
  o.help = std::move(help);
  o.keep = [field](const Config& from, Config* to) { field(*to) = field(from); };
  return o;
}

template <typename Group, typename T>
OptionDef Int(std::string name, Group Config::*group, T Group::*member, int64_t lo, int64_t hi,
              Reload reload, std::string help) {
  Field<Group, T> field{group, member};
  OptionDef o = Bound(name, OptionKind::kInt, reload, std::move(help), field);
  o.shows_default = true;
  o.min = lo;
  o.max = hi;
  o.set = [name, field, lo, hi](const std::vector<std::string>& values, const std::string&,
                                Config* c) -> Status {
    int64_t v = 0;
    if (!ParseInt(values.back(), &v)) return Bad(name, values.back(), "expected an integer");
    if (v < lo || v > hi) {
      return Bad(name, std::to_string(v),
                 "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    field(*c) = static_cast<T>(v);
    return Status::OK();
  };
  o.show = [field](const Config& c) { return std::to_string(field(c)); };
  return o;
}

// A finite decimal number, all of `text`, with an optional sign; fractions
// and exponents allowed.
bool ParseNumber(const std::string& text, double* out) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, *out, std::chars_format::general);
  return ec == std::errc() && ptr == end && begin != end && std::isfinite(*out);
}

// The shortest text that parses back to `v` ("30", "0.5", "2e-05").
std::string ShowNumber(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, ptr) : std::to_string(v);
}

// A double-valued field, in [lo, hi].
template <typename Group>
OptionDef Number(std::string name, Group Config::*group, double Group::*member, int64_t lo,
                 int64_t hi, Reload reload, std::string help) {
  Field<Group, double> field{group, member};
  OptionDef o = Bound(name, OptionKind::kNumber, reload, std::move(help), field);
  o.shows_default = true;
  o.min = lo;
  o.max = hi;
  o.set = [name, field, lo, hi](const std::vector<std::string>& values, const std::string&,
                                Config* c) -> Status {
    double v = 0;
    if (!ParseNumber(values.back(), &v)) return Bad(name, values.back(), "expected a number");
    if (v < static_cast<double>(lo) || v > static_cast<double>(hi)) {
      return Bad(name, values.back(),
                 "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    field(*c) = v;
    return Status::OK();
  };
  o.show = [field](const Config& c) { return ShowNumber(field(c)); };
  return o;
}

// A string; one of `choices` when there are any.
template <typename Group>
OptionDef Text(std::string name, Group Config::*group, std::string Group::*member, Reload reload,
               std::string help, std::vector<std::string> choices = {}) {
  Field<Group, std::string> field{group, member};
  OptionDef o = Bound(name, OptionKind::kText, reload, std::move(help), field);
  o.shows_default = true;
  o.choices = choices;
  o.set = [name, field, choices](const std::vector<std::string>& values, const std::string&,
                                 Config* c) -> Status {
    const std::string& v = values.back();
    if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
      return Bad(name, v, "expected " + Join(choices, ", ", " or "));
    }
    field(*c) = v;
    return Status::OK();
  };
  o.show = [field](const Config& c) { return field(c); };
  return o;
}

// A path, made absolute; its default depends on the environment or on
// other options, as `default_note` says.
template <typename Group>
OptionDef Path(std::string name, Group Config::*group, std::string Group::*member, Reload reload,
               std::string help, std::string default_note) {
  Field<Group, std::string> field{group, member};
  OptionDef o = Bound(name, OptionKind::kText, reload, std::move(help), field);
  o.default_note = std::move(default_note);
  o.set = [field](const std::vector<std::string>& values, const std::string& cwd, Config* c) {
    field(*c) = Absolute(values.back(), cwd);
    return Status::OK();
  };
  o.show = [field](const Config& c) { return field(c); };
  return o;
}

// A switch that sets `member` to true, or to false when `inverted`.
template <typename Group>
OptionDef Switch(std::string name, Group Config::*group, bool Group::*member, bool inverted,
                 Reload reload, std::string help) {
  Field<Group, bool> field{group, member};
  OptionDef o = Bound(name, OptionKind::kSwitch, reload, std::move(help), field);
  o.set = [field, inverted](const std::vector<std::string>& values, const std::string&, Config* c) {
    field(*c) = (values.back() == "true") != inverted;
    return Status::OK();
  };
  o.show = [field, inverted](const Config& c) {
    return field(c) != inverted ? std::string("true") : std::string("false");
  };
  return o;
}

OptionDef CommandLineOnly(std::string name, char short_name, OptionKind kind, std::string help) {
  OptionDef o;
  o.name = std::move(name);
  o.short_name = short_name;
  o.kind = kind;
  o.command_line_only = true;
  o.reload = Reload::kNeedsRestart;  // never compared: the command line stays
  o.help = std::move(help);
  o.set = [](const std::vector<std::string>&, const std::string&, Config*) { return Status::OK(); };
  o.show = [](const Config&) { return std::string(); };
  o.keep = [](const Config&, Config*) {};
  return o;
}

std::vector<OptionDef> BuildTable() {
  using R = Reload;
  std::vector<OptionDef> t;
  t.push_back(CommandLineOnly("help", 'h', OptionKind::kSwitch, "show this help and exit"));
  t.push_back(CommandLineOnly("version", 0, OptionKind::kSwitch, "show the version and exit"));
  {
    OptionDef o = CommandLineOnly("config", 0, OptionKind::kText,
                                  "INI file with any of these options, read again by a reload");
    o.set = [](const std::vector<std::string>& values, const std::string& cwd, Config* c) {
      c->daemon.config_file = Absolute(values.back(), cwd);
      return Status::OK();
    };
    o.show = [](const Config& c) { return c.daemon.config_file; };
    t.push_back(std::move(o));
  }
  {
    OptionDef o;
    o.name = "repo";
    o.kind = OptionKind::kList;
    o.help = "repository to watch (repeatable)";
    o.default_note = "the repository containing the current directory";
    o.set = [](const std::vector<std::string>& values, const std::string& cwd, Config* c) {
      c->repos.clear();
      for (const std::string& r : values) {
        if (r.empty()) return Bad("repo", r, "empty path");
        c->repos.push_back(Absolute(r, cwd));
      }
      return Status::OK();
    };
    o.show = [](const Config& c) { return Join(c.repos, " ", " "); };
    o.keep = [](const Config& from, Config* to) { to->repos = from.repos; };
    t.push_back(std::move(o));
  }
  {
    OptionDef o;
    o.name = "worktrees";
    o.kind = OptionKind::kList;
    o.multitoken = true;
    o.help = "which worktrees: current | all | PATH...";
    o.set = [](const std::vector<std::string>& values, const std::string& cwd, Config* c) {
      c->worktree_paths.clear();
      if (values.size() == 1 && values[0] == "current") {
        c->worktree_mode = WorktreeMode::kCurrent;
      } else if (values.size() == 1 && values[0] == "all") {
        c->worktree_mode = WorktreeMode::kAll;
      } else {
        c->worktree_mode = WorktreeMode::kPaths;
        for (const std::string& p : values) {
          if (p.empty() || p == "current" || p == "all") {
            return Bad("worktrees", p, "expected current, all, or one or more worktree paths");
          }
          c->worktree_paths.push_back(Absolute(p, cwd));
        }
      }
      return Status::OK();
    };
    o.show = [](const Config& c) {
      switch (c.worktree_mode) {
        case WorktreeMode::kCurrent:
          return std::string("current");
        case WorktreeMode::kAll:
          return std::string("all");
        case WorktreeMode::kPaths:
          break;
      }
      return Join(c.worktree_paths, " ", " ");
    };
    o.keep = [](const Config& from, Config* to) {
      to->worktree_mode = from.worktree_mode;
      to->worktree_paths = from.worktree_paths;
    };
    t.push_back(std::move(o));
  }
  {
    OptionDef o = Text("jobs-root", &Config::poller, &PollerOptions::jobs_root, R::kApplies,
                       "directory of *.job files inside each commit's tree");
    o.set = [](const std::vector<std::string>& values, const std::string&, Config* c) {
      std::string root = values.back();
      while (!root.empty() && root.back() == '/') root.pop_back();
      if (root.empty() || root[0] == '/' || root.find("..") != std::string::npos) {
        return Bad("jobs-root", values.back(),
                   "must be a relative directory inside the repository");
      }
      c->poller.jobs_root = root;
      return Status::OK();
    };
    t.push_back(std::move(o));
  }
  t.push_back(Int("poll-ms", &Config::scheduler, &SchedulerOptions::poll_ms, 10, 3'600'000,
                  R::kApplies, "poll interval in milliseconds"));
  t.push_back(Int("lookback-s", &Config::poller, &PollerOptions::lookback_s, 0, 10 * 365 * 86400LL,
                  R::kApplies,
                  "for a worktree with nothing processed yet (first start, a new worktree), run "
                  "commits at most this old"));
  t.push_back(Int("max-per-tick", &Config::poller, &PollerOptions::max_per_tick, 1, 100'000,
                  R::kApplies,
                  "most new runs enqueued per tick (the rest wait for the next tick)"));
  t.push_back(Int("max-backfill", &Config::poller, &PollerOptions::max_backfill, 1, 1'000'000,
                  R::kApplies,
                  "most new commits taken at once for one worktree (a switch to a long-diverged "
                  "branch); older ones are skipped and reported"));
  t.push_back(Int("backoff-ms", &Config::poller, &PollerOptions::backoff_ms, 1, 3'600'000,
                  R::kApplies, "base of the exponential backoff after errors"));
  t.push_back(Int("max-backoff-ms", &Config::poller, &PollerOptions::max_backoff_ms, 1, 86'400'000,
                  R::kApplies, "cap of that backoff"));
  {
    OptionDef o = Int("concurrency", &Config::scheduler, &SchedulerOptions::concurrency, 1, 1024,
                      R::kApplies, "most jobs running at once");
    o.default_note = "number of cores";
    t.push_back(std::move(o));
  }
  t.push_back(Int("shutdown-grace-s", &Config::scheduler, &SchedulerOptions::shutdown_grace_s, 0,
                  86'400, R::kApplies,
                  "on SIGTERM, how long running jobs may finish before they are stopped"));
  t.push_back(Int("log-cap-bytes", &Config::scheduler, &SchedulerOptions::log_cap_bytes, 4096,
                  int64_t{1} << 40, R::kApplies,
                  "size cap of a run's log, all its attempts together"));
  t.push_back(Number("retention-days", &Config::scheduler, &SchedulerOptions::retention_days, 0,
                     36'500, R::kApplies,
                     "days terminal runs, their logs and context files and old reap records are "
                     "kept (fractions allowed; 0: forever); wtctl gc collects by hand"));
  t.push_back(Int("stuck-after-s", &Config::scheduler, &SchedulerOptions::stuck_after_s, 1,
                  30 * 86'400, R::kApplies,
                  "flag a running job stuck in status after this long without output or CPU"));
  {
    OptionDef o = Path("state-dir", &Config::daemon, &DaemonOptions::state_dir, R::kNeedsRestart,
                       "state directory",
                       "$WTD_STATE_DIR, else $XDG_STATE_HOME/wtd, else ~/.local/state/wtd");
    // The scheduler's copy follows (FinishConfig); a kept value keeps both.
    o.keep = [](const Config& from, Config* to) {
      to->daemon.state_dir = from.daemon.state_dir;
      to->scheduler.state_dir = from.scheduler.state_dir;
      to->poller.own_worktree_root = from.poller.own_worktree_root;
    };
    t.push_back(std::move(o));
  }
  t.push_back(Path("socket", &Config::daemon, &DaemonOptions::socket_path, R::kNeedsRestart,
                   "control socket", "<state-dir>/wtd.sock"));
  t.push_back(Path("pid-file", &Config::daemon, &DaemonOptions::pid_file, R::kNeedsRestart,
                   "PID file, held locked", "<state-dir>/wtd.pid"));
  t.push_back(Text("log-level", &Config::logging, &LoggingOptions::level, R::kApplies,
                   "trace | debug | info | warn | error",
                   {"trace", "debug", "info", "warn", "error"}));
  {
    static const std::vector<std::pair<std::string, LogFormat>> kFormats = {
        {"text", LogFormat::kText}, {"json", LogFormat::kJson}};
    OptionDef o =
        Bound("log-format", OptionKind::kText, R::kApplies, "text | json",
              Field<LoggingOptions, LogFormat>{&Config::logging, &LoggingOptions::format});
    o.shows_default = true;
    for (const auto& [name, format] : kFormats) o.choices.push_back(name);
    o.set = [](const std::vector<std::string>& values, const std::string&, Config* c) {
      for (const auto& [name, format] : kFormats) {
        if (values.back() != name) continue;
        c->logging.format = format;
        return Status::OK();
      }
      return Bad("log-format", values.back(), "expected text or json");
    };
    o.show = [](const Config& c) {
      for (const auto& [name, format] : kFormats) {
        if (c.logging.format == format) return name;
      }
      return std::string("?");
    };
    t.push_back(std::move(o));
  }
  t.push_back(Switch("daemonize", &Config::daemon, &DaemonOptions::daemonize, false,
                     R::kNeedsRestart, "detach from the terminal (setsid, double fork)"));
  {
    // The poller enqueues nothing and the scheduler dispatches nothing.
    OptionDef o = Switch("dry-run", &Config::poller, &PollerOptions::dry_run, false, R::kApplies,
                         "discover and log what would run; run nothing");
    auto set_poller = o.set;
    o.set = [set_poller](const std::vector<std::string>& values, const std::string& cwd,
                         Config* c) {
      WTD_RETURN_IF_ERROR(set_poller(values, cwd, c));
      c->scheduler.dry_run = c->poller.dry_run;
      return Status::OK();
    };
    o.keep = [](const Config& from, Config* to) {
      to->poller.dry_run = from.poller.dry_run;
      to->scheduler.dry_run = from.scheduler.dry_run;
    };
    t.push_back(std::move(o));
  }
  t.push_back(Switch("no-inotify", &Config::daemon, &DaemonOptions::inotify, /*inverted=*/true,
                     R::kApplies, "poll only; do not wake early on ref changes"));
  {
    // Locks: every one needs a restart. The lease path is chosen, and the
    // lock and notes refs named, once for the daemon's life: a run holding a
    // lock under one root must be released under the same root.
    OptionDef o = Bound("locks", OptionKind::kText, R::kNeedsRestart,
                        "on | off: lock leases as git refs and receipts in git notes (off: no "
                        "lock, no receipt)",
                        Field<RunLockOptions, bool>{&Config::locks, &RunLockOptions::enabled});
    o.shows_default = true;
    o.choices = {"on", "off"};
    o.set = [](const std::vector<std::string>& values, const std::string&, Config* c) {
      if (values.back() != "on" && values.back() != "off") {
        return Bad("locks", values.back(), "expected on or off");
      }
      c->locks.enabled = values.back() == "on";
      return Status::OK();
    };
    o.show = [](const Config& c) { return std::string(c.locks.enabled ? "on" : "off"); };
    t.push_back(std::move(o));
  }
  t.push_back(Text("locks-root", &Config::locks, &RunLockOptions::locks_root, R::kNeedsRestart,
                   "ref prefix of the lock refs in each repository"));
  t.push_back(Text("notes-ref", &Config::locks, &RunLockOptions::notes_ref, R::kNeedsRestart,
                   "notes ref of the outcome receipts (git log --notes=NAME shows them)"));
  t.push_back(Int("lease-ttl-s", &Config::locks, &RunLockOptions::lease_ttl_s, 3, 86'400,
                  R::kNeedsRestart,
                  "lifetime of a lock lease; renewed every third of it while the job runs"));
  t.push_back(Int("lock-grace-s", &Config::locks, &RunLockOptions::lock_grace_s, 0, 86'400,
                  R::kNeedsRestart,
                  "a lock of another host is stale this long after its lease expired"));
  t.push_back(Int("worktree-slots", &Config::worktrees, &WorktreeOptions::worktree_slots, 0, 1024,
                  R::kNeedsRestart,
                  "worktrees per repository for isolated runs (0: as many as --concurrency)"));
  t.push_back(Int("keep-failed", &Config::worktrees, &WorktreeOptions::keep_failed, 0, 1000,
                  R::kNeedsRestart,
                  "worktrees of failed runs kept per repository (keep_worktree = on_failure)"));
  t.push_back(Int("idem-retention-h", &Config::worktrees, &WorktreeOptions::idem_retention_h, 1,
                  87'600, R::kNeedsRestart,
                  "hours a finished idempotency record is kept (never one in progress)"));
  {
    // The endpoint is bound once at start (docs/design/metrics.md): a
    // reload reports a change as needing a restart.
    OptionDef o =
        Text("metrics-listen", &Config::daemon, &DaemonOptions::metrics_listen, R::kNeedsRestart,
             "serve Prometheus metrics at http://ADDR:PORT/metrics (PORT or :PORT: on "
             "127.0.0.1; port 0: any free port)");
    o.shows_default = false;
    o.default_note = "off";
    o.set = [](const std::vector<std::string>& values, const std::string&, Config* c) {
      const std::string& v = values.back();
      if (!v.empty() && v != "off") {
        Result<metrics::ListenAddress> at = metrics::ParseListenAddress(v);
        if (!at.ok()) return Bad("metrics-listen", v, at.status().message());
      }
      c->daemon.metrics_listen = v == "off" ? "" : v;
      return Status::OK();
    };
    t.push_back(std::move(o));
  }
  t.push_back(Path("exec-shim", &Config::scheduler, &SchedulerOptions::exec_shim, R::kNeedsRestart,
                   "path of wtd-exec, the supervisor of each job", "beside wtd"));
  return t;
}

}  // namespace

std::string_view ReloadName(Reload reload) {
  return reload == Reload::kApplies ? "applies" : "needs restart";
}

const std::vector<OptionDef>& AllOptions() {
  static const std::vector<OptionDef> kTable = BuildTable();
  return kTable;
}

const OptionDef* FindOption(std::string_view name) {
  for (const OptionDef& o : AllOptions()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

Config DefaultConfig(const char* (*env)(const char*), const std::string& cwd) {
  Config c;
  c.repos.push_back(cwd);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  c.scheduler.concurrency = cores > 0 ? cores : 1;
  c.daemon.state_dir = DefaultStateDir(env);
  c.scheduler.exec_shim = DefaultShim();
  return c;
}

Status FinishConfig(Config* c) {
  if (c->daemon.state_dir.empty()) {
    return Bad("state-dir", "", "empty, and no default could be found");
  }
  c->scheduler.state_dir = c->daemon.state_dir;
  c->poller.own_worktree_root = c->daemon.state_dir + "/worktrees";
  if (c->daemon.socket_path.empty()) c->daemon.socket_path = c->daemon.state_dir + "/wtd.sock";
  if (c->daemon.socket_path.size() >= 108) {
    return Bad("socket", c->daemon.socket_path,
               "longer than a unix socket path may be (107 bytes)");
  }
  if (c->daemon.pid_file.empty()) c->daemon.pid_file = c->daemon.state_dir + "/wtd.pid";
  if (c->poller.max_backoff_ms < c->poller.backoff_ms) {
    return Bad("max-backoff-ms", std::to_string(c->poller.max_backoff_ms), "is below --backoff-ms");
  }
  if (Status st = locks::ValidateLocksRoot(c->locks.locks_root); !st.ok()) {
    return Bad("locks-root", c->locks.locks_root, st.message());
  }
  if (Status st = locks::ValidateNotesRef(c->locks.notes_ref); !st.ok()) {
    return Bad("notes-ref", c->locks.notes_ref, st.message());
  }
  return Status::OK();
}

}  // namespace wtd
