// The WAN proxy: one thread per Fabric that keeps staged WAN bytes flowing into the sockets
// after the caller's send has completed and the caller has moved on (to compute, or to another
// collective), as NCCL's proxy thread does for its network sends.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "transport/wan/wan.h"

namespace xsite::transport::wan {

class WanProxy {
 public:
  explicit WanProxy(std::vector<WanLink*> links);
  ~WanProxy();  // stops the thread (drain() first to deliver what is staged)
  WanProxy(const WanProxy&) = delete;
  WanProxy& operator=(const WanProxy&) = delete;

  // Waits until nothing is staged or `limit` passes (a dead peer ends it early).
  void drain(std::chrono::milliseconds limit);

  // Links that come and go while the thread runs (those of the NCCL net plugin's send comms).
  // After detach() returns, the thread no longer touches `c`.
  void attach(WanLink* l);
  void detach(WanLink* l);

 private:
  bool flushAll(bool& moved);
  void run();
  std::mutex linksMu_;  // guards links_ (held while the thread flushes, not while it polls)
  std::vector<WanLink*> links_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace xsite::transport::wan
