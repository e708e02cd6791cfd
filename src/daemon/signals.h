// SignalWatcher: how the daemon takes SIGTERM, SIGINT and SIGHUP. The signals
// are blocked in every thread and read from a signalfd by one thread that
// sleeps in ppoll(2) with no timeout, so an idle daemon has no wake-up of its
// own here. (systemd's watchdog is fed by the scheduler loop, not here: a
// thread that only waits for signals would keep a wedged daemon looking
// alive.) Stop() wakes that thread at once through an eventfd.
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

  // Until Stop(): calls on_signal(signo) for each signal read, and sleeps
  // until a signal or Stop() however long. Names the calling thread
  // "wtd-signals".
  void Run(const std::function<void(int)>& on_signal);
  // Makes Run return now (or at once, if it has not started yet).
  void Stop();

 private:
  SignalWatcher(int signal_fd, int stop_fd) : signal_fd_(signal_fd), stop_fd_(stop_fd) {}
  int signal_fd_;
  int stop_fd_;
};

}  // namespace wtd

#endif  // WTD_DAEMON_SIGNALS_H_
