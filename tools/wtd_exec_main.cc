// wtd-exec: the exec shim between the daemon and a job (see src/exec).
//
//   wtd-exec -- PROGRAM [ARG...]
//
// The daemon starts it with fd 3 = the read end of a handshake pipe. It waits
// for one byte on fd 3, closes fd 3 and execs PROGRAM with ARGs (the
// environment, cwd, process group and signal state are the ones it was
// spawned with). It never runs PROGRAM unless that byte arrives:
//   - EOF or a read error on fd 3 (the daemon died or aborted): exit 125;
//   - usage error, or fd 3 missing or not a pipe: message on stderr, exit 125;
//   - exec failure: "wtd-exec: exec PROGRAM: <reason>" on stderr, exit 127.
// Only libc is used; no signal disposition is changed.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

constexpr int kHandshakeFd = 3;
constexpr int kNotRun = 125;
constexpr int kExecFailed = 127;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || strcmp(argv[1], "--") != 0) {
    fprintf(stderr, "usage: wtd-exec -- PROGRAM [ARG...] (started by wtd with fd 3 open)\n");
    return kNotRun;
  }
  struct stat st;
  if (fstat(kHandshakeFd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    fprintf(stderr, "wtd-exec: fd %d is not the handshake pipe; not running %s\n", kHandshakeFd,
            argv[2]);
    return kNotRun;
  }
  char byte = 0;
  ssize_t n;
  do {
    n = read(kHandshakeFd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return kNotRun;  // not released: the daemon died or aborted the job
  close(kHandshakeFd);
  execv(argv[2], argv + 2);
  fprintf(stderr, "wtd-exec: exec %s: %s\n", argv[2], strerror(errno));
  return kExecFailed;
}
