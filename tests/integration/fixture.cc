#include "integration/fixture.h"

#include <filesystem>
#include <iostream>
#include <map>
#include <set>

namespace wtd::itest {

void IntegrationTest::SetUp() {
  ASSERT_FALSE(dir_.path().empty()) << "mkdtemp under /tmp failed";
  IsolateGitConfig();
  state_dir_ = dir_.Sub("s");
  effect_ = dir_.Sub("effect");
  repo_ = GitRepo(dir_.Sub("repo"));
  ASSERT_NO_FATAL_FAILURE(repo_.Init());
}

void IntegrationTest::TearDown() {
  if (HasFailure()) {
    for (const std::unique_ptr<DaemonProcess>& d : daemons_) {
      std::string log = d->Log();
      if (log.size() > 16384) log = "...\n" + log.substr(log.size() - 16384);
      std::cerr << "---- output of wtd pid " << d->pid() << " (" << d->log_path() << ")\n"
                << log << "---- end\n";
    }
    if (std::optional<std::vector<RunRow>> runs = TryRuns()) std::cerr << RunsToString(*runs);
  }
  for (std::unique_ptr<DaemonProcess>& d : daemons_) d->Kill9();
  daemons_.clear();
}

DaemonProcess* IntegrationTest::StartDaemon(const std::vector<std::string>& extra,
                                            const std::vector<std::string>& env) {
  return StartDaemonIn(state_dir_, extra, env);
}

DaemonProcess* IntegrationTest::StartDaemonIn(const std::string& state_dir,
                                              const std::vector<std::string>& extra,
                                              const std::vector<std::string>& env) {
  std::vector<std::string> args = {"--repo",  repo_.dir(), "--state-dir",
                                   state_dir, "--poll-ms", "100"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::string log = dir_.Sub("wtd-" + std::to_string(daemons_.size() + 1) + ".log");
  daemons_.push_back(std::make_unique<DaemonProcess>(args, env, log));
  return daemons_.back().get();
}

DaemonProcess* IntegrationTest::StartReady(const std::vector<std::string>& extra) {
  DaemonProcess* d = StartDaemon(extra);
  WaitReady(d);
  return d;
}

void IntegrationTest::WaitReady(DaemonProcess* d) {
  bool exited = false;
  bool ok = WaitFor(
      [&] {
        if (!d->Running()) return exited = true;
        std::optional<json> s = Status();
        return s && s->value("pid", 0) == d->pid();
      },
      ScaledMs(60000), 50);
  ASSERT_FALSE(exited) << "wtd pid " << d->pid() << " exited with " << d->exit_code().value_or(-1)
                       << " before it answered wtctl status";
  ASSERT_TRUE(ok) << "wtd pid " << d->pid() << " did not answer wtctl status in time";
}

void IntegrationTest::StopDaemon(DaemonProcess* d) {
  CommandResult r = Wtctl({"stop", "--wait", "120"}, ScaledMs(180000));
  EXPECT_EQ(r.exit_code, 0) << "wtctl stop: " << r.Describe();
  std::optional<int> code = d->WaitExit(ScaledMs(60000));
  ASSERT_TRUE(code.has_value()) << "wtd pid " << d->pid() << " still runs after wtctl stop";
  EXPECT_EQ(*code, 0) << "wtd exit code after wtctl stop";
}

CommandResult IntegrationTest::Wtctl(const std::vector<std::string>& args,
                                     int64_t timeout_ms) const {
  return WtctlIn(state_dir_, args, timeout_ms);
}

CommandResult IntegrationTest::WtctlIn(const std::string& state_dir,
                                       const std::vector<std::string>& args,
                                       int64_t timeout_ms) const {
  std::vector<std::string> argv = {WTCTL_BIN, "--state-dir", state_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, {}, timeout_ms);
}

std::optional<json> IntegrationTest::Status() const {
  CommandResult r = Wtctl({"--json", "status"});
  if (r.exit_code != 0) return std::nullopt;
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::optional<std::vector<RunRow>> IntegrationTest::TryRuns() const {
  CommandResult r = Wtctl({"--json", "runs", "--limit", "0"});
  if (r.exit_code != 0) return std::nullopt;
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return std::nullopt;
  return ParseRuns(j);
}

std::vector<RunRow> IntegrationTest::Runs() const {
  CommandResult r = Wtctl({"--json", "runs", "--limit", "0"});
  EXPECT_EQ(r.exit_code, 0) << "wtctl --json runs --limit 0: " << r.Describe();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_array()) << "wtctl --json runs printed: " << r.out;
  return ParseRuns(j);
}

std::string IntegrationTest::EffectJob(const std::string& extra) const {
  return "run = echo \"$WTD_SHA\" >> " + effect_ + "\n" + extra;
}

bool IntegrationTest::IsSettled(const std::vector<std::string>& shas, const std::string& job,
                                const std::string& worktree, std::string* why,
                                std::vector<RunRow>* seen) const {
  std::optional<std::vector<RunRow>> runs = TryRuns();
  if (!runs) {
    *why = "wtctl runs failed";
    return false;
  }
  if (seen) *seen = *runs;
  for (const RunRow& r : *runs) {
    if (!IsTerminalState(r.state)) {
      *why = "run " + std::to_string(r.id) + " is " + r.state;
      return false;
    }
  }
  for (const std::string& sha : shas) {
    bool found = false;
    for (const RunRow& r : *runs) {
      found = found || (r.sha == sha && r.job == job && r.worktree == worktree);
    }
    if (!found) {
      *why = "no run of " + job + " in " + worktree + " for " + Short(sha);
      return false;
    }
  }
  return true;
}

void IntegrationTest::WaitSettled(const std::vector<std::string>& shas, const std::string& job,
                                  const std::string& worktree, int64_t timeout_ms) {
  std::vector<RunRow> last;
  std::string why;
  bool ok = WaitFor([&] { return IsSettled(shas, job, worktree, &why, &last); },
                    ScaledMs(timeout_ms), 100);
  ASSERT_TRUE(ok) << "runs did not settle in time (" << why << "); " << RunsToString(last);
}

void IntegrationTest::WaitQuietTicks(int n, bool idle) {
  std::optional<json> s0 = Status();
  ASSERT_TRUE(s0) << "no daemon answers wtctl status";
  int64_t want = s0->value("ticks", int64_t{0}) + n;
  std::optional<json> s;
  bool ok = WaitFor(
      [&] {
        s = Status();
        return s && s->value("ticks", int64_t{0}) >= want && (!idle || s->value("active", -1) == 0);
      },
      ScaledMs(60000), 50);
  ASSERT_TRUE(ok) << "the daemon did not finish " << n
                  << " quiet ticks; last status: " << (s ? s->dump() : "none");
}

void IntegrationTest::ExpectExactlyOnce(const std::vector<RunRow>& runs,
                                        const std::vector<std::string>& shas,
                                        const std::string& job, const std::string& worktree,
                                        const std::string& state) {
  std::map<std::string, int> count;
  for (const RunRow& r : runs) {
    if (r.job != job || r.worktree != worktree) continue;
    ++count[r.sha];
    EXPECT_EQ(r.state, state) << "run " << r.id << " of " << job << " on " << Short(r.sha);
  }
  std::set<std::string> want(shas.begin(), shas.end());
  for (const std::string& sha : want) {
    EXPECT_EQ(count[sha], 1) << "runs of " << job << " in " << worktree << " for " << Short(sha)
                             << "; " << RunsToString(runs);
  }
  for (const auto& [sha, n] : count) {
    EXPECT_TRUE(want.count(sha)) << n << " unexpected run(s) of " << job << " in " << worktree
                                 << " for " << Short(sha) << "; " << RunsToString(runs);
  }
}

std::vector<json> IntegrationTest::Receipts(const std::string& sha, const std::string& job,
                                            const std::string& worktree) const {
  CommandResult r = RunCommand({"git", "-C", repo_.dir(), "notes", "--ref=wtd", "show", sha});
  std::vector<json> out;
  if (r.exit_code != 0) return out;  // no note
  for (const std::string& line : Lines(r.out)) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "receipt of " << Short(sha) << " is not JSON: " << line;
    if (j.is_object() && j.value("job", "") == job && j.value("worktree", "") == worktree)
      out.push_back(std::move(j));
  }
  return out;
}

void IntegrationTest::ExpectLocksReleased(const std::string& state_dir,
                                          const std::vector<std::string>& shas,
                                          const std::string& job, const std::string& worktree) {
  EXPECT_EQ(repo_.Git({"for-each-ref", "refs/wtd/locks"}), "") << "lock refs left behind";
  CommandResult locks = WtctlIn(state_dir, {"--json", "locks"});
  EXPECT_EQ(locks.exit_code, 0) << locks.Describe();
  json l = json::parse(locks.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(l.is_object() && l["locks"].empty()) << "locks left behind: " << locks.out;
  for (const std::string& sha : shas) {
    std::vector<json> receipts = Receipts(sha, job, worktree);
    EXPECT_EQ(receipts.size(), 1u) << "receipts of " << job << " in " << worktree << " for "
                                   << Short(sha) << ": " << json(receipts).dump();
  }
}

namespace {

// The path with symlinks resolved, as far as it exists.
std::string Canonical(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

}  // namespace

std::string IntegrationTest::TreeCheckedJob(const std::string& extra) const {
  return "run = if [ \"$(git rev-parse HEAD)\" = \"$WTD_SHA\" ] && [ -z \"$(git status "
         "--porcelain)\" ]; then echo \"$WTD_SHA\" >> " +
         effect_ + "; else echo \"dirty $WTD_SHA\" >> " + effect_ +
         "; exit 1; fi; touch left-behind\n" + extra;
}

void IntegrationTest::ExpectWorktreesOwned(const std::string& state_dir) {
  std::string root = Canonical(state_dir + "/worktrees");
  CommandResult list = WtctlIn(state_dir, {"--json", "worktree", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  json l = json::parse(list.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(l.is_object() && l["worktrees"].is_array()) << list.out;
  std::set<std::string> recorded_paths, recorded_names;
  for (const json& w : l["worktrees"]) {
    EXPECT_NE(w.value("state", ""), "creating") << w.dump();
    EXPECT_NE(w.value("state", ""), "removing") << w.dump();
    recorded_names.insert(w.value("name", ""));
    recorded_paths.insert(Canonical(w.value("path", "")));
  }
  std::set<std::string> dirs;
  if (std::filesystem::exists(root)) {
    for (const auto& e : std::filesystem::directory_iterator(root))
      dirs.insert(Canonical(e.path()));
  }
  EXPECT_EQ(dirs, recorded_paths) << "directories under " << root << " vs " << list.out;
  // `git worktree list` names exactly the recorded ones under the root.
  std::set<std::string> listed;
  for (const std::string& line : Lines(repo_.Git({"worktree", "list", "--porcelain"}))) {
    if (line.rfind("worktree ", 0) != 0) continue;
    std::string path = Canonical(line.substr(9));
    if (path.rfind(root + "/", 0) == 0) listed.insert(path);
  }
  EXPECT_EQ(listed, recorded_paths) << "git worktree list vs " << list.out;
  // Admin entries pointing into the root: only recorded ones, none locked.
  std::string admin = repo_.Git({"rev-parse", "--git-common-dir"});
  while (!admin.empty() && admin.back() == '\n') admin.pop_back();
  if (admin.rfind('/', 0) != 0) admin = repo_.dir() + "/" + admin;
  admin += "/worktrees";
  if (std::filesystem::exists(admin)) {
    for (const auto& e : std::filesystem::directory_iterator(admin)) {
      std::string gitdir = ReadFileOr(e.path().string() + "/gitdir");
      if (gitdir.find(root + "/") == std::string::npos &&
          gitdir.find(state_dir + "/worktrees/") == std::string::npos) {
        continue;
      }
      std::string name = e.path().filename().string();
      EXPECT_TRUE(recorded_names.count(name)) << "admin entry " << e.path() << " owned by no slot";
      EXPECT_FALSE(std::filesystem::exists(e.path().string() + "/locked"))
          << "admin entry " << e.path() << " left locked";
    }
  }
  EXPECT_EQ(repo_.Git({"for-each-ref", "refs/heads/wtd/slots"}), "") << "slot branches left";
}

}  // namespace wtd::itest
