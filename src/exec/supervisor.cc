#include "exec/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/process_table.h"
#include "exec/exit_record.h"
#include "exec/run_log.h"

namespace wtd {
namespace {

constexpr int64_t kPollIntervalMs = 100;
// How long the output pipe is read after the group was killed. Only a
// process that left the group (setsid) can hold it open longer.
constexpr int64_t kDrainLimitMs = 2000;
constexpr char kCrashEnv[] = "WTD_EXEC_CRASH_AT";
constexpr size_t kReleaseMax = 64;

struct Options {
  uint64_t run = 0;
  uint32_t attempt = 0;
  uint64_t log_cap = 0;
  std::string exit_file;
  std::string group_file;
  int umask = -1;
  char** program = nullptr;
};

int64_t SteadyMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t WallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

template <class T>
bool ParseNumber(std::string_view text, T* out, int base = 10) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && p == text.data() + text.size() && !text.empty();
}

// "--name=VALUE" -> VALUE when `arg` is that option.
std::optional<std::string_view> OptionValue(std::string_view arg, std::string_view name) {
  if (arg.size() < name.size() + 3 || arg.substr(0, 2) != "--" ||
      arg.substr(2, name.size()) != name || arg[2 + name.size()] != '=') {
    return std::nullopt;
  }
  return arg.substr(3 + name.size());
}

int Usage(const char* why) {
  fprintf(stderr,
          "wtd-exec: %s\n"
          "usage: wtd-exec --run=N --attempt=N --log-cap=BYTES --exit-file=PATH "
          "--group-file=PATH [--umask=OCTAL] -- PROGRAM [ARG...]\n"
          "(started by wtd with fd 3 the handshake pipe and fd 4 the run log)\n",
          why);
  return kSupervisorNotRun;
}

// Parses argv into *o; "" or what is wrong.
std::string Parse(int argc, char** argv, Options* o) {
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; ++i) {
    std::string_view arg = argv[i];
    if (auto v = OptionValue(arg, "run")) {
      if (!ParseNumber(*v, &o->run) || o->run == 0) return "bad --run";
    } else if (auto v = OptionValue(arg, "attempt")) {
      if (!ParseNumber(*v, &o->attempt) || o->attempt == 0) return "bad --attempt";
    } else if (auto v = OptionValue(arg, "log-cap")) {
      if (!ParseNumber(*v, &o->log_cap)) return "bad --log-cap";
    } else if (auto v = OptionValue(arg, "exit-file")) {
      o->exit_file = *v;
    } else if (auto v = OptionValue(arg, "group-file")) {
      o->group_file = *v;
    } else if (auto v = OptionValue(arg, "umask")) {
      unsigned mask = 0;
      if (v->size() > 4 || !ParseNumber(*v, &mask, 8) || mask > 0777) return "bad --umask";
      o->umask = static_cast<int>(mask);
    } else {
      return "unknown option " + std::string(arg);
    }
  }
  if (i + 1 >= argc) return "no program after --";
  if (o->run == 0 || o->attempt == 0 || o->exit_file.empty() || o->group_file.empty()) {
    return "--run, --attempt, --exit-file and --group-file are required";
  }
  o->program = argv + i + 1;
  return "";
}

// Dies as kill -9 would when $WTD_EXEC_CRASH_AT names `point`.
void CrashPoint(const char* crash_at, const char* point) {
  if (crash_at != nullptr && strcmp(crash_at, point) == 0) kill(getpid(), SIGKILL);
}

