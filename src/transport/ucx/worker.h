// One UCP context and worker, and its endpoints: the piece of the UCX backend that both the
// library's connections (ucx.cc, one endpoint per peer rank) and the NCCL net plugin's same-site
// comms (plugin/net/ucx_comm.h, one endpoint per send comm) are built on.
//
// Single-threaded (UCS_THREAD_MODE_SINGLE): the owner serialises every call, progress included.
// Endpoints are keyed by an int chosen by the caller (a peer rank, a comm id); each is created
// with UCP_ERR_HANDLING_MODE_PEER, so a dead peer becomes a failure() on its endpoint instead of a
// hang. Compiled only with UCX (XSITE_HAVE_UCX). Throws Error(kSystem) naming the UCX failure.
#pragma once

#include <ucp/api/ucp.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace xsite::transport::ucx {

Error ucxError(const std::string& what, ucs_status_t s);

class Worker {
 public:
  // `rank` names this side in the goodbyes of ucx.cc; `peers` is UCP's estimate of endpoints;
  // `netDevices`, when not empty, is set as UCX's NET_DEVICES (e.g. "mlx5_0:1").
  Worker(int rank, size_t peers, const std::string& netDevices);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int rank() const { return rank_; }
  ucp_worker_h handle() const { return worker_; }
  // The worker's address: as hex text (for the bootstrap store) or as raw bytes.
  std::string address() const;
  const void* addressData() const { return addr_; }
  size_t addressLength() const { return addrLen_; }
  void connect(int peer, const std::string& hexAddress);
  void connect(int peer, const void* address, size_t length);
  // Closes one endpoint: flushes what is in flight (or, when it failed or `force`, drops it, its
  // requests ending with an error), progressing the worker for at most `wait`, then forgets it.
  // No-op for an unknown key.
  void disconnect(int peer, std::chrono::milliseconds wait, bool force = false) noexcept;
  ucp_ep_h ep(int peer) const { return peers_.at(peer)->ep; }
  // UCS_OK while the endpoint works; else why it failed (the error callback's status).
  ucs_status_t failure(int peer) const { return peers_.at(peer)->failed; }
  // True when UCX did something (bytes moved inside a message count too, so that the caller keeps
  // spinning while a large message streams instead of backing off between its completions).
  bool progress() noexcept {
    unsigned events = 0;
    for (int i = 0; i < 64; ++i) {
      unsigned e = ucp_worker_progress(worker_);
      if (e == 0) break;
      events += e;
    }
    return events != 0;
  }
  // The worker's event fd, armed: false when there are events to progress first (or no fd).
  bool arm(int& fd) noexcept {
    if (efd_ < 0 || ucp_worker_arm(worker_) != UCS_OK) return false;
    fd = efd_;
    return true;
  }
  // A closing connection's goodbye: sent now, delivered before the endpoints close.
  void sendGoodbye(int peer, uint64_t tag, uint64_t sent, uint64_t received) noexcept;
  // No more goodbyes, and the destructor force-closes every endpoint without waiting.
  void abandon() noexcept { abandoned_ = true; }
  // "tcp/eth0, ..." : the transports of the endpoint's lanes.
  std::string lanes(int peer) const;

 private:
  struct Peer {
    int rank;
    ucp_ep_h ep = nullptr;
    ucs_status_t failed = UCS_OK;
  };
  static void onError(void* arg, ucp_ep_h ep, ucs_status_t status) noexcept;

  int rank_;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  ucp_address_t* addr_ = nullptr;
  size_t addrLen_ = 0;
  int efd_ = -1;
  std::map<int, std::unique_ptr<Peer>> peers_;
  std::deque<std::array<uint64_t, 2>> goodbyes_;  // stable buffers of the goodbyes in flight
  std::vector<void*> goodbyeReqs_;
  bool abandoned_ = false;
};

// Releases a UCX request (cancelling it first when asked) and forgets it; nullptr is a no-op.
inline void freeRequest(ucp_worker_h worker, void*& req, bool cancel) noexcept {
  if (req == nullptr) return;
  if (cancel) ucp_request_cancel(worker, req);
  ucp_request_free(req);
  req = nullptr;
}

}  // namespace xsite::transport::ucx
