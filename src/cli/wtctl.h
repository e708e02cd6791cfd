// wtctl: the operator CLI. Talks to the daemon over its unix socket; `runs`
// and `logs` fall back to reading the state store directly (read-only) when
// no daemon answers, and say so on stderr.
//
// Exit codes: 0 success, 1 error, 2 usage error, 3 no daemon answered (for
// commands that need one).
#ifndef WTD_CLI_WTCTL_H_
#define WTD_CLI_WTCTL_H_

namespace wtd {

int WtctlMain(int argc, char** argv);

}  // namespace wtd

#endif  // WTD_CLI_WTCTL_H_
