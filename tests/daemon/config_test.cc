#include "daemon/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "fakes/temp_dir.h"

namespace wtd {
namespace {

std::map<std::string, std::string>* g_env = nullptr;

const char* FakeEnv(const char* name) {
  auto it = g_env->find(name);
  return it == g_env->end() ? nullptr : it->second.c_str();
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { g_env = &env_; }
  Result<ParsedArgs> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "wtd");
    return ParseArgs(args, FakeEnv, "/work/repo");
  }
  std::map<std::string, std::string> env_{{"HOME", "/home/u"}};
  TempDir dir_;
};

TEST_F(ConfigTest, DefaultsMatchTheContract) {
  Result<ParsedArgs> p = Parse({});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const Config& c = p->config;
  EXPECT_EQ(c.repos, std::vector<std::string>{"/work/repo"});
  EXPECT_EQ(c.worktree_mode, WorktreeMode::kCurrent);
  EXPECT_EQ(c.poller.jobs_root, "jobs");
  EXPECT_EQ(c.scheduler.poll_ms, 1500);
  EXPECT_EQ(c.poller.lookback_s, 600);
  EXPECT_EQ(c.poller.max_per_tick, 50);
  EXPECT_EQ(c.poller.backoff_ms, 1000);
  EXPECT_EQ(c.poller.max_backoff_ms, 60000);
  EXPECT_GE(c.scheduler.concurrency, 1);
  EXPECT_EQ(c.daemon.state_dir, "/home/u/.local/state/wtd");
  EXPECT_EQ(c.daemon.socket_path, "/home/u/.local/state/wtd/wtd.sock");
  EXPECT_EQ(c.daemon.pid_file, "/home/u/.local/state/wtd/wtd.pid");
  EXPECT_EQ(c.logging.level, "info");
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_FALSE(c.daemon.daemonize);
  EXPECT_FALSE(c.poller.dry_run);
  EXPECT_FALSE(c.scheduler.dry_run);
  EXPECT_TRUE(c.daemon.inotify);
  EXPECT_EQ(c.poller.max_backfill, 200);
  EXPECT_EQ(c.scheduler.shutdown_grace_s, 10);
  EXPECT_EQ(c.scheduler.log_cap_bytes, uint64_t{16} << 20);
  EXPECT_EQ(c.scheduler.state_dir, c.daemon.state_dir);
}

TEST_F(ConfigTest, StateDirPrefersWtdStateDirThenXdg) {
  env_["XDG_STATE_HOME"] = "/xdg";
  EXPECT_EQ(Parse({})->config.daemon.state_dir, "/xdg/wtd");
  env_["WTD_STATE_DIR"] = "/explicit";
  EXPECT_EQ(Parse({})->config.daemon.state_dir, "/explicit");
  EXPECT_EQ(Parse({"--state-dir", "rel"})->config.daemon.state_dir, "/work/repo/rel");
}

TEST_F(ConfigTest, WorktreeModes) {
  EXPECT_EQ(Parse({"--worktrees", "all"})->config.worktree_mode, WorktreeMode::kAll);
  Result<ParsedArgs> p = Parse({"--worktrees", "a", "/b"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config.worktree_mode, WorktreeMode::kPaths);
  EXPECT_EQ(p->config.worktree_paths, (std::vector<std::string>{"/work/repo/a", "/b"}));
  EXPECT_FALSE(Parse({"--worktrees", "all", "x"}).ok());
}

TEST_F(ConfigTest, BadValuesNameTheOptionAndTheValue) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--poll-ms", "5"}, "--poll-ms=5"},
      {{"--concurrency", "0"}, "--concurrency=0"},
      {{"--max-per-tick", "-1"}, "--max-per-tick=-1"},
      {{"--log-level", "loud"}, "--log-level=loud"},
      {{"--log-format", "xml"}, "--log-format=xml"},
      {{"--jobs-root", "/abs"}, "--jobs-root=/abs"},
      {{"--backoff-ms", "5000", "--max-backoff-ms", "10"}, "--max-backoff-ms=10"},
      {{"--socket", "/" + std::string(200, 's')}, "--socket="},
  };
  for (const Case& c : cases) {
    Result<ParsedArgs> p = Parse(c.args);
    ASSERT_FALSE(p.ok()) << c.expect;
    EXPECT_TRUE(p.status().IsInvalidArgument());
    EXPECT_NE(p.status().message().find(c.expect), std::string::npos) << p.status().message();
  }
  Result<ParsedArgs> junk = Parse({"--poll-ms", "fast"});
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find("poll-ms"), std::string::npos) << junk.status().message();
  EXPECT_FALSE(Parse({"--no-such-option"}).ok());
}

