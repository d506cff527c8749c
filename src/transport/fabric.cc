#include "transport/fabric.h"

#include <algorithm>

#include "util/log.h"

namespace xsite::transport {

FabricOptions fabricOptionsFromParams(const params::Params& p) {
  using params::Id;
  FabricOptions fo;
  fo.shmRingBytes = static_cast<size_t>(p.integer(Id::kShmRingSize));
  fo.socketBufBytes = static_cast<int>(p.integer(Id::kSocketBufSize));
  fo.tcpUserTimeout = params::fromSeconds(p.real(Id::kTcpUserTimeout));
  fo.wan.streams = static_cast<int>(p.integer(Id::kWanStreams));
  fo.wan.frameBytes = static_cast<size_t>(p.integer(Id::kWanFrameSize));
  fo.wan.windowBytes = static_cast<size_t>(p.integer(Id::kWanWindow));
  fo.wan.congestion = p.string(Id::kWanCongestion);
  fo.wan.latencyCongestion = p.string(Id::kWanCongestionLatency);
  fo.wan.latencyUs = p.real(Id::kWanLatencyUs);
  fo.wan.rateMbit = p.real(Id::kWanRateMbit);
  fo.wan.reconnectTimeout = params::fromSeconds(p.real(Id::kWanReconnectTimeout));
  fo.wan.tls = p.integer(Id::kWanTls) != 0;
  return fo;
}

using Clock = std::chrono::steady_clock;

std::string EstablishEnv::label(const LinkRequest& l) const {
  return "rank " + std::to_string(l.peer) + " (" + l.channelName + ", " + backendName(l.backend) +
         ")";
}

Fabric::Fabric(int rank, int size, bootstrap::Store& store, FabricOptions options)
    : rank_(rank), size_(size), store_(store), opt_(std::move(options)) {}

Fabric::~Fabric() {
  if (abandoned_.load(std::memory_order_acquire)) {  // Communicator::abort(): no waiting
    for (auto& [key, c] : conns_) c->abandon();
  } else {
    // Deliver what is staged before the connections close, and wait for the peer to
    // acknowledge it (closing with acknowledgements unread would reset a connection under the
    // peer's last bytes). A dead peer ends the wait early.
    const auto deadline =
        Clock::now() + std::min<std::chrono::milliseconds>(opt_.timeout, std::chrono::seconds(60));
    for (auto& e : establishers_) e->drain(deadline);
  }
  establishers_.clear();  // before the connections: a WAN proxy thread stops first
}

double Fabric::wanRttUs() const noexcept {
  double rtt = 0;
  for (const auto& e : establishers_) rtt = std::max(rtt, e->wanRttUs());
  return rtt;
}

Connection& Fabric::connection(int peer, int channel) const {
  auto it = conns_.find({peer, channel});
  if (it == conns_.end())
    throw Error(ErrorCategory::kInternal, "no connection to rank " + std::to_string(peer) +
                                              " on channel " + std::to_string(channel));
  return *it->second;
}

// Each registered establisher in the registry's order (the same on every rank: they may be
// collective), with the links of the backends it serves.
void Fabric::establish(const std::vector<LinkRequest>& links) {
  for (const auto& l : links) {
    if (l.peer < 0 || l.peer >= size_ || l.peer == rank_)
      throw Error(ErrorCategory::kInternal, "bad link request to rank " + std::to_string(l.peer));
    if (!backendBuilt(l.backend))
      throw Error(ErrorCategory::kInvalidUsage,
                  std::string("a ") + backendName(l.backend) + " link was requested but this xsite "
                  "was built without that transport (for ucx: install libucx-dev and rebuild, or "
                  "set XSITE_SITE_TRANSPORT=tcp)");
  }
  const EstablishEnv env{rank_, size_, store_, opt_};
  std::vector<std::unique_ptr<Establisher> (*)()> done;  // factories already run
  for (const BackendInfo& b : backends()) {
    if (!b.built || std::find(done.begin(), done.end(), b.makeEstablisher) != done.end()) continue;
    done.push_back(b.makeEstablisher);
    std::vector<const LinkRequest*> mine;
    for (const auto& l : links)
      for (const BackendInfo& o : backends())
        if (o.backend == l.backend && o.makeEstablisher == b.makeEstablisher) mine.push_back(&l);
    establishers_.push_back(b.makeEstablisher());
    establishers_.back()->establish(env, mine, conns_);
  }
  XSITE_INFO(kNet, "fabric: %zu connections established", conns_.size());
}

}  // namespace xsite::transport
