// The control protocol between wtd and its clients (docs/design/wtctl.md):
// one compact JSON object per line each way, over the daemon's unix socket.
//
//   request:  {"version":1,"command":"runs","args":{...}}
//   response: {"version":1,"ok":true,"result":...}
//             {"version":1,"ok":false,"error":{"code":"NotFound","message":"..."}}
//
// These functions build and parse those lines; they never throw.
// Thread-safety: pure functions.
#ifndef WTD_PROTOCOL_H_
#define WTD_PROTOCOL_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd {

inline constexpr int kProtocolVersion = 1;
// The longest request line a server accepts (the newline excluded).
inline constexpr size_t kMaxRequestBytes = 64 * 1024;
// The deepest nesting of arrays and objects a request may have.
inline constexpr int kMaxRequestDepth = 32;

struct Request {
  std::string command;
  nlohmann::json args = nlohmann::json::object();
};

// The request line for `command` with `args` (an object or null), ending in '\n'.
std::string EncodeRequest(std::string_view command, const nlohmann::json& args);

// Parses one request line (without its newline). InvalidArgument naming what
// is wrong: nested deeper than kMaxRequestDepth, not JSON, not an object,
// another version, a missing command, args that are not an object.
Result<Request> DecodeRequest(std::string_view line);

// A response line, ending in '\n'.
std::string EncodeResult(const nlohmann::json& result);
// REQUIRES: !error.ok()
std::string EncodeError(const Status& error);

// The result of a response line, or its error as a Status of the same code.
// Corruption when the line is not a well-formed response.
Result<nlohmann::json> DecodeResponse(std::string_view line);

// The code whose CodeName() is `name`; nullopt for an unknown name.
std::optional<Status::Code> CodeFromName(std::string_view name);

}  // namespace wtd

#endif  // WTD_PROTOCOL_H_
