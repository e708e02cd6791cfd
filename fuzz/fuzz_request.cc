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

// Handlers that read their args the way the daemon's do, typed and untyped.
const std::vector<CommandSpec>& Table() {
  static const std::vector<CommandSpec> kTable = {
      {"echo", "", [](const json& a) -> Result<json> { return a; }},
      {"runs", "",
       [](const json& a) -> Result<json> {
         return json{{"limit", a.value("limit", 50)}, {"job", a.value("job", "")}};
       }},
      {"show", "", [](const json& a) -> Result<json> { return json(a.at("id").get<int64_t>()); }},
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
