// wtd_slot_bench: what moving a worktree slot to the next commit costs
// (docs/design/benchmarks.md), beside its anchors measured in the same run
// on the same directory. A repository of F files (100 per directory) and a
// chain of N commits, each changing C files, is built with `git fast-import`
// (not timed). Then, for every step i -> i+1, one of each, interleaved:
//   slot move      CheckoutDetached(slot, sha[i+1]) on a worktree made once
//                  with AddDetachedWorktree and at sha[i] (what a reused slot
//                  costs the daemon)
//   git checkout   `git checkout -q --detach sha[i+1]` (spawned) in a worktree
//                  made once with `git worktree add --detach` and at sha[i]
//   git wt add     `git worktree add --detach NEW sha[i+1]` (a fresh worktree,
//                  removed again outside the timing)
//   libgit2 add    AddDetachedWorktree(NEW, sha[i+1]) (for information: what
//                  a slot's creation costs; removed outside the timing)
// Not a test: it prints figures and checks nothing beyond errors and that
// both long-lived worktrees end clean at the last commit.
//
//   wtd_slot_bench [--files F] [--changed C] [--commits N] [--dir BASE]
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench_header.h"
#include "git/worktree_ops.h"

extern char** environ;

namespace wtd {
namespace {

using Millis = std::vector<double>;

// The run's directory, removed on every exit.
std::string g_work;  // NOLINT(runtime/string): set once in main

double NowMs() {
  using namespace std::chrono;
  return static_cast<double>(
             duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count()) /
         1e6;
}

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "wtd_slot_bench: %s\n", what.c_str());
  if (!g_work.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_work, ec);
  }
  exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

double Percentile(Millis v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string Joined(const std::vector<std::string>& args) {
  std::string cmd;
  for (const std::string& a : args) cmd += (cmd.empty() ? "" : " ") + a;
  return cmd;
}

// Runs argv (searched in PATH) with stdin from `in` ("" for /dev/null) and
// stdout to `out` ("" for /dev/null), stderr to /dev/null; dies unless it
// exits 0.
void Run(const std::vector<std::string>& args, const std::string& in = "",
         const std::string& out = "") {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.empty() ? "/dev/null" : in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.empty() ? "/dev/null" : out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc == ENOENT) Die(args[0] + " not found in PATH");
  if (rc != 0) Die("spawn " + args[0] + ": " + strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) Die("waitpid " + args[0]);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("failed: " + Joined(args));
}

