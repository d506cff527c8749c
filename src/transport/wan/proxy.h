// The WAN proxy: one thread per Fabric that keeps staged WAN bytes flowing into the sockets
// after the caller's send has completed and the caller has moved on (to compute, or to another
// collective), as NCCL's proxy thread does for its network sends.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "transport/wan/resume.h"
#include "transport/wan/wan.h"

namespace xsite::transport::wan {

// It also heals the links' broken streams (WanLink::heal) and answers the peers that re-open
// them (`acceptor`, when the links have one).
class WanProxy {
 public:
  explicit WanProxy(std::vector<WanLink*> links, std::unique_ptr<ResumeAcceptor> acceptor = {});
  ~WanProxy();  // stops the thread (WanLink::drain() first to deliver what is staged)
  WanProxy(const WanProxy&) = delete;
  WanProxy& operator=(const WanProxy&) = delete;

  // Links that come and go while the thread runs (those of the NCCL net plugin's comms).
  // After detach() returns, the thread no longer touches `l`.
  void attach(WanLink* l);
  void detach(WanLink* l);
  // Acceptors that come and go likewise (the NCCL net plugin's resume listeners).
  void attach(ResumeAcceptor* a);
  void detach(ResumeAcceptor* a);

 private:
  bool flushAll(bool& moved);
  void run();
  std::mutex linksMu_;  // guards links_ (held while the thread flushes, not while it polls)
  std::vector<WanLink*> links_;
  std::unique_ptr<ResumeAcceptor> owned_;  // the constructor's
  std::vector<ResumeAcceptor*> acceptors_;  // guarded by linksMu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace xsite::transport::wan
