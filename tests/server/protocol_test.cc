// The control protocol's lines (wtd/protocol.h) and the command table's
// dispatch (HandleRequestLine), without a socket.
#include "wtd/protocol.h"

#include <stdexcept>

#include "gtest/gtest.h"
#include "server/server.h"

namespace wtd {
namespace {

using json = nlohmann::json;

std::string Strip(std::string line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one line per message";
  return line;
}

TEST(ProtocolTest, RequestRoundTrips) {
  std::string line = Strip(EncodeRequest("runs", json{{"limit", 3}}));
  Result<Request> r = DecodeRequest(line);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->command, "runs");
  EXPECT_EQ(r->args, (json{{"limit", 3}}));
  Result<Request> no_args = DecodeRequest(Strip(EncodeRequest("status", nullptr)));
  ASSERT_TRUE(no_args.ok());
  EXPECT_TRUE(no_args->args.is_object());
}

TEST(ProtocolTest, MalformedRequestsSayWhatIsWrong) {
  struct Case {
    const char* line;
    const char* says;
  } cases[] = {
      {"", "not valid JSON"},
      {"{\"version\":1,", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {"{\"command\":\"status\"}", "request.version"},
      {"{\"version\":2,\"command\":\"status\"}", "speaks version 1"},
      {"{\"version\":\"1\",\"command\":\"status\"}", "request.version"},
      {"{\"version\":1}", "request.command"},
      {"{\"version\":1,\"command\":7}", "request.command"},
      {"{\"version\":1,\"command\":\"runs\",\"args\":[1]}", "request.args"},
  };
  for (const Case& c : cases) {
    Result<Request> r = DecodeRequest(c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_TRUE(r.status().IsInvalidArgument()) << c.line;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos)
        << c.line << " -> " << r.status().message();
  }
}

TEST(ProtocolTest, DeeplyNestedRequestIsRefusedBeforeParsing) {
  std::string deep =
      "{\"version\":1,\"command\":\"runs\",\"args\":{\"limit\":" + std::string(100000, '[') +
      std::string(100000, ']') + "}}";
  Result<Request> r = DecodeRequest(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("deeper than 32"), std::string::npos);
  // Brackets inside strings do not count.
  std::string quoted = "{\"version\":1,\"command\":\"runs\",\"args\":{\"job\":\"" +
                       std::string(100, '[') + "\\\"\"}}";
  Result<Request> q = DecodeRequest(quoted);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->args["job"], std::string(100, '[') + "\"");
}

TEST(ProtocolTest, ErrorsKeepTheirCodeAndMessage) {
  for (const Status& s : {Status::NotFound("run 9"), Status::Busy("held"),
                          Status::FailedPrecondition("read-only"), Status::Corruption("bad")}) {
    Result<json> r = DecodeResponse(Strip(EncodeError(s)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status(), s);
  }
  Result<json> ok = DecodeResponse(Strip(EncodeResult(json{{"paused", true}})));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (json{{"paused", true}}));
}

TEST(ProtocolTest, MalformedResponsesAreCorruption) {
  for (const char* line : {"", "null", "{}", "{\"ok\":\"yes\"}", "{\"ok\":false}",
                           "{\"ok\":false,\"error\":{\"code\":\"Nope\",\"message\":\"m\"}}",
                           "{\"ok\":false,\"error\":{\"code\":\"OK\"}}",
                           "{\"ok\":false,\"error\":{\"code\":5,\"message\":[]}}"}) {
    Result<json> r = DecodeResponse(line);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_TRUE(r.status().IsCorruption()) << line << " -> " << r.status().ToString();
  }
}

TEST(ProtocolTest, InvalidUtf8InAResultIsReplacedNotThrown) {
  std::string line = EncodeResult(json{{"subject", std::string("bad \xff byte")}});
  Result<json> r = DecodeResponse(Strip(line));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE((*r)["subject"].get<std::string>().find("bad "), std::string::npos);
}

std::vector<CommandSpec> Table() {
  return {
      {"echo", "returns its args", [](const json& a) -> Result<json> { return a; }},
      {"fail", "fails", [](const json&) -> Result<json> { return Status::Busy("try later"); }},
      {"throw", "throws",
       [](const json& a) -> Result<json> { return json(a.at("missing").get<int>()); }},
      {"boom", "throws a runtime_error",
       [](const json&) -> Result<json> { throw std::runtime_error("kaput"); }},
  };
}

Result<json> Dispatch(const std::string& line) {
  return DecodeResponse(Strip(HandleRequestLine(Table(), line)));
}

TEST(CommandTableTest, DispatchesToTheNamedHandler) {
  Result<json> r = Dispatch(Strip(EncodeRequest("echo", json{{"x", 1}})));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (json{{"x", 1}}));
  Result<json> f = Dispatch(Strip(EncodeRequest("fail", nullptr)));
  EXPECT_EQ(f.status(), Status::Busy("try later"));
}

TEST(CommandTableTest, UnknownCommandIsNotFoundAndListsTheCommands) {
  Result<json> r = Dispatch(Strip(EncodeRequest("nope", nullptr)));
  ASSERT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find("'nope'"), std::string::npos);
  EXPECT_NE(r.status().message().find("echo, fail"), std::string::npos);
}

TEST(CommandTableTest, HandlerExceptionsBecomeAbortedErrors) {
  for (const char* name : {"throw", "boom"}) {
    Result<json> r = Dispatch(Strip(EncodeRequest(name, nullptr)));
    ASSERT_TRUE(r.status().IsAborted()) << name << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(std::string("command ") + name), std::string::npos);
  }
}

TEST(CommandTableTest, BadRequestLineIsAnsweredWithInvalidArgument) {
  Result<json> r = Dispatch("{not json");
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
}

}  // namespace
}  // namespace wtd
