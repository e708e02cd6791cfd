#include "wtd/protocol.h"

#include <algorithm>
#include <optional>

namespace wtd {
namespace {

using json = nlohmann::json;

Status MakeStatus(Status::Code code, std::string msg) {
  switch (code) {
    case Status::Code::kOk:
      break;
    case Status::Code::kNotFound:
      return Status::NotFound(std::move(msg));
    case Status::Code::kCorruption:
      return Status::Corruption(std::move(msg));
    case Status::Code::kIOError:
      return Status::IOError(std::move(msg));
    case Status::Code::kInvalidArgument:
      return Status::InvalidArgument(std::move(msg));
    case Status::Code::kBusy:
      return Status::Busy(std::move(msg));
    case Status::Code::kAborted:
      return Status::Aborted(std::move(msg));
    case Status::Code::kFailedPrecondition:
      return Status::FailedPrecondition(std::move(msg));
    case Status::Code::kNotSupported:
      return Status::NotSupported(std::move(msg));
  }
  return Status::Corruption("response error with code OK: " + msg);
}

// Parses without exceptions; a discarded value means the text is not JSON.
std::optional<json> Parse(std::string_view line) {
  json v = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return std::nullopt;
  return v;
}

// How deeply `line` nests arrays and objects, strings skipped. Checked before
// parsing: printing or comparing a value is recursive, and a request nested
// 100,000 levels deep must not overflow the server thread's stack.
int NestingDepth(std::string_view line) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

std::string Line(const json& v) {
  // Invalid UTF-8 in a string (a path, a commit subject) is replaced rather
  // than thrown about: a response must always go out.
  return v.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string EncodeRequest(std::string_view command, const json& args) {
  return Line({{"version", kProtocolVersion},
               {"command", std::string(command)},
               {"args", args.is_null() ? json::object() : args}});
}

Result<Request> DecodeRequest(std::string_view line) {
  if (NestingDepth(line) > kMaxRequestDepth) {
    return Status::InvalidArgument("request nests deeper than " + std::to_string(kMaxRequestDepth) +
                                   " levels");
  }
  std::optional<json> v = Parse(line);
  if (!v) return Status::InvalidArgument("request is not valid JSON");
  if (!v->is_object()) return Status::InvalidArgument("request is not a JSON object");
  auto version = v->find("version");
  if (version == v->end() || !version->is_number_integer()) {
    return Status::InvalidArgument("request.version: expected the integer " +
                                   std::to_string(kProtocolVersion));
  }
  if (version->get<int64_t>() != kProtocolVersion) {
    return Status::InvalidArgument("request.version: " + version->dump() +
                                   " is not supported; this daemon speaks version " +
                                   std::to_string(kProtocolVersion));
  }
  auto command = v->find("command");
  if (command == v->end() || !command->is_string() || command->get<std::string>().empty()) {
    return Status::InvalidArgument("request.command: expected a command name");
  }
  Request r;
  r.command = command->get<std::string>();
  auto args = v->find("args");
  if (args != v->end() && !args->is_null()) {
    if (!args->is_object()) return Status::InvalidArgument("request.args: expected an object");
    r.args = *args;
  }
  return r;
}

std::string EncodeResult(const json& result) {
  return Line({{"version", kProtocolVersion}, {"ok", true}, {"result", result}});
}

std::string EncodeError(const Status& error) {
  return Line(
      {{"version", kProtocolVersion},
       {"ok", false},
       {"error", {{"code", std::string(CodeName(error.code()))}, {"message", error.message()}}}});
}

Result<json> DecodeResponse(std::string_view line) {
  std::optional<json> v = Parse(line);
  if (!v || !v->is_object()) return Status::Corruption("response is not a JSON object");
  auto ok = v->find("ok");
  if (ok == v->end() || !ok->is_boolean()) {
    return Status::Corruption("response.ok: expected a boolean");
  }
  if (ok->get<bool>()) {
    auto result = v->find("result");
    return result == v->end() ? json(nullptr) : *result;
  }
  auto error = v->find("error");
  if (error == v->end() || !error->is_object()) {
    return Status::Corruption("response.error: expected an object");
  }
  auto text = [&](const char* key, const char* fallback) {
    auto it = error->find(key);
    return it != error->end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
  };
  std::string code = text("code", "");
  std::string message = text("message", "(no message)");
  std::optional<Status::Code> c = CodeFromName(code);
  if (!c || *c == Status::Code::kOk) {
    return Status::Corruption("response.error.code: unknown code '" + code + "': " + message);
  }
  return MakeStatus(*c, std::move(message));
}

std::optional<Status::Code> CodeFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Status::Code::kNotSupported); ++i) {
    auto code = static_cast<Status::Code>(i);
    if (CodeName(code) == name) return code;
  }
  return std::nullopt;
}

}  // namespace wtd
