#include "integration/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace wtd::itest {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// This process's environment with `extra` (NAME=value) replacing or adding
// entries, minus variables that would steer a daemon behind the test's back.
std::vector<std::string> BuildEnv(const std::vector<std::string>& extra) {
  auto name_of = [](const std::string& e) { return e.substr(0, e.find('=')); };
  std::set<std::string> replaced = {"WTD_CRASH_AT", "WTD_STATE_DIR"};
  for (const std::string& e : extra) replaced.insert(name_of(e));
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!replaced.count(name_of(*e))) out.emplace_back(*e);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Reads what is available on `fd` into `out`; false at EOF or error.
bool Drain(int fd, std::string* out) {
  char buf[8192];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) return false;
  out->append(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

int64_t ScaledMs(int64_t ms) {
  const char* scale = getenv("WTD_IT_TIMEOUT_SCALE");
  double f = scale && *scale ? std::atof(scale) : 1.0;
  return f > 0 ? static_cast<int64_t>(static_cast<double>(ms) * f) : ms;
}

std::string CommandResult::Describe() const {
  std::ostringstream s;
  s << "exit " << exit_code;
  if (term_signal) s << " (signal " << term_signal << ")";
  if (timed_out) s << " (timed out)";
  s << "\n--- stdout\n" << out << "\n--- stderr\n" << err;
  return s.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         int64_t timeout_ms) {
  CommandResult r;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.err = std::string("pipe: ") + strerror(errno);
    return r;
  }
  std::vector<std::string> args = argv, envs = BuildEnv(env);
  std::vector<char*> c_args = CStrings(args), c_env = CStrings(envs);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvpe(c_args[0], c_args.data(), c_env.data());
    dprintf(2, "exec %s: %s\n", c_args[0], strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    r.err = std::string("fork: ") + strerror(errno);
    return r;
  }
  int64_t deadline = NowMs() + timeout_ms;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int n = poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        if (!Drain(fds[i].fd, sinks[i])) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    r.term_signal = WTERMSIG(status);
  } else {
    r.exit_code = ExitCodeOf(status);
  }
  return r;
}

bool WaitFor(const std::function<bool()>& done, int64_t timeout_ms, int64_t interval_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    if (done()) return true;
    if (NowMs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

std::string ReadFileOr(const std::string& path, const std::string& otherwise) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return otherwise;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFileOrDie(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

void IsolateGitConfig() {
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  setenv("GIT_TERMINAL_PROMPT", "0", 1);
}

void GitRepo::Init() {
  std::filesystem::create_directories(dir_);
  Git({"init", "-q", "-b", "main"});
  Git({"config", "user.name", "Wtd Integration"});
  Git({"config", "user.email", "wtd-it@example.com"});
  Git({"config", "commit.gpgsign", "false"});
}

std::string GitRepo::Git(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"git", "-C", dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv);
  std::string cmd;
  for (const std::string& a : argv) cmd += a + " ";
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.Describe();
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void GitRepo::Write(const std::string& file, const std::string& content) const {
  ASSERT_NO_FATAL_FAILURE(WriteFileOrDie(dir_ + "/" + file, content));
}

std::string GitRepo::Commit(const std::string& file, const std::string& content,
                            const std::string& message) const {
  Write(file, content);
  Git({"add", "-A"});
  Git({"commit", "-q", "--allow-empty", "-m", message});
  return Head();
}

std::string GitRepo::CommitJob(const std::string& name, const std::string& body,
                               const std::string& message) const {
  return Commit("jobs/" + name + ".job", body, message.empty() ? "add job " + name : message);
}

std::vector<std::string> GitRepo::RevList(const std::string& rev) const {
  return Lines(Git({"rev-list", rev}));
}

DaemonProcess::DaemonProcess(const std::vector<std::string>& args,
                             const std::vector<std::string>& env, std::string log_path)
    : log_path_(std::move(log_path)) {
  std::vector<std::string> argv = {WTD_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> envs = BuildEnv(env);
  std::vector<char*> c_args = CStrings(argv), c_env = CStrings(envs);
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull < 0 || log < 0) _exit(126);
    dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    execve(c_args[0], c_args.data(), c_env.data());
    dprintf(2, "exec %s: %s\n", c_args[0], strerror(errno));
    _exit(127);
  }
  EXPECT_GT(pid_, 0) << "fork: " << strerror(errno);
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) Kill9();
}

void DaemonProcess::Reap(int status) { exit_code_ = ExitCodeOf(status); }

bool DaemonProcess::Running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    Reap(status);
    return false;
  }
  return r == 0;
}

std::optional<int> DaemonProcess::exit_code() {
  Running();
  return exit_code_;
}

std::optional<int> DaemonProcess::WaitExit(int64_t timeout_ms) {
  WaitFor([&] { return !Running(); }, timeout_ms, 10);
  return exit_code_;
}

int DaemonProcess::Kill9() {
  if (Running()) {
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    Reap(status);
  }
  return exit_code_.value_or(-1);
}

void DaemonProcess::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

std::vector<RunRow> ParseRuns(const json& array) {
  std::vector<RunRow> out;
  if (!array.is_array()) return out;
  auto str = [](const json& j, const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  auto opt = [](const json& j, const char* k) -> std::optional<int64_t> {
    if (!j.contains(k) || !j[k].is_number_integer()) return std::nullopt;
    return j[k].get<int64_t>();
  };
  for (const json& j : array) {
    RunRow r;
    r.id = j.value("id", uint64_t{0});
    r.worktree = str(j, "worktree");
    r.job = str(j, "job");
    r.sha = str(j, "sha");
    r.branch = str(j, "branch");
    r.state = str(j, "state");
    r.error = str(j, "error");
    r.log_path = str(j, "log_path");
    r.attempt = j.value("attempt", int64_t{0});
    r.exit_code = opt(j, "exit_code");
    r.term_signal = opt(j, "term_signal");
    out.push_back(std::move(r));
  }
  return out;
}

bool IsTerminalState(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "timed_out" ||
         state == "cancelled" || state == "skipped";
}

std::string Short(const std::string& sha) { return sha.substr(0, 12); }

std::string RunsToString(const std::vector<RunRow>& runs) {
  std::ostringstream s;
  s << runs.size() << " run(s):\n";
  for (const RunRow& r : runs) {
    s << "  #" << r.id << " " << r.worktree << " " << r.job << " " << Short(r.sha) << " "
      << r.branch << " " << r.state << " attempt " << r.attempt;
    if (!r.error.empty()) s << " error: " << r.error;
    s << "\n";
  }
  return s.str();
}

}  // namespace wtd::itest
