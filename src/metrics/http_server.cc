#include "metrics/http_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>
#include <thread>

#include "metrics/registry.h"

namespace wtd::metrics {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

void SetCloseOnExec(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

std::string Format(const asio::ip::address& host, uint16_t port) {
  std::string h = host.to_string();
  if (host.is_v6()) h = "[" + h + "]";
  return h + ":" + std::to_string(port);
}

}  // namespace

std::string ListenAddress::ToString() const {
  boost::system::error_code ec;
  asio::ip::address a = asio::ip::make_address(host, ec);
  if (ec) return host + ":" + std::to_string(port);
  return Format(a, port);
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [](const std::string& why) { return Status::InvalidArgument(why); };
  ListenAddress out;
  std::string_view port = text;
  size_t colon = text.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
      return bad("write an IPv6 address in brackets: [ADDR]:PORT");
    }
    if (!host.empty()) out.host = std::string(host);
  }
  if (port.empty()) return bad("expected PORT, :PORT or ADDR:PORT");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("the port must be a number from 0 to 65535");
  }
  out.port = static_cast<uint16_t>(value);
  boost::system::error_code aec;
  asio::ip::address addr = asio::ip::make_address(out.host, aec);
  if (aec) return bad("\"" + out.host + "\" is not an IP address");
  out.host = addr.to_string();
  return out;
}

class HttpServer::Impl {
 public:
  Impl(std::function<std::string()> render, HttpServerOptions options)
      : render_(std::move(render)), options_(options), acceptor_(io_) {}

  Status Bind(const ListenAddress& at) {
    boost::system::error_code ec;
    asio::ip::address addr = asio::ip::make_address(at.host, ec);
    if (ec) return Status::InvalidArgument("metrics listener " + at.ToString() + ": bad address");
    tcp::endpoint ep(addr, at.port);
    std::string where = "metrics listener " + at.ToString();
    acceptor_.open(ep.protocol(), ec);
    if (ec) return Status::IOError(where + ": socket: " + ec.message());
    SetCloseOnExec(acceptor_.native_handle());  // Asio does not
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    acceptor_.bind(ep, ec);
    if (ec) return Status::IOError(where + ": bind: " + ec.message());
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::IOError(where + ": listen: " + ec.message());
    tcp::endpoint bound = acceptor_.local_endpoint(ec);
    if (ec) return Status::IOError(where + ": " + ec.message());
    port_ = bound.port();
    address_ = Format(bound.address(), port_);
    return Status::OK();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] {
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("metrics endpoint: {}", e.what());  // keep serving
        }
      }
    });
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    if (thread_.joinable()) {
      asio::post(io_, [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
        io_.stop();
      });
      thread_.join();
    } else {
      boost::system::error_code ec;
      acceptor_.close(ec);
    }
  }

  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }

 private:
  class Connection;
  void Accept();

  std::function<std::string()> render_;
  HttpServerOptions options_;
  int connections_ = 0;  // io thread only
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::string address_;
  bool stopped_ = false;
};

// One client: read a request, answer it, repeat while it keeps the
// connection alive, each read and write under the timeout.
class HttpServer::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl* server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)), buffer_(server->options_.header_limit + 1) {
    SetCloseOnExec(stream_.socket().native_handle());
    ++server_->connections_;
  }
  ~Connection() { --server_->connections_; }

  void Start() {
    if (server_->connections_ > server_->options_.max_connections) {
      return Answer(http::status::service_unavailable, "too many connections\n", 11, false);
    }
    Read();
  }

 private:
  std::chrono::milliseconds Timeout() const {
    return std::chrono::milliseconds(server_->options_.timeout_ms);
  }

  void Read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options_.header_limit));
    parser_->body_limit(0);
    stream_.expires_after(Timeout());
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return Close();
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return Answer(http::status::request_header_fields_too_large,
                    "request header block over " + std::to_string(server_->options_.header_limit) +
                        " bytes\n",
                    11, false);
    }
    if (ec == http::error::body_limit) {
      return Answer(http::status::payload_too_large, "a request body is not accepted\n", 11, false);
    }
    if (ec)
      return Answer(http::status::bad_request, "bad request: " + ec.message() + "\n", 11, false);
    const auto& req = parser_->get();
    unsigned version = req.version();
    bool keep = req.keep_alive();
    if (req.method() != http::verb::get) {
      return Answer(http::status::method_not_allowed, "only GET\n", version, keep);
    }
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (target != "/metrics") {
      return Answer(http::status::not_found, "not found; try /metrics\n", version, keep);
    }
    std::string body;
    try {
      body = server_->render_();
    } catch (const std::exception& e) {
      return Answer(http::status::internal_server_error, std::string(e.what()) + "\n", version,
                    false);
    }
    Answer(http::status::ok, std::move(body), version, keep, kContentType);
  }

  void Answer(http::status status, std::string body, unsigned version, bool keep,
              std::string_view type = "text/plain; charset=utf-8") {
    response_.emplace(status, version);
    response_->set(http::field::server, "wtd");
    response_->set(http::field::content_type, beast::string_view(type.data(), type.size()));
    if (status == http::status::method_not_allowed) response_->set(http::field::allow, "GET");
    response_->body() = std::move(body);
    response_->keep_alive(keep);
    response_->prepare_payload();
    stream_.expires_after(Timeout());  // a client that stops reading is dropped too
    http::async_write(stream_, *response_,
                      [self = shared_from_this(), keep](beast::error_code ec, size_t) {
                        if (ec || !keep) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  Impl* server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("metrics endpoint: accept: {}", ec.message());
    } else {
      std::make_shared<Connection>(this, std::move(socket))->Start();
    }
    Accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const ListenAddress& at,
                                                      std::function<std::string()> render,
                                                      HttpServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(render), options);
  WTD_RETURN_IF_ERROR(impl->Bind(at));
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }
std::string HttpServer::address() const { return impl_->address(); }

}  // namespace wtd::metrics
