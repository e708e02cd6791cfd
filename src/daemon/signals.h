// SignalWatcher: how the daemon takes SIGTERM, SIGINT and SIGHUP. The signals
// are blocked in every thread and read from a signalfd by one thread that
// sleeps in ppoll(2) with no timeout, so an idle daemon has no wake-up of its
// own here; only a systemd watchdog, when one is asked for, adds a periodic
// one. Stop() wakes that thread at once through an eventfd, so a stop does not
// wait for a tick.
//
// Thread-safety: Create before any other thread starts; Run on one thread;
// Stop from any thread.
#ifndef WTD_DAEMON_SIGNALS_H_
#define WTD_DAEMON_SIGNALS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "wtd/status.h"

namespace wtd {

class SignalWatcher {
 public:
  // Blocks `signals` in the calling thread (every thread started after it
  // inherits the mask, so the signals are only ever read here) and opens the
  // signalfd and the stop eventfd.
  static Result<std::unique_ptr<SignalWatcher>> Create(const std::vector<int>& signals);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // Until Stop(): calls on_signal(signo) for each signal read. With
  // tick_ms > 0 it also calls on_tick() at least every tick_ms; with
  // tick_ms <= 0 it sleeps until a signal or Stop(), however long. Names the
  // calling thread "wtd-signals".
  void Run(const std::function<void(int)>& on_signal, int64_t tick_ms,
           const std::function<void()>& on_tick);
  // Makes Run return now (or at once, if it has not started yet).
  void Stop();

 private:
  SignalWatcher(int signal_fd, int stop_fd) : signal_fd_(signal_fd), stop_fd_(stop_fd) {}
  int signal_fd_;
  int stop_fd_;
};

// How often the signal thread must wake for a systemd watchdog of
// `watchdog_usec` (0: none): half of it, at least 1 ms; -1 (never) for none.
int64_t WatchdogTickMs(uint64_t watchdog_usec);

}  // namespace wtd

#endif  // WTD_DAEMON_SIGNALS_H_
