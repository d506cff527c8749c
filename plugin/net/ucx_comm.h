// Same-site comms of the net plugin over UCX (XSITE_SITE_TRANSPORT=ucx, or auto when xsite is
// built with UCX): the site transport, as the library uses between the domains of a site.
//
// One UCP worker per device and process (transport::ucx::Worker, pinned to an RDMA device through
// UCX's NET_DEVICES when the device is one), shared by every UCX comm of that device and
// progressed from their isend/irecv/test under one mutex. NCCL's 128-byte handle cannot hold a
// worker address, so setup rides the listener's TCP socket: the sender's Hello (kind kUcx), then
// the receiver's UcxReply (a comm id and its worker address); the sender creates one endpoint per
// send comm. The socket stays open beside the comm as its liveness channel: the sender writes a
// UcxGoodbye (messages sent) on close, and EOF without one means the peer died.
//
// Messages are UCP tagged messages, tag = receiver's comm id (32 bits) | NCCL tag (32 bits). A
// single receive matches the comm id and any NCCL tag; the buffers of a grouped receive match
// their own tags. UCP matches per endpoint in posting order, which gives NCCL's rule: operations
// match in posting order, tags only choose the buffer. A receive accepts a smaller message (test
// reports its length); a larger one fails with UCS_ERR_MESSAGE_TRUNCATED, reported as a remote
// error naming the peer. UCX picks eager or rendezvous (zero-copy) per message.
#pragma once

#if XSITE_HAVE_UCX

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "plugin/net/comm.h"
#include "transport/ucx/worker.h"

namespace xsite::plugin::net {

// A worker and the lock that serialises it (UCS_THREAD_MODE_SINGLE).
struct UcxWorker {
  std::mutex mu;
  std::unique_ptr<transport::ucx::Worker> worker;
  std::string netDevice;  // "mlx5_0:1", or "" (UCX's own choice)
  int nextId = 1;         // endpoint keys and receive comm ids
};

// The process's worker for `device` (created at first use; throws Error naming the UCX failure).
std::shared_ptr<UcxWorker> ucxWorkerFor(const Device& device);

// The receiver's answer to a kUcx Hello, followed by `addressBytes` of its worker address.
struct UcxReply {
  static constexpr uint32_t kMagic = 0x58535552;  // "XSUR"
  uint32_t magic;
  uint32_t commId;
  uint32_t addressBytes;
  uint32_t reserved;
};
// What a closing sender writes on the socket: how many messages it sent.
struct UcxGoodbye {
  static constexpr uint64_t kMagic = 0x5853554742594531ull;
  uint64_t magic;
  uint64_t sent;
};
inline constexpr uint32_t kMaxUcxAddressBytes = 64 << 10;

class UcxSendComm final : public SendComm {
 public:
  // Creates the endpoint to the receiver's worker address.
  UcxSendComm(Fd fd, std::string label, std::shared_ptr<UcxWorker> w, uint32_t commId,
              const void* address, size_t addressBytes);
  ~UcxSendComm() override;

 private:
  Status progress() override;
  Fd fd_;
  std::shared_ptr<UcxWorker> w_;
  int ep_;
  uint32_t commId_;
  uint64_t sent_ = 0;  // messages handed to UCX
};

class UcxRecvComm final : public RecvComm {
 public:
  UcxRecvComm(Fd fd, std::string label, std::shared_ptr<UcxWorker> w, uint32_t commId);
  ~UcxRecvComm() override;

 private:
  Status progress() override;
  Status checkPeer();  // receives waiting: is the sender still there?
  Fd fd_;
  std::shared_ptr<UcxWorker> w_;
  uint32_t commId_;
  uint64_t received_ = 0;  // messages landed
  UcxGoodbye goodbye_{};
  size_t goodbyeGot_ = 0;
  std::chrono::steady_clock::time_point goodbyeAt_{};
};

}  // namespace xsite::plugin::net

#endif  // XSITE_HAVE_UCX
