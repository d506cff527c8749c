#include "transport/tcp/tcp.h"


namespace xsite::transport::tcp {

TcpConnection::TcpConnection(int peer, std::string label, Fd fd)
    : StreamConnection(peer, std::move(label)), fd_(std::move(fd)) {
  setNonBlocking(fd_.get(), true);
  setNoDelay(fd_.get());
}

bool TcpConnection::appendPollFds(std::vector<pollfd>& out) const noexcept {
  short events = static_cast<short>((wantsInput() ? POLLIN : 0) | (sendQueued() ? POLLOUT : 0));
  if (events != 0) out.push_back({fd_.get(), events, 0});
  return true;
}

Result<size_t> TcpConnection::writeSome(const iovec* iov, int iovcnt) noexcept {
  return socketSend(label(), fd_.get(), iov, iovcnt);
}

Result<size_t> TcpConnection::readSome(void* data, size_t bytes) noexcept {
  return socketRecv(label(), fd_.get(), data, bytes);
}

}  // namespace xsite::transport::tcp
