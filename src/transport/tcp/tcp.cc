#include "transport/tcp/tcp.h"

#include <sys/socket.h>

#include <cerrno>

namespace xsite::transport::tcp {

TcpConnection::TcpConnection(int peer, std::string label, Fd fd)
    : StreamConnection(peer, std::move(label)), fd_(std::move(fd)) {
  setNonBlocking(fd_.get(), true);
  setNoDelay(fd_.get());
}

Result<size_t> TcpConnection::writeSome(const iovec* iov, int iovcnt) noexcept {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  while (true) {
    ssize_t w = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) return static_cast<size_t>(w);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    if (errno == EPIPE || errno == ECONNRESET || errno == ETIMEDOUT || errno == EHOSTUNREACH ||
        errno == ENETUNREACH)
      return peerGone("connection lost while sending (" + errnoString(errno) +
                      "): did that rank exit or crash?");
    return Status(ErrorCategory::kSystem, label() + ": send: " + errnoString(errno));
  }
}

Result<size_t> TcpConnection::readSome(void* data, size_t bytes) noexcept {
  while (true) {
    ssize_t r = ::recv(fd_.get(), data, bytes, MSG_DONTWAIT);
    if (r > 0) return static_cast<size_t>(r);
    if (r == 0) return peerGone("closed the connection: did that rank exit or crash?");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    if (errno == ECONNRESET)
      return peerGone("connection reset: did that rank exit or crash?");
    if (errno == ETIMEDOUT || errno == EHOSTUNREACH || errno == ENETUNREACH)
      return peerGone("connection lost (" + errnoString(errno) + "): is that rank's host reachable?");
    return Status(ErrorCategory::kSystem, label() + ": recv: " + errnoString(errno));
  }
}

}  // namespace xsite::transport::tcp