// Reads the release line from the handshake pipe: {timeout, grace}, or
// nullopt on EOF, an error or anything else.
std::optional<std::pair<int64_t, int64_t>> ReadRelease() {
  char buf[kReleaseMax];
  size_t have = 0;
  while (have < sizeof buf) {
    ssize_t n = read(kHandshakeFd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    have += static_cast<size_t>(n);
    if (memchr(buf, '\n', have) != nullptr) break;
  }
  std::string_view line(buf, have);
  size_t nl = line.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  line = line.substr(0, nl);
  std::string_view word = kReleaseWord;
  if (line.substr(0, word.size() + 1) != std::string(word) + " ") return std::nullopt;
  line.remove_prefix(word.size() + 1);
  size_t space = line.find(' ');
  int64_t timeout = 0, grace = 0;
  if (space == std::string_view::npos || !ParseNumber(line.substr(0, space), &timeout) ||
      !ParseNumber(line.substr(space + 1), &grace)) {
    return std::nullopt;
  }
  return std::make_pair(timeout, std::max<int64_t>(grace, 0));
}

// Writes the job's group to `path` (temp file + rename, not synced).
bool WriteGroupFile(const std::string& path, const JobGroup& g) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::string text = EncodeJobGroup(g);
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = close(fd) == 0 && ok;
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

// The job: supervisor's child. Never returns.
[[noreturn]] void RunJob(const Options& o, int out_write, int gate_read) {
  setpgid(0, 0);
  // fd 3 becomes the gate; 0 stays /dev/null; 1 and 2 the output pipe.
  if (dup2(out_write, 1) < 0 || dup2(out_write, 2) < 0 || dup2(gate_read, kHandshakeFd) < 0) {
    _exit(kSupervisorNotRun);
  }
  syscall(SYS_close_range, kHandshakeFd + 1, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) signal(sig, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (o.umask >= 0) umask(static_cast<mode_t>(o.umask));
  char byte = 0;
  ssize_t n;
  do {
    n = read(kHandshakeFd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(kSupervisorNotRun);  // the supervisor died before the group was recorded
  close(kHandshakeFd);
  execv(o.program[0], o.program);
  dprintf(2, "%s%s: %s\n", kExecFailurePrefix, o.program[0], strerror(errno));
  _exit(kJobExecFailed);
}

// The supervisor's loop around one released job.
class Supervisor {
 public:
  Supervisor(const Options& o, int64_t timeout_ms, int64_t grace_ms)
      : o_(o), timeout_ms_(timeout_ms), grace_ms_(grace_ms), log_(kRunLogFd, "fd 4", o.log_cap) {}

  int Run(int signal_fd) {
    if (Status st = log_.Open(); !st.ok()) {
      fprintf(stderr, "wtd-exec: run %llu: %s; not running the job\n",
              static_cast<unsigned long long>(o_.run), st.ToString().c_str());
      return kSupervisorNotRun;
    }
    log_.WriteAttemptHeader(o_.attempt);
    ExitRecord record;
    record.run_id = o_.run;
    record.attempt = o_.attempt;
    record.started_at_ms = WallMs();
    started_ms_ = SteadyMs();
    AttemptOutcome& outcome = record.outcome;
    std::string start_error;
    int status = Start(&start_error);
    if (pid_ > 0) status = Watch(signal_fd);
    int64_t ended_ms = SteadyMs();
    log_.Finish();
    record.ended_at_ms = WallMs();
    if (!start_error.empty()) {
      outcome.never_ran = true;  // the job was never let past its gate
      outcome.exit_code = -1;
      outcome.error = start_error;
    } else if (WIFEXITED(status)) {
      outcome.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      outcome.term_signal = WTERMSIG(status);
    } else {
      outcome.error = "could not reap job " + std::to_string(pid_);
    }
    if (outcome.exit_code == kJobExecFailed && log_.head().rfind(kExecFailurePrefix, 0) == 0) {
      outcome.error = log_.head().substr(0, log_.head().find('\n'));
    }
    outcome.timed_out = timed_out_;
    outcome.stopped = term_sent_ && !timed_out_;
    outcome.duration_ms = (pid_ > 0 ? exited_ms_ : ended_ms) - started_ms_;
    outcome.log_bytes = log_.bytes();
    outcome.log_truncated = log_.truncated();
    const char* crash_at = crash_at_.empty() ? nullptr : crash_at_.c_str();
    CrashPoint(crash_at, "exec_before_exit_write");
    Status written = WriteExitRecord(o_.exit_file, record);
    if (!written.ok()) {
      fprintf(stderr, "wtd-exec: run %llu attempt %u: cannot record the outcome: %s\n",
              static_cast<unsigned long long>(o_.run), o_.attempt, written.ToString().c_str());
      return kSupervisorOutcomeLost;
    }
    CrashPoint(crash_at, "exec_after_exit_write");
    return kSupervisorOutcomeWritten;
  }

 private:
  // Forks the job, records its group, lets it exec. On failure *error says
  // why and the job never runs (a forked one is killed at its gate).
  int Start(std::string* error) {
    if (const char* c = getenv(kCrashEnv)) crash_at_ = c;
    unsetenv(kCrashEnv);  // the job's environment is the daemon's choice, not this
    int out[2], gate[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
      *error = std::string("wtd-exec: output pipe: ") + strerror(errno);
      return 0;
    }
    if (pipe2(gate, O_CLOEXEC) != 0) {
      *error = std::string("wtd-exec: gate pipe: ") + strerror(errno);
      close(out[0]);
      close(out[1]);
      return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(out[0]);
      close(gate[1]);
      RunJob(o_, out[1], gate[0]);
    }
    close(out[1]);
    close(gate[0]);
    if (pid < 0) {
      *error = std::string("wtd-exec: fork: ") + strerror(errno);
      close(out[0]);
      close(gate[1]);
      return 0;
    }
    setpgid(pid, pid);  // also done by the child: whichever runs first
    pid_ = pid;
    out_fd_ = out[0];
    Result<uint64_t> start = SystemProcessTable()->StartTime(pid);
    bool recorded = start.ok() && WriteGroupFile(o_.group_file, JobGroup{pid, *start});
    if (!recorded) {
      // Without its group on record the job could not be found again if
      // this supervisor died: it does not run.
      *error = "wtd-exec: cannot record the job's process group in " + o_.group_file;
      close(gate[1]);
      kill(pid, SIGKILL);
      return 0;
    }
    char go = 'g';
    ssize_t n;
    do {
      n = write(gate[1], &go, 1);
    } while (n < 0 && errno == EINTR);
    close(gate[1]);
    return 0;
  }

  // Pumps output, enforces the deadlines, reaps. Returns the wait status.
  int Watch(int signal_fd) {
    int pid_fd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    bool pipe_open = true;
    for (;;) {
      if (LeaderExited()) break;
      int64_t now = SteadyMs();
      EnforceDeadlines(now);
      struct pollfd pfds[3] = {
          {pid_fd, POLLIN, 0}, {pipe_open ? out_fd_ : -1, POLLIN, 0}, {signal_fd, POLLIN, 0}};
      int ready = poll(pfds, 3, static_cast<int>(NextWakeMs(now)));
      if (ready <= 0) continue;
      if (pfds[1].revents != 0) pipe_open = PumpOnce();
      if (pfds[2].revents != 0) {
        signalfd_siginfo info;
        while (read(signal_fd, &info, sizeof info) == sizeof info) {
          if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop_requested_ = true;
        }
      }
    }
    exited_ms_ = SteadyMs();
    if (pid_fd >= 0) close(pid_fd);
    // The rest of the group goes before the leader is reaped: while the
    // leader is an unreaped zombie its pid, and so the group id, cannot be
    // reused.
    kill(-pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) {
        status = -1;
        break;
      }
    }
    if (pipe_open) Drain(exited_ms_ + kDrainLimitMs);
    close(out_fd_);
    return status;
  }

  bool LeaderExited() {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
    return info.si_pid == pid_;
  }

  int64_t NextWakeMs(int64_t now) const {
    int64_t wake = kPollIntervalMs;
    if (!term_sent_ && timeout_ms_ > 0) wake = std::min(wake, started_ms_ + timeout_ms_ - now);
    if (term_sent_ && !kill_sent_) wake = std::min(wake, term_sent_ms_ + grace_ms_ - now);
    return std::max<int64_t>(wake, 0);
  }

  void EnforceDeadlines(int64_t now) {
    if (!term_sent_) {
      bool timeout_due = timeout_ms_ > 0 && now - started_ms_ >= timeout_ms_;
      if (timeout_due || stop_requested_) {
        timed_out_ = timeout_due && !stop_requested_;
        kill(-pid_, SIGTERM);
        term_sent_ = true;
        term_sent_ms_ = now;
      }
    } else if (!kill_sent_ && now - term_sent_ms_ >= grace_ms_) {
      kill(-pid_, SIGKILL);
      kill_sent_ = true;
    }
  }

  bool PumpOnce() {
    char buf[64 * 1024];
    ssize_t n = read(out_fd_, buf, sizeof buf);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return false;
    log_.Append(buf, static_cast<size_t>(n));
    return true;
  }

  void Drain(int64_t limit_ms) {
    for (;;) {
      int64_t left = limit_ms - SteadyMs();
      if (left <= 0) return;
      struct pollfd pfd = {out_fd_, POLLIN, 0};
      int ready = poll(&pfd, 1, static_cast<int>(std::min(left, kPollIntervalMs)));
      if (ready > 0 && !PumpOnce()) return;
    }
  }

  const Options& o_;
  const int64_t timeout_ms_;
  const int64_t grace_ms_;
  RunLog log_;
  std::string crash_at_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int64_t started_ms_ = 0;
  int64_t exited_ms_ = 0;
  bool stop_requested_ = false;
  bool timed_out_ = false;
  bool term_sent_ = false;
  int64_t term_sent_ms_ = 0;
  bool kill_sent_ = false;
};

}  // namespace

int SupervisorMain(int argc, char** argv) {
  Options o;
  if (std::string why = Parse(argc, argv, &o); !why.empty()) return Usage(why.c_str());
  struct stat st;
  if (fstat(kHandshakeFd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    fprintf(stderr, "wtd-exec: fd %d is not the handshake pipe; not running %s\n", kHandshakeFd,
            o.program[0]);
    return kSupervisorNotRun;
  }
  if (fstat(kRunLogFd, &st) != 0) {
    fprintf(stderr, "wtd-exec: fd %d is not the run log; not running %s\n", kRunLogFd,
            o.program[0]);
    return kSupervisorNotRun;
  }
  // The stop request arrives as SIGTERM (or SIGINT) and is read from a
  // signalfd; a hangup of a terminal the daemon left is not one; a daemon
  // stderr that went away does not kill the supervisor either.
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  sigprocmask(SIG_BLOCK, &stops, nullptr);
  int signal_fd = signalfd(-1, &stops, SFD_CLOEXEC | SFD_NONBLOCK);
  std::optional<std::pair<int64_t, int64_t>> release = ReadRelease();
  if (!release) return kSupervisorNotRun;  // not released: the daemon died or aborted
  close(kHandshakeFd);
  Supervisor supervisor(o, release->first, release->second);
  return supervisor.Run(signal_fd);
}

}  // namespace wtd
