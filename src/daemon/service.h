// Service: how wtd tells its supervisor about its life. Under systemd
// (Type=notify) it sends READY/STATUS/RELOADING/STOPPING/WATCHDOG/
// EXTEND_TIMEOUT_USEC through sd_notify when built with libsystemd; with
// --daemonize it detaches (setsid, double fork, stdio to the log file) and
// the launching process waits until the daemon is ready or failed, and exits
// 0 or 1 accordingly, so a script can trust `wtd --daemonize` returning 0.
//
// What is sent when (docs/design/loop.md, "Start-up" and "The step hook"):
//   start: STATUS + EXTEND_TIMEOUT_USEC before the store opens and before
//     recovery, and again (at most once a second) while recovery acts on
//     runs (StartProgress), so a long recovery that makes progress is not
//     killed by the start timeout, and one that stops making progress is;
//   READY=1 after the loop's first completed step, so after recovery and
//     the first poll (LoopNotifier);
//   WATCHDOG=1 and STATUS (queue depth, last error) from the loop thread
//     after its steps (LoopNotifier): a wedged loop stops the pings and
//     systemd's watchdog restarts the daemon;
//   STOPPING=1 + EXTEND_TIMEOUT_USEC (the stop's own budget) when the loop
//     ends; RELOADING=1 ... READY=1 around a SIGHUP reload.
//
// Thread-safety: Notify and WatchdogUsec may be called from any thread;
// Ready and StartFailed from one thread at a time. StartProgress is used by
// the main thread, LoopNotifier by the loop thread (its ready() by any).
#ifndef WTD_DAEMON_SERVICE_H_
#define WTD_DAEMON_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "base/clock.h"
#include "scheduler/scheduler.h"
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
  // Start-up finished: tells a waiting launcher (systemd is told by
  // LoopNotifier's READY=1).
  void Ready();
  // Start-up failed with `why`: tells systemd and a waiting launcher (it
  // prints why).
  void StartFailed(const std::string& why);

  // Sends `state` (newline-separated VAR=value lines) to $NOTIFY_SOCKET;
  // nothing without systemd.
  static void Notify(const std::string& state);
  // The watchdog interval systemd asked for ($WATCHDOG_USEC, for this pid
  // when $WATCHDOG_PID is set), in microseconds; 0 for none.
  static uint64_t WatchdogUsec();

 private:
  int ready_fd_ = -1;  // write end of the launcher's pipe; -1 when none
};

// Where a notification goes: Service::Notify in the daemon, a recorder in
// tests.
using NotifySink = std::function<void(const std::string& state)>;

// Start-up progress, before the loop: each message also extends systemd's
// start timeout by kBudgetUs from now, so start-up may take as long as it
// needs while it reports progress at least that often.
class StartProgress {
 public:
  static constexpr uint64_t kBudgetUs = 60'000'000;
  StartProgress(Clock* clock, NotifySink sink) : clock_(clock), sink_(std::move(sink)) {}

  // A new phase ("opening the state store"): STATUS and EXTEND_TIMEOUT_USEC
  // with kBudgetUs + `extra_us` (time the phase may spend without progress,
  // e.g. recovery's wait for killed processes).
  void Phase(const std::string& status, uint64_t extra_us = 0);
  // One run handled by recovery: "STATUS=recovering: N run(s) handled" and
  // EXTEND_TIMEOUT_USEC, at most once a second.
  void RunHandled();
  uint64_t runs_handled() const { return runs_handled_; }

 private:
  Clock* clock_;
  NotifySink sink_;
  uint64_t runs_handled_ = 0;
  int64_t last_sent_us_ = -1;
};

// The loop's step hook (Scheduler::SetStepHook) on the daemon's side.
// After the first step: READY=1 and `on_ready` (the --daemonize launcher).
// With a watchdog of W us: WATCHDOG=1 whenever W/4 passed since the last
// one, and a sleep limit that brings the next step at most W/2 after it.
// STATUS= whenever its text changes: "N queued, N running, N waiting to
// retry; last error: ..." (or "no errors"). Once the loop has ended:
// STOPPING=1, EXTEND_TIMEOUT_USEC for the stop's budget plus 10 s, then
// "STATUS=stopping: N running" as jobs finish.
class LoopNotifier {
 public:
  // watchdog_usec: Service::WatchdogUsec() (0: no watchdog).
  LoopNotifier(Clock* clock, uint64_t watchdog_usec, NotifySink sink,
               std::function<void()> on_ready)
      : clock_(clock),
        watchdog_usec_(watchdog_usec),
        sink_(std::move(sink)),
        on_ready_(std::move(on_ready)) {}

  // Scheduler::StepHook: returns the sleep limit in ms (-1 without a watchdog).
  int64_t OnStep(const LoopHeartbeat& beat);
  bool ready() const { return ready_.load(); }

  static std::string StatusText(const LoopHeartbeat& beat);

 private:
  Clock* clock_;
  uint64_t watchdog_usec_;
  NotifySink sink_;
  std::function<void()> on_ready_;
  std::atomic<bool> ready_{false};  // read by the signal thread (reloads)
  bool stopping_sent_ = false;
  int64_t last_ping_us_ = -1;
  std::string last_status_;
};

}  // namespace wtd

#endif  // WTD_DAEMON_SERVICE_H_
