#include "daemon/state_dir.h"

#include <errno.h>
#include <sys/stat.h>

#include <cstdio>

#include "base/file_util.h"

namespace wtd {
namespace {

std::string Octal(mode_t mode) {
  char buf[16];
  snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode) & 07777u);
  return buf;
}

}  // namespace

const std::vector<std::string>& StateDirParts() {
  static const std::vector<std::string> parts = {"", "logs", "logs/runs", "runs", "db"};
  return parts;
}

Status CheckStateDir(const std::string& dir, uid_t owner, std::vector<std::string>* tightened) {
  for (const std::string& part : StateDirParts()) {
    std::string path = part.empty() ? dir : JoinPath(dir, part);
    std::string what = part.empty() ? "state dir " + path : path + " (in the state dir)";
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT && !part.empty()) continue;  // made 0700 when first needed
      return Status::FromErrno("stat " + what, errno);
    }
    if (!S_ISDIR(st.st_mode)) return Status::FailedPrecondition(what + " is not a directory");
    if (st.st_uid != owner) {
      return Status::FailedPrecondition(what + " is owned by uid " + std::to_string(st.st_uid) +
                                        ", not by uid " + std::to_string(owner) +
                                        " that wtd runs as; refusing to use it");
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      return Status::FailedPrecondition(what + " has mode " + Octal(st.st_mode) +
                                        ", writable by group or others; refusing to use it "
                                        "(chmod 0700 " +
                                        path + ")");
    }
    if ((st.st_mode & 077) != 0) {
      mode_t mode = st.st_mode & 0700;
      if (chmod(path.c_str(), mode) != 0) {
        return Status::FromErrno("chmod " + Octal(mode) + " " + what, errno);
      }
      tightened->push_back(path + " (mode " + Octal(st.st_mode) + ", now " + Octal(mode) + ")");
    }
  }
  return Status::OK();
}

std::string PreviousRunNote(uint64_t incarnation, bool previous_shutdown_clean) {
  if (incarnation <= 1) return " (new state store)";
  return previous_shutdown_clean ? "" : " (previous run did not stop cleanly)";
}

}  // namespace wtd
