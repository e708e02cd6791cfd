// Service: how wtd tells its supervisor about its life. Under systemd
// (Type=notify) it sends READY/STATUS/RELOADING/STOPPING/WATCHDOG through
// sd_notify when built with libsystemd; with --daemonize it detaches (setsid,
// double fork, stdio to the log file) and the launching process waits until
// the daemon is ready or failed, and exits 0 or 1 accordingly, so a script
// can trust `wtd --daemonize` returning 0.
//
// Thread-safety: Notify and Watchdog may be called from any thread.
#ifndef WTD_DAEMON_SERVICE_H_
#define WTD_DAEMON_SERVICE_H_

#include <cstdint>
#include <string>

#include "wtd/status.h"

namespace wtd {

class Service {
 public:
  Service() = default;
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Detaches. Returns only in the daemon (the grandchild); the launching
  // process exits with the daemon's start-up outcome.
  Status Daemonize(const std::string& log_path);
  // Start-up finished: tells systemd and a waiting launcher.
  void Ready();
  // Start-up failed with `why`: tells a waiting launcher (it prints why).
  void StartFailed(const std::string& why);

  static void Notify(const std::string& state);
  // Sends WATCHDOG=1 when systemd asked for a watchdog.
  static void Watchdog();
  // The watchdog interval systemd asked for, in microseconds; 0 for none.
  static uint64_t WatchdogUsec();

 private:
  int ready_fd_ = -1;  // write end of the launcher's pipe; -1 when none
};

}  // namespace wtd

#endif  // WTD_DAEMON_SERVICE_H_
