// The WAN proxy: one thread per Fabric that keeps staged WAN bytes flowing into the sockets
// after the caller's send has completed and the caller has moved on (to compute, or to another
// collective), as NCCL's proxy thread does for its network sends.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "transport/wan/wan.h"

namespace xsite::transport::wan {

class WanProxy {
 public:
  explicit WanProxy(std::vector<WanConnection*> connections);
  ~WanProxy();  // stops the thread (drain() first to deliver what is staged)
  WanProxy(const WanProxy&) = delete;
  WanProxy& operator=(const WanProxy&) = delete;

  // Waits until nothing is staged or `limit` passes (a dead peer ends it early).
  void drain(std::chrono::milliseconds limit);

 private:
  bool flushAll(bool& moved);
  void run();
  std::vector<WanConnection*> conns_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace xsite::transport::wan