TEST_F(ConfigTest, ConfigFileSetsOptionsAndTheCommandLineWins) {
  std::string path = dir_.Sub("wtd.conf");
  std::ofstream(path) << "# comment\npoll-ms = 250\nlookback-s = 30\nrepo = /r1\nrepo = /r2\n";
  Result<ParsedArgs> p = Parse({"--config", path, "--lookback-s", "99"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config.scheduler.poll_ms, 250);
  EXPECT_EQ(p->config.poller.lookback_s, 99);
  EXPECT_EQ(p->config.daemon.config_file, path);
}

TEST_F(ConfigTest, BadConfigFileIsRefusedNamingTheFile) {
  std::string path = dir_.Sub("bad.conf");
  std::ofstream(path) << "poll-ms = soon\n";
  Result<ParsedArgs> p = Parse({"--config", path});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(path), std::string::npos) << p.status().message();
  std::ofstream(path) << "unknown-key = 1\n";
  EXPECT_FALSE(Parse({"--config", path}).ok());
  EXPECT_FALSE(Parse({"--config", dir_.Sub("missing.conf")}).ok());
}

TEST_F(ConfigTest, HelpListsEveryOptionWithItsDefault) {
  Result<ParsedArgs> p = Parse({"--help"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->show_help);
  for (const char* opt :
       {"--repo", "--worktrees", "--jobs-root", "--poll-ms", "--lookback-s", "--max-per-tick",
        "--backoff-ms", "--max-backoff-ms", "--concurrency", "--state-dir", "--socket",
        "--log-level", "--log-format", "--daemonize", "--pid-file", "--dry-run", "--config"}) {
    EXPECT_NE(p->help_text.find(opt), std::string::npos) << opt;
  }
  EXPECT_NE(p->help_text.find("(=1500)"), std::string::npos);
}

TEST_F(ConfigTest, ReloadAppliesWhatItCanAndKeepsTheRestUntilARestart) {
  Config running = Parse({})->config;
  Config reloaded = Parse({"--state-dir", "/other", "--poll-ms", "100", "--shutdown-grace-s", "3",
                           "--log-format", "json", "--no-inotify"})
                        ->config;
  ReloadPlan plan = PlanReload(running, reloaded);
  std::vector<std::string> applied, restart;
  for (const OptionChange& c : plan.applied) applied.push_back(c.option);
  for (const OptionChange& c : plan.needs_restart) restart.push_back(c.option);
  EXPECT_EQ(applied,
            (std::vector<std::string>{"poll-ms", "shutdown-grace-s", "log-format", "no-inotify"}));
  // The socket and the PID file follow the state dir.
  EXPECT_EQ(restart, (std::vector<std::string>{"state-dir", "socket", "pid-file"}));
  ASSERT_EQ(plan.needs_restart.size(), 3u);
  EXPECT_EQ(plan.needs_restart[0].running, "/home/u/.local/state/wtd");
  EXPECT_EQ(plan.needs_restart[0].configured, "/other");
  // What applies is the reloaded value; what needs a restart keeps the running one.
  EXPECT_EQ(plan.next.scheduler.poll_ms, 100);
  EXPECT_EQ(plan.next.scheduler.shutdown_grace_s, 3);
  EXPECT_EQ(plan.next.logging.format, LogFormat::kJson);
  EXPECT_FALSE(plan.next.daemon.inotify);
  EXPECT_EQ(plan.next.daemon.state_dir, running.daemon.state_dir);
  EXPECT_EQ(plan.next.scheduler.state_dir, running.daemon.state_dir);
  EXPECT_EQ(plan.next.daemon.socket_path, running.daemon.socket_path);
  EXPECT_EQ(plan.next.daemon.pid_file, running.daemon.pid_file);

  ReloadPlan same = PlanReload(running, Parse({})->config);
  EXPECT_TRUE(same.applied.empty());
  EXPECT_TRUE(same.needs_restart.empty());
}

}  // namespace
}  // namespace wtd
