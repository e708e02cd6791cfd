// The metrics endpoint: `GET /metrics` over plain HTTP/1.1 (Boost.Beast on
// Boost.Asio), answering with what a render function returns, as the
// Prometheus text format 0.0.4 (docs/design/metrics.md, "The endpoint").
//
// One io thread of its own serves every connection with asynchronous I/O,
// so a slow or silent client stalls neither the other clients nor the
// daemon; the render function runs on that thread and must not block for
// long (the registry's reads atomics). Limits: a request's header block
// over `header_limit` bytes is answered 431 and the connection closed; a
// body is refused (413); a connection that has not delivered a whole
// request (or taken its answer) within `timeout_ms` is closed; connections
// beyond `max_connections` are answered 503 and closed. A malformed request
// gets 400, a method other than GET 405, a path other than /metrics 404.
//
// Thread-safety: Start and Stop from one thread; port() and address() from
// any. The render function is called on the io thread only.
#ifndef WTD_METRICS_HTTP_SERVER_H_
#define WTD_METRICS_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "wtd/status.h"

namespace wtd::metrics {

// Where to listen: an IP address literal and a port (0: any free port).
struct ListenAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  // "127.0.0.1:9100", "[::1]:9100".
  std::string ToString() const;
};

// Parses `PORT`, `:PORT` (both on 127.0.0.1), `ADDR:PORT` or `[ADDR6]:PORT`;
// ADDR must be an IPv4 or IPv6 literal. InvalidArgument saying why.
Result<ListenAddress> ParseListenAddress(std::string_view text);

struct HttpServerOptions {
  size_t header_limit = 8192;  // bytes of a request's start line and headers
  int timeout_ms = 10000;      // to deliver a request, or to take its answer
  int max_connections = 16;
};

class HttpServer {
 public:
  // Binds `at` and serves `render` at /metrics. A bind failure is an
  // IOError naming the address.
  static Result<std::unique_ptr<HttpServer>> Start(const ListenAddress& at,
                                                   std::function<std::string()> render,
                                                   HttpServerOptions options = {});
  // Stops serving and closes every connection. Idempotent; the destructor
  // calls it.
  void Stop();
  ~HttpServer();

  // The bound port (the one chosen when 0 was asked for).
  uint16_t port() const;
  // The bound address, as ListenAddress::ToString.
  std::string address() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wtd::metrics

#endif  // WTD_METRICS_HTTP_SERVER_H_
