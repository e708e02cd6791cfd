#include "exec/execution.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string_view>

#include "base/file_util.h"

namespace wtd {

namespace {

constexpr int64_t kPollIntervalMs = 100;
// How long the output pipe is read after the group was killed. Only a process
// that left the group (setsid) can hold it open longer; it is not waited for.
constexpr int64_t kDrainLimitMs = 2000;
constexpr size_t kOutputHeadBytes = 512;
constexpr int kFirstFreeFd = 10;  // keeps daemon-side fds clear of 0..3 in the child
constexpr char kExecFailurePrefix[] = "wtd-exec: exec ";
constexpr char kTruncationPrefix[] = "[wtd: log truncated at ";
constexpr size_t kTailBytes = 256;  // longer than any marker line

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// pipe2(O_CLOEXEC) with both ends moved above the child's fixed fds 0..3.
Status MakePipe(int fds[2], const char* what) {
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno(std::string("pipe2 ") + what, errno);
  for (int i = 0; i < 2; ++i) {
    if (fds[i] >= kFirstFreeFd) continue;
    int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, kFirstFreeFd);
    int err = errno;
    close(fds[i]);
    fds[i] = moved;
    if (moved < 0) {
      CloseFd(&fds[1 - i]);
      return Status::FromErrno(std::string("fcntl F_DUPFD_CLOEXEC ") + what, err);
    }
  }
  return Status::OK();
}

// Writes one byte without letting SIGPIPE kill the process when the reader is
// gone: SIGPIPE is blocked in this thread and a pending one is consumed.
int WriteByteNoSigpipe(int fd) {
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  bool was_pending = false;
  sigset_t pending;
  if (sigpending(&pending) == 0) was_pending = sigismember(&pending, SIGPIPE) == 1;
  char byte = 'g';
  ssize_t n;
  do {
    n = write(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  int err = n == 1 ? 0 : (n < 0 ? errno : EIO);
  if (err == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return err;
}

int64_t MsBetween(std::chrono::steady_clock::time_point from,
                  std::chrono::steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// True when the child `pid` has exited (it stays a zombie: not reaped).
bool LeaderExited(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
  return info.si_pid == pid;
}

int ReapBlocking(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

std::atomic<int> job_umask{-1};

// "--umask=0022" for the shim.
std::string UmaskOption(int mask) {
  char buf[32];
  snprintf(buf, sizeof buf, "--umask=%04o", static_cast<unsigned>(mask) & 0777u);
  return buf;
}

// True when the last line of `tail` (the end of a log) is a truncation marker.
bool EndsWithTruncationMarker(std::string_view tail) {
  if (tail.empty() || tail.back() != '\n') return false;
  tail.remove_suffix(1);
  size_t newline = tail.rfind('\n');
  std::string_view last = newline == std::string_view::npos ? tail : tail.substr(newline + 1);
  return last.rfind(kTruncationPrefix, 0) == 0;
}

}  // namespace

void SetJobUmask(int mask) { job_umask.store(mask < 0 ? -1 : (mask & 0777)); }

Execution::Execution(const SpawnRequest& req) : req_(req) {}

Result<std::unique_ptr<Execution>> Execution::Start(const SpawnRequest& req,
                                                    ProcessTable* processes) {
  if (req.shim_path.empty() || req.shim_path[0] != '/') {
    return Status::InvalidArgument("exec shim path must be absolute: '" + req.shim_path + "'");
  }
  std::unique_ptr<Execution> exec(new Execution(req));
  Status made = MakeDirs(DirName(req.log_path), 0700);
  if (!made.ok()) return made.WithContext("run log directory of " + req.log_path);
  exec->log_fd_ =
      open(req.log_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (exec->log_fd_ < 0) return Status::FromErrno("open run log " + req.log_path, errno);
  WTD_RETURN_IF_ERROR(exec->ReadLogTail());

  int out[2], hs[2];
  WTD_RETURN_IF_ERROR(MakePipe(out, "output pipe"));
  exec->out_fd_ = out[0];
  Status piped = MakePipe(hs, "handshake pipe");
  if (!piped.ok()) {
    close(out[1]);
    return piped;
  }
  exec->handshake_fd_ = hs[1];
  Status spawned = exec->Spawn(out[1], hs[0]);
  close(out[1]);
  close(hs[0]);
  WTD_RETURN_IF_ERROR(spawned);

  Result<uint64_t> start = processes->StartTime(exec->pid_);
  if (!start.ok()) {
    exec->Abort();  // the shim sees EOF and exits 125; reaped here
    return start.status().WithContext("start time of spawned job " + std::to_string(exec->pid_));
  }
  exec->identity_.pid = exec->pid_;
  exec->identity_.start_time = *start;
  exec->identity_.boot_id = processes->BootId();
  return exec;
}

Status Execution::ReadLogTail() {
  struct stat st;
  if (fstat(log_fd_, &st) != 0) return Status::FromErrno("stat run log " + req_.log_path, errno);
  if (!S_ISREG(st.st_mode)) {
    return Status::FailedPrecondition("run log " + req_.log_path + " is not a regular file");
  }
  log_bytes_ = static_cast<uint64_t>(st.st_size);
  if (log_bytes_ == 0) return Status::OK();
  char buf[kTailBytes];
  size_t want = static_cast<size_t>(std::min<uint64_t>(log_bytes_, sizeof buf));
  ssize_t n = pread(log_fd_, buf, want, static_cast<off_t>(log_bytes_ - want));
  if (n != static_cast<ssize_t>(want)) {
    return Status::FromErrno("read the end of run log " + req_.log_path, n < 0 ? errno : EIO);
  }
  std::string_view tail(buf, want);
  log_ends_with_newline_ = tail.back() == '\n';
  log_marked_ = EndsWithTruncationMarker(tail);
  log_full_ = log_marked_;
  return Status::OK();
}

Status Execution::Spawn(int out_write, int handshake_read) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write, 1);
  posix_spawn_file_actions_adddup2(&actions, out_write, 2);
  posix_spawn_file_actions_adddup2(&actions, handshake_read, 3);
  // Nothing else of the daemon's reaches the job, whatever forgot
  // O_CLOEXEC (a log file, a socket another thread accepted just now): a job
  // that outlived its daemon must not keep the control socket or a store
  // file open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);
  posix_spawn_file_actions_addchdir_np(&actions, req_.cwd.c_str());

  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<std::string> args = {req_.shim_path};
  if (int mask = job_umask.load(); mask >= 0) args.push_back(UmaskOption(mask));
  args.insert(args.end(), {"--", "/bin/sh", "-c", req_.command});
  std::vector<char*> argv, envp;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = req_.env;
  for (std::string& var : env) envp.push_back(var.data());
  envp.push_back(nullptr);

  int rc = posix_spawn(&pid_, req_.shim_path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    return Status::FromErrno("spawn " + req_.shim_path + " in " + req_.cwd, rc);
  }
  return Status::OK();
}

Execution::~Execution() {
  Abort();  // no-op once released
  if (worker_.joinable()) worker_.join();
  CloseFd(&out_fd_);
  CloseFd(&handshake_fd_);
  CloseFd(&log_fd_);
}

Status Execution::Release(int64_t timeout_ms, int64_t kill_grace_ms) {
  MutexLock lock(&mu_);
  if (released_ || aborted_) {
    return Status::FailedPrecondition("job " + std::to_string(pid_) + " already " +
                                      (released_ ? "released" : "aborted"));
  }
  released_ = true;
  timeout_ms_ = timeout_ms;
  kill_grace_ms_ = std::max<int64_t>(kill_grace_ms, 0);
  released_at_ = std::chrono::steady_clock::now();
  int err = WriteByteNoSigpipe(handshake_fd_);
  CloseFd(&handshake_fd_);
  Status result;
  if (err != 0) {
    release_failed_ = true;
    result = Status::FromErrno("release job " + std::to_string(pid_) + ": write handshake", err);
    release_error_ = result.message();
  }
  worker_ = std::thread([this] { Run(); });
  return result;
}

void Execution::Abort() {
  MutexLock lock(&mu_);
  if (released_ || aborted_ || pid_ < 0) return;
  aborted_ = true;
  CloseFd(&handshake_fd_);
  // The shim exits 125 at once on EOF; a shim that does not is killed.
  auto limit = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDrainLimitMs);
  while (!LeaderExited(pid_) && std::chrono::steady_clock::now() < limit) {
    poll(nullptr, 0, 5);
  }
  kill(-pid_, SIGKILL);  // the group holds only the shim; it never ran anything
  int status = ReapBlocking(pid_);
  CloseFd(&out_fd_);
  CloseFd(&log_fd_);
  outcome_ = AttemptOutcome();
  outcome_.never_ran = true;
  if (status >= 0 && WIFSIGNALED(status)) outcome_.term_signal = WTERMSIG(status);
  done_ = true;
  cv_.SignalAll();
}

void Execution::Terminate() {
  bool abort = false;
  {
    MutexLock lock(&mu_);
    if (done_) return;
    terminate_requested_ = true;
    abort = !released_;
  }
  if (abort) Abort();
}

bool Execution::Done() const {
  MutexLock lock(&mu_);
  return done_;
}

std::optional<AttemptOutcome> Execution::Wait(int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  MutexLock lock(&mu_);
  while (!done_) {
    if (timeout_ms < 0) {
      cv_.Wait(&mu_);
    } else if (!cv_.WaitUntil(&mu_, deadline) && !done_) {
      return std::nullopt;
    }
  }
  return outcome_;
}

void Execution::OnDone(std::function<void(const AttemptOutcome&)> fn) {
  MutexLock lock(&mu_);
  on_done_ = std::move(fn);
}

void Execution::Run() {
  bool timed_out = false;
  bool pipe_open = true;
  // A pidfd becomes readable when the leader exits, so the loop wakes at once;
  // without one (old kernel) the leader is checked every kPollIntervalMs.
  // (glibc 2.36's <sys/pidfd.h> lacks extern "C", so the syscall is used.)
  int pid_fd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (!release_failed_) WriteAttemptHeader();  // before any of the job's output
  SteadyTime exited_at;
  for (;;) {
    SteadyTime now = std::chrono::steady_clock::now();
    if (LeaderExited(pid_)) {
      exited_at = now;
      break;
    }
    EnforceDeadlines(now, &timed_out);
    struct pollfd pfds[2] = {{pid_fd, POLLIN, 0}, {pipe_open ? out_fd_ : -1, POLLIN, 0}};
    int ready = poll(pfds, 2, kPollIntervalMs);
    if (ready > 0 && pfds[1].revents != 0) pipe_open = PumpOnce();
  }
  CloseFd(&pid_fd);
  // Kill the whole group before reaping the leader: while the leader is an
  // unreaped zombie its pid (and so the group id) cannot be reused.
  kill(-pid_, SIGKILL);
  int status = ReapBlocking(pid_);
  if (pipe_open) Drain(exited_at + std::chrono::milliseconds(kDrainLimitMs));
  FinishLog();

  AttemptOutcome outcome;
  DecodeStatus(status, &outcome);
  outcome.timed_out = timed_out;
  outcome.stopped = term_sent_at_.has_value() && !timed_out;
  outcome.duration_ms = MsBetween(released_at_, exited_at);
  outcome.log_bytes = log_bytes_;
  outcome.log_truncated = log_truncated_ || log_marked_;
  if (release_failed_) {
    outcome.never_ran = true;
    outcome.exit_code = -1;
    outcome.error = release_error_;
  }
  Finish(std::move(outcome));
}

void Execution::EnforceDeadlines(SteadyTime now, bool* timed_out) {
  if (!term_sent_at_) {
    bool timeout_due = timeout_ms_ > 0 && MsBetween(released_at_, now) >= timeout_ms_;
    if (timeout_due || terminate_requested_) {
      *timed_out = timeout_due && !terminate_requested_;
      kill(-pid_, SIGTERM);
      term_sent_at_ = now;
    }
  } else if (!kill_sent_ && MsBetween(*term_sent_at_, now) >= kill_grace_ms_) {
    kill(-pid_, SIGKILL);
    kill_sent_ = true;
  }
}

bool Execution::PumpOnce() {
  char buf[64 * 1024];
  ssize_t n = read(out_fd_, buf, sizeof(buf));
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  AppendToLog(buf, static_cast<size_t>(n));
  return true;
}

void Execution::Drain(SteadyTime limit) {
  for (;;) {
    int64_t left = MsBetween(std::chrono::steady_clock::now(), limit);
    if (left <= 0) return;
    struct pollfd pfd = {out_fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, kPollIntervalMs)));
    if (ready > 0 && !PumpOnce()) return;
  }
}

void Execution::WriteAttemptHeader() {
  if (req_.attempt <= 1 || log_full_) return;
  std::string header = log_ends_with_newline_ ? "" : "\n";
  header += "[wtd: attempt " + std::to_string(req_.attempt) + "]\n";
  if (log_bytes_ + header.size() > req_.log_cap_bytes) {
    // No room even for the header: this attempt's part of the log is cut
    // whole (a header without its output would mislead).
    log_truncated_ = true;
    log_full_ = true;
    return;
  }
  WriteLog(header.data(), header.size());
}

void Execution::AppendToLog(const char* data, size_t size) {
  if (output_head_.size() < kOutputHeadBytes) {
    output_head_.append(data, std::min(size, kOutputHeadBytes - output_head_.size()));
  }
  uint64_t room = log_full_ ? 0 : req_.log_cap_bytes - std::min(log_bytes_, req_.log_cap_bytes);
  size_t keep = static_cast<size_t>(std::min<uint64_t>(room, size));
  if (keep < size) log_truncated_ = true;
  WriteLog(data, keep);
}

size_t Execution::WriteLog(const char* data, size_t size) {
  size_t written = 0;
  while (written < size && log_fd_ >= 0) {
    ssize_t n = write(log_fd_, data + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // disk full or I/O error: the output is lost, the job is not
    written += static_cast<size_t>(n);
  }
  log_bytes_ += written;
  if (written > 0) log_ends_with_newline_ = data[written - 1] == '\n';
  return written;
}

void Execution::FinishLog() {
  if (log_fd_ < 0) return;
  if (log_truncated_ && !log_marked_) {
    // Once per run: a later attempt finds the marker and writes nothing.
    std::string marker = log_ends_with_newline_ ? "" : "\n";
    marker += kTruncationPrefix + std::to_string(req_.log_cap_bytes) + " bytes]\n";
    WriteLog(marker.data(), marker.size());  // best effort: the outcome records it anyway
  }
  fsync(log_fd_);
  // The file, not the count, is the truth (a write may have failed midway).
  struct stat st;
  if (fstat(log_fd_, &st) == 0) log_bytes_ = static_cast<uint64_t>(st.st_size);
  CloseFd(&log_fd_);
  CloseFd(&out_fd_);
}

void Execution::DecodeStatus(int status, AttemptOutcome* outcome) const {
  if (status >= 0 && WIFEXITED(status)) {
    outcome->exit_code = WEXITSTATUS(status);
  } else if (status >= 0 && WIFSIGNALED(status)) {
    outcome->term_signal = WTERMSIG(status);
  } else {
    outcome->error = "could not reap job " + std::to_string(pid_);
  }
  // The shim's own message is the first output when its exec failed.
  if (outcome->exit_code == 127 && output_head_.rfind(kExecFailurePrefix, 0) == 0) {
    outcome->error = output_head_.substr(0, output_head_.find('\n'));
  }
}

void Execution::Finish(AttemptOutcome outcome) {
  std::function<void(const AttemptOutcome&)> callback;
  {
    MutexLock lock(&mu_);
    outcome_ = outcome;
    done_ = true;
    callback = on_done_;
  }
  cv_.SignalAll();
  if (callback) callback(outcome);
}

namespace {

class ShimLauncher : public Launcher {
 public:
  explicit ShimLauncher(ProcessTable* processes) : processes_(processes) {}
  Result<std::unique_ptr<Launched>> Start(const SpawnRequest& req) override {
    WTD_ASSIGN_OR_RETURN(std::unique_ptr<Execution> exec, Execution::Start(req, processes_));
    return std::unique_ptr<Launched>(std::move(exec));
  }

 private:
  ProcessTable* processes_;
};

}  // namespace

std::unique_ptr<Launcher> NewShimLauncher(ProcessTable* processes) {
  return std::make_unique<ShimLauncher>(processes);
}

}  // namespace wtd
