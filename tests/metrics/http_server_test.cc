// The metrics endpoint over real TCP sockets on 127.0.0.1 (ephemeral
// ports): the answer to GET /metrics, the refusals (400, 404, 405, 431,
// 503), a slow client cut by the timeout while others are served, and the
// listen address parser.
#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "metrics/registry.h"

namespace wtd::metrics {
namespace {

// A raw TCP client of 127.0.0.1:port.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }
  void Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close first (a refused request)
      off += static_cast<size_t>(n);
    }
  }
  // Reads until the server closes the connection or `timeout_ms` passes.
  // *closed: the server closed it (EOF or reset) within the time.
  std::string ReadAll(int timeout_ms, bool* closed) {
    std::string out;
    *closed = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return out;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      *closed = true;  // 0: EOF; < 0: reset
      return out;
    }
  }
  // Whether the connection is still open with nothing to read: the server
  // neither answered nor closed it.
  bool OpenAndSilent() {
    char c;
    ssize_t n = recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string Header(const std::string& response, const std::string& name) {
  std::string key = "\r\n" + name + ": ";
  size_t at = response.find(key);
  if (at == std::string::npos) return "";
  size_t end = response.find("\r\n", at + key.size());
  return response.substr(at + key.size(), end - at - key.size());
}

std::string Body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions options = {}) {
    registry_.AddCounter("t_scrapes_total", "Scrapes.")->With({})->Inc(7);
    Result<std::unique_ptr<HttpServer>> s = HttpServer::Start(
        ListenAddress{"127.0.0.1", 0},
        [this] {
          ++renders_;
          return registry_.Render();
        },
        options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    ASSERT_NE(server_->port(), 0);
  }
  // One request on a fresh connection; the whole answer.
  std::string Ask(const std::string& request) {
    Client c(server_->port());
    EXPECT_TRUE(c.connected());
    c.Send(request);
    bool closed = false;
    std::string out = c.ReadAll(10000, &closed);
    EXPECT_TRUE(closed) << "the server did not close after answering: " << out;
    return out;
  }

  Registry registry_;
  std::atomic<int> renders_{0};
  std::unique_ptr<HttpServer> server_;
};

const char kGet[] = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

TEST_F(HttpServerTest, ServesTheRegistryAsTextFormat004) {
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
  std::string r = Ask(kGet);
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_EQ(Header(r, "Content-Type").rfind("text/plain; version=0.0.4", 0), 0u) << r;
  EXPECT_EQ(Body(r), registry_.Render());
  EXPECT_EQ(Header(r, "Content-Length"), std::to_string(Body(r).size()));
  // A query string is ignored.
  r = Ask("GET /metrics?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  ASSERT_NO_FATAL_FAILURE(Start());
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  c.Send(
      "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\n"
      "Connection: close\r\n\r\n");
  bool closed = false;
  std::string out = c.ReadAll(10000, &closed);
  EXPECT_TRUE(closed);
  size_t first = out.find("HTTP/1.1 200 OK");
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 200 OK", first + 1), std::string::npos) << out;
}

TEST_F(HttpServerTest, AMalformedRequestIs400AndTheNextClientIsServed) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string r = Ask("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400 ", 0), 0u) << r;
  r = Ask("GET /metrics HTTP/9.x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400 ", 0), 0u) << r;
  r = Ask(kGet);
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
}

TEST_F(HttpServerTest, OtherMethodsAre405AndOtherPaths404) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string r = Ask("POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405 ", 0), 0u) << r;
  EXPECT_EQ(Header(r, "Allow"), "GET") << r;
  r = Ask("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404 ", 0), 0u) << r;
  r = Ask("GET /metricsx HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404 ", 0), 0u) << r;
  // A body is not accepted.
  r = Ask("GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(r.rfind("HTTP/1.1 413 ", 0), 0u) << r;
  EXPECT_EQ(renders_.load(), 0) << "nothing refused was rendered";
}

