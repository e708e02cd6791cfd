// libFuzzer target: control-socket request lines. The input is one request
// line as a client could send it. HandleRequestLine must answer every input
// with exactly one well-formed response line (never throw, never crash), and
// a request that decodes must re-encode to a line that decodes the same.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "server/server.h"
#include "wtd/protocol.h"

namespace wtd {
namespace {

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_request: %s\n", what);
  abort();
}

using json = nlohmann::json;

// An integer argument read as the daemon's commands read one (IntArg in
// src/commands/registry.cc): anything but a JSON integer is refused, since
// converting a float such as 1e40 to an integer is undefined behaviour.
Result<int64_t> IntArg(const json& args, const char* name, int64_t fallback) {
  json v = args.value(name, json(fallback));  // throws when args is not an object
  if (!v.is_number_integer())
    return Status::InvalidArgument(std::string(name) + ": not an integer");
  return v.get<int64_t>();
}

// Handlers that read their args the way the daemon's do, typed and untyped.
const std::vector<CommandSpec>& Table() {
  static const std::vector<CommandSpec> kTable = {
      {"echo", "", [](const json& a) -> Result<json> { return a; }},
      {"runs", "",
       [](const json& a) -> Result<json> {
         WTD_ASSIGN_OR_RETURN(int64_t limit, IntArg(a, "limit", 50));
         return json{{"limit", limit}, {"job", a.value("job", "")}};
       }},
      {"show", "",
       [](const json& a) -> Result<json> {
         a.at("id");  // throws when missing: the handler-exception path
         WTD_ASSIGN_OR_RETURN(int64_t id, IntArg(a, "id", 0));
         return json(id);
       }},
  };
  return kTable;
}

void CheckOne(std::string_view line) {
  std::string reply = HandleRequestLine(Table(), line);
  if (reply.empty() || reply.back() != '\n') Fail("response is not one line");
  std::string_view body(reply.data(), reply.size() - 1);
  if (body.find('\n') != std::string_view::npos) Fail("response spans lines");
  json parsed = json::parse(body.begin(), body.end(), nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("ok")) {
    Fail("response is not a protocol object");
  }
  Result<Request> req = DecodeRequest(line);
  if (!req.ok()) return;
  std::string again = EncodeRequest(req->command, req->args);
  Result<Request> back = DecodeRequest(std::string_view(again.data(), again.size() - 1));
  if (!back.ok() || back->command != req->command || back->args != req->args) {
    Fail("request does not round-trip");
  }
}

}  // namespace
}  // namespace wtd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  wtd::CheckOne(in);
  (void)wtd::DecodeResponse(in);
  return 0;
}
