#include "wtd/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "wtd/protocol.h"

namespace wtd {
namespace {

// A response longer than this is refused rather than buffered without end.
constexpr size_t kMaxResponseBytes = 256u << 20;

using SteadyClock = std::chrono::steady_clock;

int RemainingMs(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until `deadline`; IOError naming `what` on timeout.
Status WaitFor(int fd, short events, SteadyClock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, RemainingMs(deadline));
    if (n > 0) return Status::OK();
    if (n == 0) return Status::IOError(what + ": timed out");
    if (errno != EINTR) return Status::FromErrno(what, errno);
  }
}

}  // namespace

Result<std::unique_ptr<Client>> Client::Connect(const std::string& socket_path, int timeout_ms) {
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument("socket path " + socket_path + " is too long");
  }
  addr.sun_family = AF_UNIX;
  socket_path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::FromErrno("socket", errno);
  std::unique_ptr<Client> c(new Client(fd, socket_path));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return Status::FromErrno("connect " + socket_path, errno);
    }
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    WTD_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline, "connect " + socket_path));
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Status::FromErrno("connect " + socket_path, err);
  }
  return c;
}

Client::~Client() { close(fd_); }

Status Client::WriteAll(const std::string& data, int timeout_ms) {
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      WTD_RETURN_IF_ERROR(WaitFor(fd_, POLLOUT, deadline, "send to " + path_));
    } else {
      return Status::FromErrno("send to " + path_, errno);
    }
  }
  return Status::OK();
}

Result<std::string> Client::ReadLine(int timeout_ms) {
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  for (;;) {
    size_t nl = pending_.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    if (pending_.size() > kMaxResponseBytes) {
      return Status::Corruption("response from " + path_ + " exceeds " +
                                std::to_string(kMaxResponseBytes) + " bytes");
    }
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      pending_.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return Status::IOError("connection to " + path_ + " closed before a response");
    } else if (errno == EAGAIN || errno == EINTR) {
      WTD_RETURN_IF_ERROR(WaitFor(fd_, POLLIN, deadline, "response from " + path_));
    } else {
      return Status::FromErrno("recv from " + path_, errno);
    }
  }
}

Result<nlohmann::json> Client::Call(const std::string& command, const nlohmann::json& args,
                                    int timeout_ms) {
  Status sent = WriteAll(EncodeRequest(command, args), timeout_ms);
  if (!sent.ok()) {
    // A server that refuses a connection (peer check, connection limit)
    // answers with one error line and closes, maybe before the request
    // went out: that answer says more than EPIPE does.
    Result<std::string> refusal = ReadLine(std::min(timeout_ms, 1000));
    return refusal.ok() ? DecodeResponse(*refusal) : Result<nlohmann::json>(sent);
  }
  WTD_ASSIGN_OR_RETURN(std::string line, ReadLine(timeout_ms));
  return DecodeResponse(line);
}

}  // namespace wtd
