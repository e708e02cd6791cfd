// wtd_lock_bench: what a durable lock costs in git (docs/design/benchmarks.md),
// beside its anchors measured in the same run on the same directory:
//   LockRefs    Create (owner blob + ref, fsynced) then Delete (CAS, fsynced)
//   flock(2)    LOCK_EX then LOCK_UN on an open file (not durable: the floor)
//   O_EXCL file create O_EXCL, write the owner JSON, fsync file and directory,
//               then unlink and fsync the directory (a durable lock file)
//   git CLI     `git update-ref REF BLOB 0{40}` then `git update-ref -d REF BLOB`
//               (spawned; not fsynced by default)
//   floor       write(100 bytes) + fsync on an O_APPEND file: one fsync
// One of each per round, interleaved, so that all see the same disk.
// Not a test: it prints figures and checks nothing beyond errors.
//
//   wtd_lock_bench [--dir BASE] [--n N] [--quick]
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_header.h"
#include "locks/lock_owner.h"
#include "locks/lock_refs.h"

extern char** environ;

namespace wtd {
namespace {

using Micros = std::vector<double>;

double NowUs() {
  using namespace std::chrono;
  return static_cast<double>(
             duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count()) /
         1000.0;
}

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "wtd_lock_bench: %s\n", what.c_str());
  exit(1);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

double Percentile(Micros v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Runs argv (searched in PATH) with stdout/stderr to /dev/null; dies unless
// it exits 0.
void Run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) Die("spawn " + args[0] + ": " + strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) Die("waitpid");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const std::string& a : args) cmd += a + " ";
    Die("failed: " + cmd);
  }
}

std::string ReadLine(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) Die("popen " + cmd);
  char buf[256] = {0};
  if (fgets(buf, sizeof buf, p) == nullptr) buf[0] = 0;
  pclose(p);
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void FsyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) Die("fsync " + path);
  close(fd);
}

// One durable lock-file round trip: O_EXCL create + JSON + fsync file and
// directory, then unlink + fsync directory.
void ExclRoundTrip(const std::string& dir, const std::string& json) {
  std::string path = dir + "/build.lock";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) Die("O_EXCL create " + path);
  if (write(fd, json.data(), json.size()) != static_cast<ssize_t>(json.size()) || fsync(fd) != 0) {
    Die("write/fsync " + path);
  }
  close(fd);
  FsyncPath(dir);
  if (unlink(path.c_str()) != 0) Die("unlink " + path);
  FsyncPath(dir);
}

void PrintRow(const char* name, const Micros& v) {
  printf("  %-48s p50 %9.1f us  p99 %9.1f us\n", name, Percentile(v, 0.5), Percentile(v, 0.99));
}

void PrintHeader(const std::string& dir, size_t n) {
  PrintBenchHeader("wtd_lock_bench", dir);
  printf("rounds:  %zu (one of each kind per round, interleaved)\n\n", n);
}

