// The answering side of healing: a listener kept for the links' lifetime (a Fabric's WAN
// listener after establishment; the NCCL net plugin's resume listener, one per address) takes the
// calls of peers that re-open a broken stream (ResumeHello) and hands each socket to its link
// (WanLink::adopt). Driven by a WanProxy thread; nothing here blocks. Anyone can reach the
// listener, so a caller proves the job's secret first (bootstrap/auth.h), has a few seconds to
// do so and introduce itself, only so many may wait at once, and one that names no link of ours
// is dropped.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

#include "bootstrap/auth.h"
#include "transport/wan/wan.h"
#include "util/socket.h"

namespace xsite::transport::wan {

class ResumeAcceptor {
 public:
  ResumeAcceptor(Fd listener, bootstrap::JobSecret secret);
  // The link the peer's hello names as (job, its rank, `channel`); the peer dials it again.
  // False when that key is taken (the second link cannot heal). Any thread.
  bool add(uint64_t job, int peer, int channel, WanLink* link);
  // After it returns, no call hands `link` a socket. Any thread.
  void remove(WanLink* link);
  // Accepts what is waiting, reads hellos, hands complete ones over.
  void poll() noexcept;
  SockAddr address() const { return localAddr(listener_.get()); }

  static constexpr size_t kMaxCallers = 64;
  static constexpr std::chrono::seconds kHelloLimit{5};

 private:
  // A caller that proved the secret and said hello: to its link, or told the link is gone.
  void handOver(Fd fd, const ResumeHello& h) noexcept;
  Fd listener_;
  bootstrap::JobSecret secret_;
  std::mutex linksMu_;  // links_ (held while a socket is handed over)
  std::map<std::tuple<uint64_t, int, int>, WanLink*> links_;
  bootstrap::AuthListener callers_{secret_, sizeof(ResumeHello), kHelloLimit, kMaxCallers};
  bool warned_ = false;
};

}  // namespace xsite::transport::wan
