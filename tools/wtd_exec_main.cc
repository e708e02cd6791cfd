// wtd-exec: the exec shim between the daemon and a job (see src/exec).
//
//   wtd-exec [--umask=OCTAL] -- PROGRAM [ARG...]
//
// The daemon starts it with fd 3 = the read end of a handshake pipe. It waits
// for one byte on fd 3, closes fd 3 and execs PROGRAM with ARGs (the
// environment, cwd, process group and signal state are the ones it was
// spawned with). With --umask it sets that umask first: the daemon runs with
// umask 077 to keep its own files private, and hands the job the umask it was
// started with. It never runs PROGRAM unless that byte arrives:
//   - EOF or a read error on fd 3 (the daemon died or aborted): exit 125;
//   - usage error, or fd 3 missing or not a pipe: message on stderr, exit 125;
//   - exec failure: "wtd-exec: exec PROGRAM: <reason>" on stderr, exit 127.
// Only libc is used; no signal disposition is changed.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

constexpr int kHandshakeFd = 3;
constexpr int kNotRun = 125;
constexpr int kExecFailed = 127;
constexpr char kUmaskOption[] = "--umask=";

// Parses the digits of --umask=OCTAL; -1 unless they are 1 to 4 octal digits
// of at most 0777.
int ParseUmask(const char* digits) {
  size_t n = strlen(digits);
  if (n == 0 || n > 4 || strspn(digits, "01234567") != n) return -1;
  long mask = strtol(digits, nullptr, 8);
  return mask <= 0777 ? static_cast<int>(mask) : -1;
}

int Usage() {
  fprintf(stderr,
          "usage: wtd-exec [--umask=OCTAL] -- PROGRAM [ARG...] (started by wtd with fd 3 open)\n");
  return kNotRun;
}

}  // namespace

int main(int argc, char** argv) {
  int first = 1;  // index of "--"
  int mask = -1;
  if (argc > 1 && strncmp(argv[1], kUmaskOption, strlen(kUmaskOption)) == 0) {
    mask = ParseUmask(argv[1] + strlen(kUmaskOption));
    if (mask < 0) return Usage();
    first = 2;
  }
  if (argc < first + 2 || strcmp(argv[first], "--") != 0) return Usage();
  char** program = argv + first + 1;
  struct stat st;
  if (fstat(kHandshakeFd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    fprintf(stderr, "wtd-exec: fd %d is not the handshake pipe; not running %s\n", kHandshakeFd,
            program[0]);
    return kNotRun;
  }
  char byte = 0;
  ssize_t n;
  do {
    n = read(kHandshakeFd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return kNotRun;  // not released: the daemon died or aborted the job
  close(kHandshakeFd);
  if (mask >= 0) umask(static_cast<mode_t>(mask));
  execv(program[0], program);
  fprintf(stderr, "wtd-exec: exec %s: %s\n", program[0], strerror(errno));
  return kExecFailed;
}
