// The control socket: a unix stream socket serving the JSON-lines protocol of
// wtd/protocol.h with an explicit command table (docs/design/wtctl.md).
//
// One Boost.Asio thread serves every connection with asynchronous I/O, so a
// slow or silent client cannot stall the others, and the daemon's loop never
// waits on a client. Handlers run on two worker threads, so a slow request
// (a long listing) does not stall the socket either. Before anything is read
// from a connection its peer uid (SO_PEERCRED) must be the server's own
// effective uid or root.
//
// Thread-safety: Start and Stop from one thread. Handlers run on the worker
// threads, up to two at once (one per connection at a time); they must be
// thread-safe. Stop waits for a running handler to return.
#ifndef WTD_SERVER_SERVER_H_
#define WTD_SERVER_SERVER_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "wtd/protocol.h"
#include "wtd/status.h"

namespace wtd {

// One entry of the command table: a typed handler from the request's args to
// its result. A handler reports failure with a Status; the server sends it as
// the response's error.
struct CommandSpec {
  std::string name;
  std::string summary;
  std::function<Result<nlohmann::json>(const nlohmann::json& args)> handler;
};

// The response line (with its newline) to one request line (without it):
// decodes, finds the command, runs its handler. An unknown command is
// NotFound; an exception thrown by a handler becomes Aborted. Never throws.
std::string HandleRequestLine(const std::vector<CommandSpec>& commands, std::string_view line);

struct ServerOptions {
  size_t max_request_bytes = kMaxRequestBytes;
  // A connection with no complete request for this long is closed.
  int idle_timeout_ms = 10000;
  // Connections beyond this get an error line and are closed.
  int max_connections = 64;
  // The peer uid served; default: the server's effective uid.
  uid_t allowed_uid = static_cast<uid_t>(-1);
  // Whether root is served too.
  bool allow_root = true;
};

class Server {
 public:
  // Binds `socket_path` (mode 0600) and starts serving `commands`. A stale
  // socket file (nothing accepts on it) is replaced; a live one is Busy; a
  // path too long for sockaddr_un is InvalidArgument.
  static Result<std::unique_ptr<Server>> Start(const std::string& socket_path,
                                               std::vector<CommandSpec> commands,
                                               ServerOptions options = {});
  // Stops serving, closes every connection and removes the socket file.
  // Idempotent; the destructor calls it.
  void Stop();
  ~Server();

  const std::string& socket_path() const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wtd

#endif  // WTD_SERVER_SERVER_H_
