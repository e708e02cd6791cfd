// wtd_bench_shim: two small programs for wtd_supervisor_bench, libc only.
//
//   wtd_bench_shim -- PROGRAM [ARG...]
//     The exec shim wtd started for every job before the run supervisor: it
//     waits for one byte on fd 3 (the handshake pipe), closes fd 3 and execs
//     PROGRAM. EOF first: exit 125, nothing runs. The benchmark's anchor
//     "pre-supervisor shim" spawns the job through it, as the daemon did.
//
//   wtd_bench_shim --stamp FILE
//     Writes CLOCK_MONOTONIC in nanoseconds (one line) to FILE: the job's
//     first instruction, comparable with the benchmark's own steady clock.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--stamp") == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[32];
    int n = snprintf(line, sizeof line, "%lld\n",
                     static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec);
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, line, static_cast<size_t>(n)) != n) return 1;
    return close(fd) == 0 ? 0 : 1;
  }
  if (argc < 3 || strcmp(argv[1], "--") != 0) {
    fprintf(stderr, "usage: wtd_bench_shim -- PROGRAM [ARG...] | --stamp FILE\n");
    return 125;
  }
  char byte = 0;
  ssize_t n;
  do {
    n = read(3, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return 125;
  close(3);
  execv(argv[2], argv + 2);
  fprintf(stderr, "wtd_bench_shim: exec %s: %s\n", argv[2], strerror(errno));
  return 127;
}
