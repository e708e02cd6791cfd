#include "server/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <thread>

namespace wtd {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;

void SetCloseOnExec(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

// Whether something accepts connections on the socket at `path`.
bool SomethingListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

}  // namespace

constexpr int kHandlerThreads = 2;

class Server::Impl {
 public:
  Impl(std::string path, std::vector<CommandSpec> commands, ServerOptions options)
      : path_(std::move(path)),
        commands_(std::move(commands)),
        options_(options),
        acceptor_(io_) {  // NOLINT: io_ is initialized first
    if (options_.allowed_uid == static_cast<uid_t>(-1)) options_.allowed_uid = geteuid();
  }

  Status Bind();
  void Run() {
    Accept();
    thread_ = std::thread([this] {
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("control socket: {}", e.what());  // keep serving
        }
      }
    });
  }
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    // Handlers still running finish and post their answers (a `stop`
    // request's among them); the io thread starts writing those before it
    // stops, so a client that asked gets its answer.
    workers_.join();
    if (thread_.joinable()) {
      asio::post(io_, [this] { io_.stop(); });
      thread_.join();
    } else {
      io_.stop();
    }
    boost::system::error_code ec;
    acceptor_.close(ec);
    if (bound_) unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  class Connection;
  void Accept();

  // Declared before io_: connections still queued in io_ when it is
  // destroyed decrement connections_ as they go.
  std::string path_;
  std::vector<CommandSpec> commands_;
  ServerOptions options_;
  int connections_ = 0;  // io thread only
  asio::io_context io_;
  // Handlers run here, off the io thread: a slow one (a long listing) does
  // not hold up accepting, refusing or answering other clients.
  asio::thread_pool workers_{kHandlerThreads};
  Local::acceptor acceptor_;
  std::thread thread_;
  bool bound_ = false;
  bool stopped_ = false;
};

// One client: read a line, answer it, repeat, under an idle timer.
class Server::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl* server, Local::socket socket)
      : server_(server),
        socket_(std::move(socket)),
        timer_(server->io_),
        buffer_(server->options_.max_request_bytes + 1) {
    SetCloseOnExec(socket_.native_handle());
    ++server_->connections_;
  }
  ~Connection() { --server_->connections_; }

  void Start() {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      return Refuse(Status::FromErrno("SO_PEERCRED", errno));
    }
    bool root = cred.uid == 0 && server_->options_.allow_root;
    if (!root && cred.uid != server_->options_.allowed_uid) {
      spdlog::warn("control socket: refused pid {} of uid {}", cred.pid, cred.uid);
      return Refuse(Status::FailedPrecondition("uid " + std::to_string(cred.uid) +
                                               " may not use this daemon's socket"));
    }
    if (server_->connections_ > server_->options_.max_connections) {
      return Refuse(Status::Busy("too many connections (" +
                                 std::to_string(server_->options_.max_connections) + ")"));
    }
    ReadRequest();
  }

 private:
  void ArmTimer() {
    timer_.expires_after(std::chrono::milliseconds(server_->options_.idle_timeout_ms));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Close();
    });
  }

  void ReadRequest() {
    ArmTimer();
    asio::async_read_until(socket_, buffer_, '\n',
                           [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                             self->OnRead(ec, n);
                           });
  }

  void OnRead(boost::system::error_code ec, size_t n) {
    if (ec == asio::error::not_found) {
      return Refuse(Status::InvalidArgument("request line longer than " +
                                            std::to_string(server_->options_.max_request_bytes) +
                                            " bytes"));
    }
    if (ec) return Close();  // EOF, reset, or closed by the timer
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n - 1));
    buffer_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // No idle timeout while the handler runs: the client is waiting on us.
    timer_.cancel();
    // The worker hands its reference on, so the connection is always
    // destroyed on the io thread (its destructor counts connections_).
    asio::post(server_->workers_, [self = shared_from_this(), line = std::move(line)]() mutable {
      std::string answer = HandleRequestLine(self->server_->commands_, line);
      asio::io_context& io = self->server_->io_;
      asio::post(io, [self = std::move(self), answer = std::move(answer)]() mutable {
        self->Write(std::move(answer), /*then_close=*/false);
      });
    });
  }

  void Write(std::string text, bool then_close) {
    out_ = std::move(text);
    ArmTimer();  // a client that stops reading is dropped too
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), then_close](boost::system::error_code ec, size_t) {
          if (ec || then_close) return self->Close();
          self->ReadRequest();
        });
  }

  void Refuse(const Status& why) { Write(EncodeError(why), /*then_close=*/true); }

  void Close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.shutdown(Local::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  Impl* server_;
  Local::socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buffer_;
  std::string out_;
};

Status Server::Impl::Bind() {
  if (path_.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("socket path " + path_ + " is longer than " +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                   " bytes; choose a shorter --socket");
  }
  struct stat st;
  if (lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::FailedPrecondition("socket path " + path_ +
                                        " exists and is not a socket; not replacing it");
    }
    if (SomethingListens(path_)) {
      return Status::Busy("socket " + path_ + " is served by another running daemon");
    }
    if (unlink(path_.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno("remove stale socket " + path_, errno);
    }
  }
  boost::system::error_code ec;
  acceptor_.open(Local(), ec);
  if (ec) return Status::IOError("socket " + path_ + ": " + ec.message());
  SetCloseOnExec(acceptor_.native_handle());  // Asio does not
  mode_t old = umask(0177);                   // the file is created 0600, never wider
  acceptor_.bind(Local::endpoint(path_), ec);
  umask(old);
  if (ec) return Status::IOError("bind " + path_ + ": " + ec.message());
  bound_ = true;
  if (chmod(path_.c_str(), 0600) != 0) return Status::FromErrno("chmod 0600 " + path_, errno);
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("listen " + path_ + ": " + ec.message());
  return Status::OK();
}

void Server::Impl::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, Local::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("control socket: accept: {}", ec.message());
    } else {
      std::make_shared<Connection>(this, std::move(socket))->Start();
    }
    Accept();
  });
}

Result<std::unique_ptr<Server>> Server::Start(const std::string& socket_path,
                                              std::vector<CommandSpec> commands,
                                              ServerOptions options) {
  auto impl = std::make_unique<Impl>(socket_path, std::move(commands), options);
  Status st = impl->Bind();
  if (!st.ok()) {
    impl->Stop();
    return st;
  }
  impl->Run();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }
void Server::Stop() { impl_->Stop(); }
const std::string& Server::socket_path() const { return impl_->path(); }

}  // namespace wtd