// The lines `args` prints on stdout.
std::vector<std::string> RunLines(const std::vector<std::string>& args) {
  std::string out = g_work + "/out.txt";
  Run(args, "", out);
  std::ifstream f(out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

struct Options {
  int files = 10000;
  int changed = 20;
  int commits = 30;
};

std::string FilePath(int i) {
  char buf[48];
  snprintf(buf, sizeof buf, "d%03d/f%03d.txt", i / 100, i % 100);
  return buf;
}

// A few hundred bytes, different for every file and version.
std::string Content(int file, int version) {
  std::string s = "file " + std::to_string(file) + " version " + std::to_string(version) + "\n";
  size_t size = 200 + static_cast<size_t>((file * 37 + version * 11) % 200);
  while (s.size() < size) s += "the quick brown fox jumps over the lazy dog\n";
  s.resize(size);
  return s;
}

void Blob(std::ofstream& f, const std::string& path, const std::string& data) {
  f << "M 100644 inline " << path << "\ndata " << data.size() << "\n" << data << "\n";
}

void CommitHeader(std::ofstream& f, int n) {
  std::string msg = "commit " + std::to_string(n) + "\n";
  f << "commit refs/heads/main\ncommitter bench <bench@example.com> " << 1'700'000'000 + n
    << " +0000\ndata " << msg.size() << "\n"
    << msg;
}

// The fast-import stream: one commit with every file, then `commits`
// commits changing `changed` distinct files each (a fixed pseudo-random
// choice).
void WriteStream(const std::string& path, const Options& o) {
  std::ofstream f(path, std::ios::binary);
  CommitHeader(f, 0);
  for (int i = 0; i < o.files; ++i) Blob(f, FilePath(i), Content(i, 0));
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, o.files - 1);
  for (int c = 1; c <= o.commits; ++c) {
    CommitHeader(f, c);
    std::set<int> chosen;
    while (static_cast<int>(chosen.size()) < o.changed) chosen.insert(pick(rng));
    for (int i : chosen) Blob(f, FilePath(i), Content(i, c));
  }
  f.close();
  if (!f) Die("write " + path);
}

// The repository at <work>/repo; returns the chain's shas, oldest first.
std::vector<std::string> MakeRepo(const std::string& repo, const Options& o) {
  Run({"git", "init", "-q", "-b", "main", repo});
  std::string stream = g_work + "/stream.fi";
  WriteStream(stream, o);
  Run({"git", "-C", repo, "fast-import", "--quiet"}, stream);
  std::filesystem::remove(stream);
  std::vector<std::string> shas = RunLines({"git", "-C", repo, "rev-list", "--reverse", "main"});
  if (shas.size() != static_cast<size_t>(o.commits) + 1) {
    Die("expected " + std::to_string(o.commits + 1) + " commits in " + repo + ", found " +
        std::to_string(shas.size()));
  }
  return shas;
}

// Both long-lived worktrees must end at `sha` with nothing changed.
void CheckClean(const std::string& path, const std::string& sha) {
  Result<std::string> head = ResolveCommit(path, "HEAD");
  Check(head.status(), "HEAD of " + path);
  if (*head != sha) Die(path + " is at " + *head + ", not " + sha);
  std::vector<std::string> dirty =
      RunLines({"git", "-C", path, "status", "--porcelain", "--untracked-files=all"});
  if (!dirty.empty()) Die(path + " is not clean: " + dirty.front());
}

void RemoveWorktree(const std::string& repo, const std::string& path) {
  Run({"git", "-C", repo, "worktree", "remove", "--force", path});
}

void PrintHeader(const std::string& dir, const Options& o) {
  PrintBenchHeader("wtd_slot_bench", dir);
  printf("repo:    %d files in %d directories, %d commits changing %d files each\n\n", o.files,
         (o.files + 99) / 100, o.commits, o.changed);
}

void PrintRow(const char* name, const Millis& v) {
  printf("  %-44s %9.2f ms %9.2f ms\n", name, Percentile(v, 0.5), Percentile(v, 0.9));
}

void PrintRatio(const char* name, double ratio, bool met, const char* aim) {
  printf("  %-32s x%-8.2f (aim: %s)  %s\n", name, ratio, aim, met ? "aim met" : "aim missed");
}

// Two moves per worktree (to the last commit and back), untimed, so that
// objects and the work tree are in the page cache; then a pause, so the
// files they wrote are older than the index the next move reads.
void WarmUp(const std::string& slot, const std::string& cli, const std::vector<std::string>& sha) {
  for (const std::string& s : {sha.back(), sha.front()}) {
    Check(CheckoutDetached(slot, s), "warm-up move of " + slot);
    Run({"git", "-C", cli, "checkout", "-q", "--detach", s});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
}

void Bench(const Options& o) {
  std::string repo = g_work + "/repo";
  std::vector<std::string> sha = MakeRepo(repo, o);
  std::string slot = g_work + "/slot";
  std::string cli = g_work + "/cli";
  Check(AddDetachedWorktree(repo, "slot", slot, "wtd-bench-slot", sha[0]),
        "AddDetachedWorktree " + slot);
  Run({"git", "-C", repo, "worktree", "add", "-q", "--detach", cli, sha[0]});
  WarmUp(slot, cli, sha);

  Millis move, checkout, cli_add, lg_add;
  for (size_t i = 0; i + 1 < sha.size(); ++i) {
    const std::string& next = sha[i + 1];
    std::string fresh_cli = g_work + "/fresh-cli-" + std::to_string(i);
    std::string fresh_lg = g_work + "/fresh-lg-" + std::to_string(i);
    std::string name = "fresh-lg-" + std::to_string(i);

    double t0 = NowMs();
    Check(CheckoutDetached(slot, next), "CheckoutDetached " + slot + " " + next);
    double t1 = NowMs();
    Run({"git", "-C", cli, "checkout", "-q", "--detach", next});
    double t2 = NowMs();
    Run({"git", "-C", repo, "worktree", "add", "-q", "--detach", fresh_cli, next});
    double t3 = NowMs();
    Check(AddDetachedWorktree(repo, name, fresh_lg, "wtd-bench-" + name, next),
          "AddDetachedWorktree " + fresh_lg);
    double t4 = NowMs();
    RemoveWorktree(repo, fresh_cli);
    RemoveWorktree(repo, fresh_lg);

    move.push_back(t1 - t0);
    checkout.push_back(t2 - t1);
    cli_add.push_back(t3 - t2);
    lg_add.push_back(t4 - t3);
  }
  CheckClean(slot, sha.back());
  CheckClean(cli, sha.back());

  printf("moving a worktree one commit (%zu steps, one of each per step, interleaved)\n",
         move.size());
  printf("  %-44s %12s %12s\n", "", "median", "p90");
  PrintRow("slot move: CheckoutDetached (libgit2)", move);
  PrintRow("git checkout -q --detach (spawned)", checkout);
  PrintRow("git worktree add --detach, fresh (spawned)", cli_add);
  PrintRow("AddDetachedWorktree, fresh (libgit2)", lg_add);

  double m = Percentile(move, 0.5);
  double by_checkout = m / Percentile(checkout, 0.5);
  double by_add = Percentile(cli_add, 0.5) / m;
  printf("\nratios (medians)\n");
  PrintRatio("slot move / git checkout", by_checkout, by_checkout <= 1.0, "<= 1");
  PrintRatio("git worktree add / slot move", by_add, by_add >= 10.0, ">= 10");
  printf("  %-32s x%.2f\n", "AddDetachedWorktree / slot move", Percentile(lg_add, 0.5) / m);
}

bool ParseInt(const char* s, int min, int* out) {
  char* end = nullptr;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > 10'000'000) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* tmp = getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  wtd::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool ok = i + 1 < argc;
    if (ok && a == "--dir") {
      base = argv[++i];
    } else if (ok && a == "--files") {
      ok = wtd::ParseInt(argv[++i], 1, &o.files);
    } else if (ok && a == "--changed") {
      ok = wtd::ParseInt(argv[++i], 1, &o.changed);
    } else if (ok && a == "--commits") {
      ok = wtd::ParseInt(argv[++i], 1, &o.commits);
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr,
              "usage: %s [--files F] [--changed C] [--commits N] [--dir BASE]\n"
              "  defaults: 10000 files, 20 changed per commit, 30 commits, BASE $TMPDIR or /tmp\n"
              "  (tmpfs and a disk give different figures: fresh worktrees write every file)\n",
              argv[0]);
      return 2;
    }
  }
  if (o.changed > o.files) {
    fprintf(stderr, "wtd_slot_bench: --changed %d is more than --files %d\n", o.changed, o.files);
    return 2;
  }
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  std::string tmpl = base + "/wtd-slot-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    wtd::Die("cannot make a directory under " + base + ": " + strerror(errno));
  }
  wtd::g_work = tmpl;
  wtd::Run({"git", "--version"});
  wtd::PrintHeader(tmpl, o);
  wtd::Bench(o);
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return 0;
}
