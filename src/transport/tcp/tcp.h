// TCP backend: one socket per connection, non-blocking, framed by StreamConnection.
#pragma once

#include "transport/stream.h"
#include "util/socket.h"

namespace xsite::transport::tcp {

class TcpConnection final : public StreamConnection {
 public:
  TcpConnection(int peer, std::string label, Fd fd);
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;

 private:
  Result<size_t> writeSome(const iovec* iov, int iovcnt) noexcept override;
  Result<size_t> readSome(void* data, size_t bytes) noexcept override;
  Fd fd_;
};

// The first bytes on a new data socket: who is connecting, for which channel, of which job.
struct Hello {
  static constexpr uint32_t kMagic = 0x58534831;  // "XSH1"
  uint32_t magic;
  int32_t rank;
  int32_t channel;
  uint32_t stream;  // index among the sockets of one link (WAN streams)
  uint64_t job;
};

}  // namespace xsite::transport::tcp
