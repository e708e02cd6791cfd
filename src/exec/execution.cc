#include "exec/execution.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
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
#include "exec/exit_record.h"
#include "exec/supervisor.h"

namespace wtd {

namespace {

constexpr int64_t kPollIntervalMs = 100;
// How long an aborted supervisor is given to exit on its own, and a killed
// job group to go, before the caller moves on.
constexpr int64_t kExitWaitMs = 2000;
constexpr int kFirstFreeFd = 10;  // keeps daemon-side fds clear of 0..4 in the child

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Moves `fd` (O_CLOEXEC) above the child's fixed fds; closes the original.
int MoveUp(int fd) {
  if (fd < 0 || fd >= kFirstFreeFd) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, kFirstFreeFd);
  close(fd);
  return moved;
}

// pipe2(O_CLOEXEC) with both ends moved above the child's fixed fds.
Status MakePipe(int fds[2], const char* what) {
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno(std::string("pipe2 ") + what, errno);
  for (int i = 0; i < 2; ++i) {
    fds[i] = MoveUp(fds[i]);
    if (fds[i] < 0) {
      int err = errno;
      CloseFd(&fds[1 - i]);
      return Status::FromErrno(std::string("fcntl F_DUPFD_CLOEXEC ") + what, err);
    }
  }
  return Status::OK();
}

// Writes `data` without letting SIGPIPE kill the process when the reader is
// gone: SIGPIPE is blocked in this thread and a pending one is consumed.
int WriteNoSigpipe(int fd, std::string_view data) {
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  bool was_pending = false;
  sigset_t pending;
  if (sigpending(&pending) == 0) was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t n;
  do {
    n = write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  int err = n == static_cast<ssize_t>(data.size()) ? 0 : (n < 0 ? errno : EIO);
  if (err == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return err;
}

// True when the child `pid` has exited (it stays a zombie: not reaped).
bool ChildExited(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
  return info.si_pid == pid;
}

// True when `pid` is a child of this process (exited or not).
bool IsChild(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  return waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

int ReapBlocking(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

void SleepMs(int64_t ms) {
  struct timespec ts = {static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
  nanosleep(&ts, nullptr);
}

std::atomic<int> job_umask{-1};

// "--umask=0022" for the supervisor.
std::string UmaskOption(int mask) {
  char buf[32];
  snprintf(buf, sizeof buf, "--umask=%04o", static_cast<unsigned>(mask) & 0777u);
  return buf;
}

// How a supervisor's wait status reads in an error.
std::string DescribeStatus(int status) {
  if (status >= 0 && WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (status >= 0 && WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "ended";
}

}  // namespace

void SetJobUmask(int mask) { job_umask.store(mask < 0 ? -1 : (mask & 0777)); }

int JobUmask() { return job_umask.load(); }

Execution::Execution(ProcessTable* processes, uint64_t run_id, uint32_t attempt,
                     std::string exit_path, std::string group_path)
    : processes_(processes),
      run_id_(run_id),
      attempt_(attempt),
      exit_path_(std::move(exit_path)),
      group_path_(std::move(group_path)) {}

Result<std::unique_ptr<Execution>> Execution::Start(const SpawnRequest& req,
                                                    ProcessTable* processes) {
  if (req.shim_path.empty() || req.shim_path[0] != '/') {
    return Status::InvalidArgument("exec shim path must be absolute: '" + req.shim_path + "'");
  }
  if (req.exit_path.empty() || req.group_path.empty()) {
    return Status::InvalidArgument("run " + std::to_string(req.run_id) +
                                   ": no exit or group file path for its supervisor");
  }
  std::unique_ptr<Execution> exec(
      new Execution(processes, req.run_id, req.attempt, req.exit_path, req.group_path));
  Status made = MakeDirs(DirName(req.log_path), 0700);
  if (!made.ok()) return made.WithContext("run log directory of " + req.log_path);
  WTD_RETURN_IF_ERROR(MakeDirs(DirName(req.exit_path), 0700));
  // An earlier attempt's files: the supervisor writes this attempt's anew.
  WTD_RETURN_IF_ERROR(RemoveIfExists(req.exit_path));
  WTD_RETURN_IF_ERROR(RemoveIfExists(req.group_path));
  int log_fd = MoveUp(
      open(req.log_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (log_fd < 0) return Status::FromErrno("open run log " + req.log_path, errno);
  struct stat st;
  if (fstat(log_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(log_fd);
    return Status::FailedPrecondition("run log " + req.log_path + " is not a regular file");
  }
  int hs[2];
  Status piped = MakePipe(hs, "handshake pipe");
  if (!piped.ok()) {
    close(log_fd);
    return piped;
  }
  exec->handshake_fd_ = hs[1];
  Status spawned = exec->Spawn(req, log_fd, hs[0]);
  close(log_fd);
  close(hs[0]);
  WTD_RETURN_IF_ERROR(spawned);
  exec->child_ = true;

  Result<uint64_t> start = processes->StartTime(exec->pid_);
  if (!start.ok()) {
    exec->Abort();  // the supervisor sees EOF and exits 125; reaped here
    return start.status().WithContext("start time of spawned supervisor " +
                                      std::to_string(exec->pid_));
  }
  exec->identity_.pid = exec->pid_;
  exec->identity_.start_time = *start;
  exec->identity_.boot_id = processes->BootId();
  exec->identity_.supervisor = true;
  // A pidfd becomes readable when the supervisor exits, so the worker wakes
  // at once; without one (old kernel) it checks every kPollIntervalMs.
  // (glibc 2.36's <sys/pidfd.h> lacks extern "C", so the syscall is used.)
  exec->pid_fd_ = static_cast<int>(syscall(SYS_pidfd_open, exec->pid_, 0));
  exec->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return exec;
}

Result<std::unique_ptr<Execution>> Execution::Adopt(const AdoptRequest& req,
                                                    ProcessTable* processes) {
  const ProcessIdentity& id = req.supervisor;
  std::string who =
      "supervisor " + std::to_string(id.pid) + " of run " + std::to_string(req.run_id);
  if (id.pid <= 0) return Status::NotFound(who + ": no process recorded");
  std::unique_ptr<Execution> exec(
      new Execution(processes, req.run_id, req.attempt, req.exit_path, req.group_path));
  exec->pid_ = id.pid;
  exec->pid_fd_ = static_cast<int>(syscall(SYS_pidfd_open, id.pid, 0));
  if (exec->pid_fd_ < 0 && errno == ESRCH) return Status::NotFound(who + " is gone");
  // Checked after the pidfd is open: the pidfd then names this process and
  // no later one that reuses the pid.
  if (!processes->IsAlive(id)) return Status::NotFound(who + " is gone or is another process now");
  exec->identity_ = id;
  exec->identity_.supervisor = true;
  exec->child_ = IsChild(id.pid);  // this process re-executed itself
  exec->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  {
    MutexLock lock(&exec->mu_);
    exec->released_ = true;
  }
  return exec;
}

Status Execution::Spawn(const SpawnRequest& req, int log_fd, int handshake_read) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  // fd 2 stays the daemon's stderr: the supervisor's own messages.
  posix_spawn_file_actions_adddup2(&actions, handshake_read, kHandshakeFd);
  posix_spawn_file_actions_adddup2(&actions, log_fd, kRunLogFd);
  // Nothing else of the daemon's reaches the supervisor or the job, whatever
  // forgot O_CLOEXEC (a socket another thread accepted just now): a job that
  // outlived its daemon must not keep the control socket or a store file
  // open.
  posix_spawn_file_actions_addclosefrom_np(&actions, kRunLogFd + 1);
  posix_spawn_file_actions_addchdir_np(&actions, req.cwd.c_str());

  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<std::string> args = {req.shim_path,
                                   "--run=" + std::to_string(req.run_id),
                                   "--attempt=" + std::to_string(req.attempt),
                                   "--log-cap=" + std::to_string(req.log_cap_bytes),
                                   "--exit-file=" + req.exit_path,
                                   "--group-file=" + req.group_path};
  if (int mask = job_umask.load(); mask >= 0) args.push_back(UmaskOption(mask));
  args.insert(args.end(), {"--", "/bin/sh", "-c", req.command});
  std::vector<char*> argv, envp;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = req.env;
  for (std::string& var : env) envp.push_back(var.data());
  envp.push_back(nullptr);

  int rc = posix_spawn(&pid_, req.shim_path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    pid_ = -1;
    return Status::FromErrno("spawn " + req.shim_path + " in " + req.cwd, rc);
  }
  return Status::OK();
}

Execution::~Execution() {
  Abort();  // no-op once released
  if (worker_.joinable()) worker_.join();
  CloseFd(&handshake_fd_);
  CloseFd(&pid_fd_);
  CloseFd(&wake_fd_);
}

Status Execution::Release(int64_t timeout_ms, int64_t kill_grace_ms) {
  MutexLock lock(&mu_);
  if (released_ || aborted_) {
    return Status::FailedPrecondition("job " + std::to_string(pid_) + " already " +
                                      (released_ ? "released" : "aborted"));
  }
  released_ = true;
  std::string line = std::string(kReleaseWord) + " " +
                     std::to_string(std::max<int64_t>(timeout_ms, 0)) + " " +
                     std::to_string(std::max<int64_t>(kill_grace_ms, 0)) + "\n";
  int err = WriteNoSigpipe(handshake_fd_, line);
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

void Execution::Watch() {
  MutexLock lock(&mu_);
  if (child_ && handshake_fd_ >= 0) return;  // spawned here: Release starts the worker
  if (worker_.joinable() || done_) return;
  worker_ = std::thread([this] { Run(); });
}

void Execution::Abort() {
  MutexLock lock(&mu_);
  if (released_ || aborted_ || pid_ < 0) return;
  aborted_ = true;
  CloseFd(&handshake_fd_);
  // The supervisor exits 125 at once on EOF; one that does not is killed.
  auto limit = std::chrono::steady_clock::now() + std::chrono::milliseconds(kExitWaitMs);
  while (!ChildExited(pid_) && std::chrono::steady_clock::now() < limit) {
    poll(nullptr, 0, 5);
  }
  kill(-pid_, SIGKILL);  // the group holds only the supervisor; it never ran anything
  int status = ReapBlocking(pid_);
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
    // At once, not from the worker: a daemon that dies right after asking
    // (a crash in its stop) still leaves the job stopping. The pidfd names
    // the supervisor even once it is reaped (the signal then fails).
    if (!abort && pid_fd_ >= 0 && !release_failed_) {
      syscall(SYS_pidfd_send_signal, pid_fd_, SIGTERM, nullptr, 0);
      term_sent_ = true;
    }
  }
  if (abort) {
    Abort();
  } else {
    WakeWorker();
  }
}

bool Execution::TermSent() const {
  MutexLock lock(&mu_);
  return term_sent_;
}

void Execution::WakeWorker() {
  if (wake_fd_ < 0) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

void Execution::Detach() {
  bool abort = false;
  {
    MutexLock lock(&mu_);
    if (done_) return;
    detach_requested_ = true;
    abort = !released_;
  }
  if (abort) return Abort();
  WakeWorker();
  if (worker_.joinable()) worker_.join();
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
  for (;;) {
    bool exited;
    if (pid_fd_ >= 0) {
      struct pollfd pfd = {pid_fd_, POLLIN, 0};
      exited = poll(&pfd, 1, 0) > 0;
    } else {
      exited = child_ ? ChildExited(pid_) : !processes_->IsAlive(identity_);
    }
    if (exited) break;
    if (detach_requested_) return;  // the next daemon adopts the supervisor
    if (terminate_requested_ && !TermSent()) {
      // Without a pidfd Terminate left it here. The supervisor stops the
      // job's group and records the job stopped.
      if (child_) {
        kill(pid_, SIGTERM);  // unreaped: the pid cannot have been reused
      } else {
        processes_->SignalGroup(identity_, SIGTERM).IgnoreError();  // its own group
      }
      MutexLock lock(&mu_);
      term_sent_ = true;
    }
    struct pollfd pfds[2] = {{pid_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(pfds, 2, kPollIntervalMs) > 0 && pfds[1].revents != 0) {
      uint64_t count;
      (void)!read(wake_fd_, &count, sizeof count);
    }
  }
  int status = -1;
  if (child_) {
    status = ReapBlocking(pid_);
  } else {
    // Not this process's child: its parent reaps it; its status is unknown.
    int s = 0;
    if (waitpid(pid_, &s, WNOHANG) == pid_) status = s;
  }
  AttemptOutcome outcome = Collect(status);
  if (release_failed_) {
    outcome = AttemptOutcome();
    outcome.never_ran = true;
    outcome.error = release_error_;
  }
  Finish(std::move(outcome));
}

AttemptOutcome Execution::Collect(int status) {
  if (release_failed_) return AttemptOutcome();
  Result<std::optional<ExitRecord>> record = ReadExitRecord(exit_path_, run_id_, attempt_);
  if (record.ok() && *record) return (*record)->outcome;
  AttemptOutcome lost;
  lost.lost = true;
  lost.error = "supervisor " + std::to_string(identity_.pid) + " " + DescribeStatus(status) +
               " without recording the job's outcome (" +
               (record.ok() ? "no exit file " + exit_path_ : record.status().ToString()) + ")";
  // Its job may live on, and its group members: they go before the next
  // attempt starts.
  Result<std::optional<JobGroup>> group = ReadJobGroup(group_path_);
  if (!group.ok()) {
    lost.error += "; its job's process group is unknown: " + group.status().ToString();
    return lost;
  }
  if (!*group) return lost;  // the job never got past its gate
  ProcessIdentity leader{(*group)->pgid, (*group)->start_time, identity_.boot_id};
  if (processes_->SignalGroup(leader, SIGKILL).ok()) {
    for (int64_t waited = 0; processes_->IsAlive(leader) && waited < kExitWaitMs; waited += 10) {
      SleepMs(10);
    }
    lost.error += "; killed its job's process group " + std::to_string(leader.pid);
  } else if (processes_->SignalLeftoverGroup(leader, SIGKILL).ok()) {
    lost.error += "; killed what was left of its job's process group " + std::to_string(leader.pid);
  }
  return lost;
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
  Result<std::unique_ptr<Launched>> Adopt(const AdoptRequest& req) override {
    WTD_ASSIGN_OR_RETURN(std::unique_ptr<Execution> exec, Execution::Adopt(req, processes_));
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