void Bench(const std::string& base, size_t n) {
  std::string repo = base + "/repo";
  Run({"git", "init", "-q", repo});
  Run({"git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit",
       "-q", "--allow-empty", "-m", "bench"});
  std::string sha = ReadLine("git -C '" + repo + "' rev-parse HEAD");
  std::string lockdir = base + "/lockdir";
  std::filesystem::create_directories(lockdir);

  Result<std::unique_ptr<locks::LockRefs>> opened = locks::LockRefs::Open(repo);
  Check(opened.status(), "open repository");
  locks::LockRefs& refs = **opened;
  locks::LockName name{"main", "build", sha};
  locks::LockOwner owner;
  owner.host = "bench";
  owner.boot_id = "boot";
  owner.pid = getpid();
  owner.pid_start_time = 1;
  owner.incarnation = 1;
  owner.acquired_at_ms = 1'700'000'000'000;
  owner.expires_at_ms = 1'700'000'060'000;
  std::string json = locks::EncodeOwner(owner);

  int flock_fd = open((lockdir + "/flock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (flock_fd < 0) Die("open flock file");
  std::string cli_ref = "refs/wtd/bench/main/build/" + sha;
  std::string zero(40, '0');

  int append_fd =
      open((lockdir + "/append").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (append_fd < 0) Die("open append file");
  std::string hundred(100, 'x');

  Micros lockrefs, create_only, flock_us, excl, cli, floor;
  for (size_t i = 0; i <= n; ++i) {  // round 0 warms up (directories, caches)
    owner.token = i + 1;
    owner.run_id = i + 1;
    double t0 = NowUs();
    Result<std::string> blob = refs.Create(name, owner);
    Check(blob.status(), "LockRefs::Create");
    double t1 = NowUs();
    Check(refs.Delete(name, *blob), "LockRefs::Delete");
    double t2 = NowUs();

    double t3 = NowUs();
    if (flock(flock_fd, LOCK_EX) != 0 || flock(flock_fd, LOCK_UN) != 0) Die("flock");
    double t4 = NowUs();

    ExclRoundTrip(lockdir, json);
    double t5 = NowUs();

    Run({"git", "-C", repo, "update-ref", cli_ref, *blob, zero});
    Run({"git", "-C", repo, "update-ref", "-d", cli_ref, *blob});
    double t6 = NowUs();

    if (write(append_fd, hundred.data(), hundred.size()) != 100 || fsync(append_fd) != 0) {
      Die("append + fsync");
    }
    double t7 = NowUs();
    if (i == 0) continue;
    floor.push_back(t7 - t6);
    lockrefs.push_back(t2 - t0);
    create_only.push_back(t1 - t0);
    flock_us.push_back(t4 - t3);
    excl.push_back(t5 - t4);
    cli.push_back(t6 - t5);
  }
  close(flock_fd);
  close(append_fd);

  printf("acquire + release round trip (fsyncs per round trip in brackets)\n");
  PrintRow("fsync of a 100 B append (floor) [1]", floor);
  PrintRow("LockRefs Create + Delete (durable) [5]", lockrefs);
  PrintRow("  of which Create [4]", create_only);
  PrintRow("flock(2) LOCK_EX + LOCK_UN (not durable) [0]", flock_us);
  PrintRow("O_EXCL file + JSON + fsyncs, unlink + fsync [3]", excl);
  PrintRow("git update-ref create + delete, 2 spawns [0]", cli);
  printf("\nratios (p50 / p99)\n");
  printf("  LockRefs / O_EXCL file         x%.2f / x%.2f   (aim: <= 1)\n",
         Percentile(lockrefs, 0.5) / Percentile(excl, 0.5),
         Percentile(lockrefs, 0.99) / Percentile(excl, 0.99));
  printf("  git update-ref / LockRefs      x%.2f / x%.2f   (aim: >= 10)\n",
         Percentile(cli, 0.5) / Percentile(lockrefs, 0.5),
         Percentile(cli, 0.99) / Percentile(lockrefs, 0.99));
  double f50 = Percentile(floor, 0.5);
  printf("  LockRefs / (5 x floor)         x%.2f;  O_EXCL file / (3 x floor)  x%.2f\n",
         Percentile(lockrefs, 0.5) / (5 * f50), Percentile(excl, 0.5) / (3 * f50));
  printf("  LockRefs / flock               x%.0f\n",
         Percentile(lockrefs, 0.5) / Percentile(flock_us, 0.5));
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* tmp = getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  size_t n = 300;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      base = argv[++i];
    } else if (a == "--n" && i + 1 < argc) {
      n = static_cast<size_t>(std::max(1L, atol(argv[++i])));
    } else if (a == "--quick") {
      n = 30;
    } else {
      fprintf(stderr, "usage: %s [--dir BASE] [--n N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  std::string tmpl = base + "/wtd-lock-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) wtd::Die("cannot make a directory under " + base);
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  wtd::PrintHeader(tmpl, n);
  wtd::Bench(tmpl, n);
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return 0;
}
