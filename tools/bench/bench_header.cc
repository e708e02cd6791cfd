#include "bench_header.h"

#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace wtd {

const char* FsName(long type) {
  switch (static_cast<unsigned long>(type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlayfs";
    case 0x2FC12FC1:
      return "zfs";
    case 0xF2F52010:
      return "f2fs";
    default:
      return "unknown";
  }
}

void PrintBenchHeader(const char* name, const std::string& dir) {
  utsname u{};
  uname(&u);
  struct statfs fs {};
  statfs(dir.c_str(), &fs);
  char date[64];
  time_t now = time(nullptr);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
  printf("%s  %s\n", name, date);
  printf("machine: %s, %ld cpus, kernel %s %s\n", u.nodename, sysconf(_SC_NPROCESSORS_ONLN),
         u.sysname, u.release);
  printf("dir:     %s (%s, f_type 0x%lx)\n", dir.c_str(), FsName(static_cast<long>(fs.f_type)),
         static_cast<unsigned long>(fs.f_type));
}

}  // namespace wtd
