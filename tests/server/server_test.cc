// The control socket end to end: Server (Boost.Asio) against Client, over a
// real unix socket in a temp dir: framing, limits, timeouts, peer check,
// stale and live socket files.
#include "server/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "base/file_util.h"
#include "fakes/temp_dir.h"
#include "gtest/gtest.h"
#include "wtd/client.h"

namespace wtd {
namespace {

using json = nlohmann::json;

// A raw connection, for what Client would never send.
class RawConn {
 public:
  explicit RawConn(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConn() { close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& s) {
    return send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Everything until the peer closes (or the 10 s receive timeout).
  std::string ReadToEof() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// The response on the first line of what a server sent before closing.
Result<json> FirstResponse(const std::string& received) {
  return DecodeResponse(received.substr(0, received.find('\n')));
}

class ServerTest : public ::testing::Test {
 protected:
  std::vector<CommandSpec> Table() {
    return {
        {"echo", "returns its args", [](const json& a) -> Result<json> { return a; }},
        {"count", "counts calls", [this](const json&) -> Result<json> { return json(++calls_); }},
    };
  }
  std::unique_ptr<Server> StartServer(ServerOptions o = {}) {
    Result<std::unique_ptr<Server>> s = Server::Start(path_, Table(), o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<Client> Connect() {
    Result<std::unique_ptr<Client>> c = Client::Connect(path_, 2000);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  TempDir dir_;
  std::string path_ = dir_.Sub("s.sock");
  std::atomic<int> calls_{0};
};

TEST_F(ServerTest, AnswersSeveralRequestsOnOneConnectionInOrder) {
  auto server = StartServer();
  auto client = Connect();
  ASSERT_TRUE(client);
  for (int i = 0; i < 5; ++i) {
    Result<json> r = client->Call("echo", json{{"i", i}}, 5000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)["i"], i);
  }
  Result<json> unknown = client->Call("nope", nullptr, 5000);
  EXPECT_TRUE(unknown.status().IsNotFound());
  EXPECT_TRUE(client->Call("count", nullptr, 5000).ok()) << "connection stays open after errors";
}

TEST_F(ServerTest, SocketFileIsMode0600AndRemovedAtStop) {
  auto server = StartServer();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  server->Stop();
  EXPECT_NE(stat(path_.c_str(), &st), 0);
  EXPECT_FALSE(Client::Connect(path_, 500).ok());
  server->Stop();  // idempotent
}

TEST_F(ServerTest, StaleSocketFileIsReplacedAndALiveOneIsBusy) {
  {
    // A socket file nobody listens on, as a killed daemon leaves it.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    close(fd);
  }
  auto first = StartServer();
  ASSERT_TRUE(first);
  Result<std::unique_ptr<Server>> second = Server::Start(path_, Table());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsBusy()) << second.status().ToString();
  // The refused second server must not have removed the live socket.
  auto client = Connect();
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->Call("echo", nullptr, 5000).ok());
}

TEST_F(ServerTest, RefusesToReplaceAFileThatIsNotASocket) {
  ASSERT_TRUE(WriteFileAtomic(path_, "not a socket").ok());
  Result<std::unique_ptr<Server>> s = Server::Start(path_, Table());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsFailedPrecondition()) << s.status().ToString();
  struct stat st;
  EXPECT_EQ(stat(path_.c_str(), &st), 0) << "the file is left alone";
}

TEST_F(ServerTest, TooLongSocketPathIsInvalidArgumentNamingThePath) {
  std::string long_path = dir_.Sub(std::string(120, 'x'));
  Result<std::unique_ptr<Server>> s = Server::Start(long_path, Table());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsInvalidArgument());
  EXPECT_NE(s.status().message().find(long_path), std::string::npos);
}

TEST_F(ServerTest, OversizedRequestLineGetsAnErrorAndTheConnectionCloses) {
  ServerOptions o;
  o.max_request_bytes = 1024;
  auto server = StartServer(o);
  RawConn raw(path_);
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.Send(std::string(4096, 'x')));
  std::string reply = raw.ReadToEof();
  Result<json> r = FirstResponse(reply);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("longer than 1024"), std::string::npos);
}

TEST_F(ServerTest, SilentClientIsDroppedAfterTheIdleTimeoutAndStallsNobody) {
  ServerOptions o;
  o.idle_timeout_ms = 300;
  auto server = StartServer(o);
  RawConn silent(path_);
  ASSERT_TRUE(silent.connected());
  ASSERT_TRUE(silent.Send("{\"version\":1,"));  // half a request, then nothing
  // Another client is served while the silent one waits.
  auto client = Connect();
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->Call("echo", nullptr, 5000).ok());
  // The silent one is closed by the server (ReadToEof returns on close; its
  // 10 s receive timeout would mean the server never closed it).
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(silent.ReadToEof(), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(9));
}

TEST_F(ServerTest, ConnectionsBeyondTheLimitAreRefusedWithBusy) {
  ServerOptions o;
  o.max_connections = 2;
  auto server = StartServer(o);
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  // Both are accepted (a call on each proves it) before the third arrives.
  ASSERT_TRUE(a->Call("echo", nullptr, 5000).ok());
  ASSERT_TRUE(b->Call("echo", nullptr, 5000).ok());
  RawConn third(path_);
  ASSERT_TRUE(third.connected());
  std::string reply = third.ReadToEof();
  Result<json> r = FirstResponse(reply);
  EXPECT_TRUE(r.status().IsBusy()) << reply;
  b.reset();
  // A slot frees when a client leaves.
  for (int i = 0; i < 100; ++i) {
    auto c = Connect();
    if (c && c->Call("echo", nullptr, 5000).ok()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "no slot freed after a client left";
}

TEST_F(ServerTest, PeerWithAnotherUidIsRefusedBeforeDispatch) {
  ServerOptions o;
  o.allowed_uid = geteuid() + 4242;  // not us
  o.allow_root = false;
  auto server = StartServer(o);
  auto client = Connect();
  ASSERT_TRUE(client);
  Result<json> r = client->Call("count", nullptr, 5000);
  ASSERT_TRUE(r.status().IsFailedPrecondition()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("uid " + std::to_string(geteuid())), std::string::npos);
  EXPECT_EQ(calls_.load(), 0) << "the handler must not run for a refused peer";
}

TEST_F(ServerTest, ClientSeesNoDaemonAsIOError) {
  Result<std::unique_ptr<Client>> c = Client::Connect(path_, 500);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().IsIOError());
  EXPECT_NE(c.status().message().find(path_), std::string::npos);
}

}  // namespace
}  // namespace wtd
