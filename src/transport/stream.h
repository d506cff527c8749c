// A Connection over a byte stream: each message is a MessageHeader followed by its payload.
// Backends only move bytes (writeSome / readSome); framing, validation and ordering live here.
#pragma once

#include <sys/uio.h>

#include <chrono>

#include "transport/transport.h"

namespace xsite::transport {

class StreamConnection : public Connection {
 public:
  using Connection::Connection;
  Status progress(bool& moved) noexcept final;
  bool probe(Arrival& next) noexcept final;

 protected:
  // Move up to the given bytes; return how many moved (0: would block) or an error.
  virtual Result<size_t> writeSome(const iovec* iov, int iovcnt) noexcept = 0;
  virtual Result<size_t> readSome(void* data, size_t bytes) noexcept = 0;
  // Called now and then while work is pending and nothing moves: reports a dead peer.
  virtual Status checkPeer() noexcept { return Status::ok(); }
  // Bytes are wanted from the peer: a receive is posted, or probe() asked for the next header
  // (what appendPollFds() waits to read for).
  bool wantsInput() const noexcept { return recvQueued() || probing_; }

 private:
  Status progressSends(bool& moved) noexcept;
  Status progressRecvs(bool& moved) noexcept;
  // Reads the next message's header; true once it is whole and checked.
  Result<bool> readHeader(bool& moved) noexcept;
  MessageHeader sendHdr_{};
  size_t sendHdrDone_ = 0;
  MessageHeader recvHdr_{};
  size_t recvHdrGot_ = 0;
  bool probing_ = false;  // probe() asked for the next header with no receive posted
  std::chrono::steady_clock::time_point lastCheck_{};
};

}  // namespace xsite::transport
