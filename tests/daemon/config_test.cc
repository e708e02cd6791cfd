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
  EXPECT_EQ(c.jobs_root, "jobs");
  EXPECT_EQ(c.poll_ms, 1500);
  EXPECT_EQ(c.lookback_s, 600);
  EXPECT_EQ(c.max_per_tick, 50);
  EXPECT_EQ(c.backoff_ms, 1000);
  EXPECT_EQ(c.max_backoff_ms, 60000);
  EXPECT_GE(c.concurrency, 1);
  EXPECT_EQ(c.state_dir, "/home/u/.local/state/wtd");
  EXPECT_EQ(c.socket_path, "/home/u/.local/state/wtd/wtd.sock");
  EXPECT_EQ(c.pid_file, "/home/u/.local/state/wtd/wtd.pid");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_format, LogFormat::kText);
  EXPECT_FALSE(c.daemonize);
  EXPECT_FALSE(c.dry_run);
}

TEST_F(ConfigTest, StateDirPrefersWtdStateDirThenXdg) {
  env_["XDG_STATE_HOME"] = "/xdg";
  EXPECT_EQ(Parse({})->config.state_dir, "/xdg/wtd");
  env_["WTD_STATE_DIR"] = "/explicit";
  EXPECT_EQ(Parse({})->config.state_dir, "/explicit");
  EXPECT_EQ(Parse({"--state-dir", "rel"})->config.state_dir, "/work/repo/rel");
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
  EXPECT_EQ(p->config.poll_ms, 250);
  EXPECT_EQ(p->config.lookback_s, 99);
  EXPECT_EQ(p->config.config_file, path);
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

TEST_F(ConfigTest, RestartOnlyOptionsAreReported) {
  Config a = Parse({})->config;
  Config b = Parse({"--state-dir", "/other", "--poll-ms", "100"})->config;
  EXPECT_EQ(RestartOnlyDifferences(a, b),
            (std::vector<std::string>{"state-dir", "socket", "pid-file"}));
}

}  // namespace
}  // namespace wtd
