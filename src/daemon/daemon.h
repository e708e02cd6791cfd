// The wtd daemon's main: parse the configuration, take the PID file, open
// the store, run recovery, then serve the control socket and run the
// scheduler loop until SIGTERM/SIGINT or `wtctl stop`.
//
// Start-up order (each step only after the previous one succeeded):
//   config -> [daemonize] -> logging -> PID file (flock) -> [metrics
//   endpoint bound] -> store open (incarnation bumped) -> recovery pass ->
//   control socket -> READY -> loop.
// Shutdown: stop taking runs, let running jobs finish for the grace period,
// record the rest as interrupted, close the socket, mark the store cleanly
// shut down, remove the PID file, exit 0.
#ifndef WTD_DAEMON_DAEMON_H_
#define WTD_DAEMON_DAEMON_H_

namespace wtd {

// Returns the process exit code: 0 after a clean stop, 1 on a start-up
// failure, 2 on a usage error.
int DaemonMain(int argc, char** argv);

}  // namespace wtd

#endif  // WTD_DAEMON_DAEMON_H_