TEST_F(HttpServerTest, AnOversizedHeaderBlockIsRefused) {
  HttpServerOptions o;
  o.header_limit = 8192;
  ASSERT_NO_FATAL_FAILURE(Start(o));
  std::string big = "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(9000, 'a') +
                    "\r\nConnection: close\r\n\r\n";
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  c.Send(big);
  bool closed = false;
  std::string r = c.ReadAll(10000, &closed);
  EXPECT_TRUE(closed) << "the connection was closed";
  // The 431 may be lost to the reset of a close with unread input; it is
  // never a 200.
  EXPECT_TRUE(r.empty() || r.rfind("HTTP/1.1 431 ", 0) == 0) << r;
  EXPECT_EQ(renders_.load(), 0);
  // Just under the limit is served.
  std::string fits = "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(7000, 'a') +
                     "\r\nConnection: close\r\n\r\n";
  r = Ask(fits);
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.substr(0, 200);
}

TEST_F(HttpServerTest, ASlowClientIsDroppedAfterTheTimeoutWhileOthersAreServed) {
  HttpServerOptions o;
  o.timeout_ms = 1500;
  ASSERT_NO_FATAL_FAILURE(Start(o));
  auto start = std::chrono::steady_clock::now();
  Client slow(server_->port());
  ASSERT_TRUE(slow.connected());
  slow.Send("GET /metr");  // half a request, then nothing
  // Another client is answered while the slow one still holds its
  // connection.
  std::string r = Ask(kGet);
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_TRUE(slow.OpenAndSilent()) << "the slow client was still connected meanwhile";
  // Then the server drops it: EOF without an answer, well before 10 s.
  bool closed = false;
  std::string rest = slow.ReadAll(10000, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(rest, "");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST_F(HttpServerTest, ConnectionsBeyondTheCapAre503) {
  HttpServerOptions o;
  o.max_connections = 2;
  ASSERT_NO_FATAL_FAILURE(Start(o));
  Client a(server_->port()), b(server_->port());
  ASSERT_TRUE(a.connected() && b.connected());
  a.Send("GET /");  // both held open, neither complete
  b.Send("GET /");
  std::string r = Ask(kGet);
  EXPECT_EQ(r.rfind("HTTP/1.1 503 ", 0), 0u) << r;
}

TEST_F(HttpServerTest, APortInUseIsAnErrorNamingTheAddress) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ListenAddress same{"127.0.0.1", server_->port()};
  Result<std::unique_ptr<HttpServer>> again = HttpServer::Start(same, [] { return std::string(); });
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("127.0.0.1:" + std::to_string(server_->port())),
            std::string::npos)
      << again.status().ToString();
  // The first one still serves.
  std::string r = Ask(kGet);
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
}

TEST(ListenAddressTest, ParsesPortsAndAddresses) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const Case& c : {Case{"9100", "127.0.0.1", 9100}, Case{":9100", "127.0.0.1", 9100},
                        Case{"0.0.0.0:80", "0.0.0.0", 80}, Case{"127.0.0.1:0", "127.0.0.1", 0},
                        Case{"[::1]:9100", "::1", 9100}}) {
    Result<ListenAddress> a = ParseListenAddress(c.text);
    ASSERT_TRUE(a.ok()) << c.text << ": " << a.status().ToString();
    EXPECT_EQ(a->host, c.host) << c.text;
    EXPECT_EQ(a->port, c.port) << c.text;
  }
  EXPECT_EQ(ParseListenAddress("[::1]:9100")->ToString(), "[::1]:9100");
  for (const char* bad : {"", ":", "x", "70000", "localhost:9100", "1.2.3:80", "::1:9100",
                          "127.0.0.1:-1", "127.0.0.1:80x"}) {
    Result<ListenAddress> a = ParseListenAddress(bad);
    EXPECT_FALSE(a.ok()) << bad;
    if (!a.ok()) {
      EXPECT_TRUE(a.status().IsInvalidArgument()) << bad;
    }
  }
}

}  // namespace
}  // namespace wtd::metrics
