// HandleRequestLine: the protocol's dispatch, apart from the socket so that
// tests and the fuzzer drive it with bytes.
#include <exception>

#include "server/server.h"

namespace wtd {

std::string HandleRequestLine(const std::vector<CommandSpec>& commands, std::string_view line) {
  Result<Request> req = DecodeRequest(line);
  if (!req.ok()) return EncodeError(req.status());
  for (const CommandSpec& c : commands) {
    if (c.name != req->command) continue;
    try {
      Result<nlohmann::json> r = c.handler(req->args);
      return r.ok() ? EncodeResult(*r) : EncodeError(r.status());
    } catch (const std::exception& e) {
      return EncodeError(Status::Aborted("command " + c.name + " failed: " + e.what()));
    }
  }
  std::string names;
  for (const CommandSpec& c : commands) names += (names.empty() ? "" : ", ") + c.name;
  return EncodeError(
      Status::NotFound("unknown command '" + req->command + "' (commands: " + names + ")"));
}

}  // namespace wtd
