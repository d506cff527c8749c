// The answering side of healing: a Fabric's WAN listener, kept after establishment, takes the
// calls of peers that re-open a broken stream (ResumeHello) and hands each socket to its link
// (WanLink::adopt). Driven by the WanProxy thread; nothing here blocks. Anyone can reach the
// listener, so a caller proves the job's secret first (bootstrap/auth.h), has a few seconds to
// do so and introduce itself, only so many may wait at once, and one that names no link of ours
// is dropped.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <utility>

#include "bootstrap/auth.h"
#include "transport/wan/wan.h"
#include "util/socket.h"

namespace xsite::transport::wan {

class ResumeAcceptor {
 public:
  ResumeAcceptor(Fd listener, uint64_t job, bootstrap::JobSecret secret);
  // The link to `peer` whose lowest channel is `channel`; the peer dials it again.
  void add(int peer, int channel, WanLink* link);
  // Accepts what is waiting, reads hellos, hands complete ones over.
  void poll() noexcept;

  static constexpr size_t kMaxCallers = 64;
  static constexpr std::chrono::seconds kHelloLimit{5};

 private:
  struct Caller {
    Fd fd;
    bootstrap::AuthAccept auth;
    bool authed = false;
    ResumeHello hello{};
    size_t got = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  // False when the caller is finished with (handed over or dropped).
  bool read(Caller& c) noexcept;
  Fd listener_;
  uint64_t job_;
  bootstrap::JobSecret secret_;
  std::map<std::pair<int, int>, WanLink*> links_;
  std::deque<Caller> callers_;
  bool warned_ = false;
};

}  // namespace xsite::transport::wan
