// A blocking client of the daemon's control socket (wtd/protocol.h): what
// wtctl, tests and benchmarks use to talk to a running wtd.
//
// Thread-safety: a Client is used by one thread at a time.
#ifndef WTD_CLIENT_H_
#define WTD_CLIENT_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "wtd/status.h"

namespace wtd {

class Client {
 public:
  // Connects to the socket at `socket_path` within `timeout_ms`. IOError when
  // nothing answers there (no file, connection refused, timeout).
  static Result<std::unique_ptr<Client>> Connect(const std::string& socket_path, int timeout_ms);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one request and waits up to `timeout_ms` for its response. The
  // daemon's error comes back as a Status of the same code; IOError when the
  // connection fails, Corruption when the response is malformed.
  Result<nlohmann::json> Call(const std::string& command, const nlohmann::json& args,
                              int timeout_ms);

 private:
  Client(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status WriteAll(const std::string& data, int timeout_ms);
  Result<std::string> ReadLine(int timeout_ms);

  int fd_;
  std::string path_;
  std::string pending_;  // bytes read past the last line
};

}  // namespace wtd

#endif  // WTD_CLIENT_H_
